"""Every simulated system besides the built-in TOP gateway and Qimen WMS, listed explicitly.

A new system is one module with a ``System`` subclass (see sandbox/system.py) and one line here.
"""

from __future__ import annotations

from sandbox.jd import JdSystem
from sandbox.kingdee import KingdeeSystem
from sandbox.logistics import CainiaoSystem, Kuaidi100System, SfSystem
from sandbox.payments import PaymentsSystem
from sandbox.pdd import PddSystem
from sandbox.pos import PosSystem
from sandbox.system import System
from sandbox.wechat_shop import WechatShop

SYSTEMS: list[type[System]] = [
    JdSystem, WechatShop, PosSystem, PddSystem,
    KingdeeSystem, SfSystem, CainiaoSystem, Kuaidi100System, PaymentsSystem,
]

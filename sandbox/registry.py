"""Every simulated system besides the built-in TOP gateway and Qimen WMS, listed explicitly.

A new system is one module with a ``System`` subclass (see sandbox/system.py) and one line here.
"""

from __future__ import annotations

from sandbox.system import System

SYSTEMS: list[type[System]] = []

"""Wall-clock helpers for the simulators: every platform here speaks ``yyyy-MM-dd HH:mm:ss`` in GMT+8.

TOP (spec §1.2, §1.7) and Qimen (§6.1) both send and expect second-precision local times in Asia/Shanghai, so the
sandbox keeps every stored time as a timezone-aware ``datetime`` truncated to the second and formats it only at the
wire. The zone is loaded lazily: constructing a ``ZoneInfo`` reads the tz database, and modules must not do I/O at
import.
"""

from __future__ import annotations

import functools
from datetime import datetime
from zoneinfo import ZoneInfo

WIRE_FORMAT = "%Y-%m-%d %H:%M:%S"


@functools.cache
def shanghai() -> ZoneInfo:
    """The Asia/Shanghai zone (GMT+8, no DST since 1991), loaded on first use."""
    return ZoneInfo("Asia/Shanghai")


def now() -> datetime:
    """Current time in Asia/Shanghai, truncated to the second like every TOP/Qimen timestamp."""
    return datetime.now(shanghai()).replace(microsecond=0)


def precise_now() -> datetime:
    """Current time with microseconds, for sandbox-internal timing (index lag) that must not round to seconds."""
    return datetime.now(shanghai())


def format_wire(moment: datetime) -> str:
    """Render an aware datetime as the platforms' ``yyyy-MM-dd HH:mm:ss`` GMT+8 string."""
    return moment.astimezone(shanghai()).strftime(WIRE_FORMAT)


def parse_wire(text: str) -> datetime:
    """Parse a ``yyyy-MM-dd HH:mm:ss`` GMT+8 string; raises ``ValueError`` on anything else.

    Strict on purpose: TOP rejects ISO strings (``T``, offsets, fractions), so the sandbox does too.
    """
    if not isinstance(text, str) or len(text) != 19:
        raise ValueError(f"expected 'yyyy-MM-dd HH:mm:ss', got {text!r}")
    return datetime.strptime(text, WIRE_FORMAT).replace(tzinfo=shanghai())

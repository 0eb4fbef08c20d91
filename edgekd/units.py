"""Byte sizes as users write them: 1KB = 1000 B, 1KiB = 1024 B (plain numbers are bytes)."""

import re

from edgekd.errors import EdgekdError

_UNITS = {
    "": 1, "b": 1,
    "kb": 10**3, "mb": 10**6, "gb": 10**9,
    "kib": 2**10, "mib": 2**20, "gib": 2**30,
    "k": 10**3, "m": 10**6, "g": 10**9,
}
_PATTERN = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*$")


SIZE_LIMIT = 2**64  # bytes: more than any device's memory, and what a budget in JSON can hold


def parse_size(text: str | int | float, what: str = "size") -> int:
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        size = text
    else:
        match = _PATTERN.match(str(text)) if len(str(text)) <= 100 else None  # no size is written longer
        unit = match.group(2).lower() if match else None
        if not match or unit not in _UNITS:
            raise EdgekdError(f"{what}: cannot read '{str(text):.40}' as a size; use e.g. 512KB, 1MiB, 2MB or a byte "
                              "count")
        size = float(match.group(1)) * _UNITS[unit]
    if not 0 <= size < SIZE_LIMIT:  # NaN too
        raise EdgekdError(f"{what}: {shown(text)} is no size a device has; give one from 0 to 16 EiB")
    return int(size)


def shown(value) -> str:
    """A value as an error line quotes it: a long number by its length (Python refuses to print one of over 4,300
    digits)."""
    if isinstance(value, int) and abs(value) >= 10**40:
        return f"a number of {(len(hex(abs(value))) - 2) * 1204 // 1000} digits"  # log10(16) = 1.204 per hex digit
    return repr(value) if len(repr(value)) <= 40 else f"{repr(value)[:40]}…"


def format_bytes(count: float) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(count) >= scale:
            return f"{count / scale:.2f} {unit}"
    return f"{int(count)} B"


def format_count(count: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(count) >= scale:
            return f"{count / scale:.2f} {unit}"
    return f"{int(count)}"

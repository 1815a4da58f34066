"""PromQL literals as text: durations and numbers, so every renderer spells them the same way."""

from __future__ import annotations


def duration(seconds: float) -> str:
    """Prometheus duration text: 300 -> 5m, 259200 -> 3d, 8640 -> 2h24m."""
    ms = round(seconds * 1000)
    if ms <= 0:
        return "0s"
    parts = []
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if ms >= size:
            parts.append(f"{ms // size}{unit}")
            ms %= size
    if ms:
        parts.append(f"{ms}ms")
    return "".join(parts)


def number(value: float) -> str:
    """Shortest decimal text that reads back as the same float (1.5, 0.001, 60)."""
    text = f"{value:g}"
    return text if float(text) == value else repr(value)

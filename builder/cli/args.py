"""Argument types for the commands' numeric flags: a value out of range is refused by the parser, naming
the flag, the value and the range (never a traceback later, never silently ignored)."""
from __future__ import annotations

import argparse


def whole(low: int, high: int | None = None, what: str = "a whole number"):
    """An argparse `type`: an int in [low, high] (high None: no upper bound)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        if value < low or (high is not None and value > high):
            bound = f"{low}-{high}" if high is not None else f">= {low}"
            raise argparse.ArgumentTypeError(f"{value} is out of range: expected {what} {bound}")
        return value

    parse.__name__ = "int"
    return parse


COUNT = whole(1)                                  # rows, images, processes, batch sizes
HAMMING = whole(0, 64, "a pHash distance in bits")  # 64-bit hashes

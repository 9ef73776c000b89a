"""Text from outside: files a user hands in (metadata tables, id lists, split tables) decoded as strict
UTF-8, and values from the data made safe where they land (a terminal, a Markdown card).

A byte that is not UTF-8 is an error naming the file, line, byte offset and the fix, instead of a
polars `invalid utf-8 sequence` or a Python traceback that names nothing.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from builder.core.errors import SourceError


def read_text_strict(path: str | os.PathLike) -> str:
    """The file's text; raises SourceError on the first byte that is not UTF-8."""
    path = Path(path)
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        column = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        raise SourceError(f"{path} line {line}, byte offset {e.start} (column {column}): byte "
                          f"0x{data[e.start]:02x} is not UTF-8; re-save the file as UTF-8 "
                          f"(e.g. `iconv -f latin1 -t utf-8 {path.name} > fixed{path.suffix}`)") from e


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_CONTROL_KEEP_LINES = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f]")


def printable(text, keep_newlines: bool = False) -> str:
    """`text` safe to print on a terminal: control characters (ANSI escapes, and newlines unless kept)
    shown as `\\xNN`, never sent (a label from the data could otherwise move the cursor, recolour the
    screen or forge an output line)."""
    pattern = _CONTROL_KEEP_LINES if keep_newlines else _CONTROL
    return pattern.sub(lambda m: f"\\x{ord(m.group()):02x}", str(text))


_MD_SPECIAL = str.maketrans({c: "\\" + c for c in "\\`*_[]|~#"})


def md_text(value) -> str:
    """A value from the data (a label, a method name) as literal text in a Markdown table or sentence:
    HTML characters as entities, Markdown's emphasis, link, code and cell characters backslash-escaped
    (`|` cannot end a cell), line breaks and other control characters as one space (so a `---` in it
    never starts a line, and draws no rule)."""
    import html

    text = re.sub(r"[\x00-\x1f\x7f-\x9f]+", " ", str(value)).strip()
    return html.escape(text, quote=True).translate(_MD_SPECIAL)

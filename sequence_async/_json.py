"""
Strict JSON in and out: plain functions, no I/O.

Owns the one encoder of request bodies (compact) and ``loads``, the one
parser of answers and stored JSON: NaN and Infinity refused (as literals,
or as numbers past a float's range), and nesting deep enough to exhaust the
interpreter's recursion limit refused too, all as ``NOT_JSON``, never as an
exception.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any, Final


NOT_JSON: Final[Any] = object()

# One encoder for every body (json.dumps builds one per call given separators).
encode = json.JSONEncoder(separators=(",", ":")).encode


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite(text: str) -> float:
    # 1e400 is valid JSON, but no float: it would come out as infinity.
    number = float(text)
    if math.isinf(number):
        raise ValueError(f"{text[:20]} is past a float's range")
    return number


# One decoder for every body (json.loads builds one per call given a hook).
_DECODER = json.JSONDecoder(parse_constant=_no_constant, parse_float=_finite)
# The C scanner: one value from a position (typeshed does not list it).
_scan: Callable[[str, int], tuple[Any, int]] = _DECODER.scan_once  # type: ignore[attr-defined]


def loads(body: bytes | str) -> Any:
    """
    Parse JSON strictly; return ``NOT_JSON`` for anything that is not.

    NaN and Infinity are refused (as literals, or as numbers past a float's
    range, such as ``1e400``), and so is nesting deep enough to exhaust
    the interpreter's recursion limit: a hostile body never escapes as a bare
    ``RecursionError``.
    """
    try:
        text = body.decode() if isinstance(body, bytes) else body
        # The common body is one value and nothing around it: scanned at
        # once, without the decoder's two whitespace matches (half its cost).
        try:
            value, end = _scan(text, 0)
        except StopIteration:  # no value at 0 (whitespace first, or none)
            end = -1
        if end == len(text):
            return value
        return _DECODER.decode(text)  # whitespace around it, or extra data
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return NOT_JSON

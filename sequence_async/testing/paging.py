"""
The fake server's pagination: cursors (api-v1) and page numbers (Platform).

Owns ``first``/``after`` and ``page_info``: ``first`` is 1 to 100 (20 by
default), ``after`` is an opaque cursor this server made, and lists are cut
newest first. Items come as ``(seq, item)`` pairs so a cursor survives new
items arriving at the head. Platform's ``page`` (from 1) and ``pageSize`` (1
to 100, 10 by default) cut the same lists by offset (``numbered``), with
``pagination: {page, pageSize, hasNextPage}``.

May import: ``testing.api``.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from typing import Any

from .api import invalid


DEFAULT_FIRST = 20
MAX_FIRST = 100
DEFAULT_PAGE_SIZE = 10


def numbered(
    items: Sequence[tuple[int, Any]] | Sequence[Any], query: Mapping[str, str]
) -> tuple[list[Any], dict[str, Any]]:
    """
    Cut page ``page`` of ``page_size`` items (query names already snake_case).

    Items may be ``(seq, item)`` pairs (as ``page`` takes them) or items.

    Raises:
        ApiError: 400 for a bad ``page`` or ``pageSize``.
    """
    number = _int(query.get("page", "1"))
    size = _int(query.get("page_size", str(DEFAULT_PAGE_SIZE)))
    if number < 1 or not 1 <= size <= MAX_FIRST:
        raise invalid(f"page must be 1 or more and pageSize 1 to {MAX_FIRST}.")
    start = (number - 1) * size
    chunk = [
        item[1] if isinstance(item, tuple) else item
        for item in items[start : start + size]
    ]
    return chunk, {
        "page": number,
        "pageSize": size,
        "hasNextPage": start + size < len(items),
    }


def _int(raw: str) -> int:
    try:
        return int(raw) if raw.isdigit() and len(raw) < 10 else -1
    except ValueError:
        return -1


def page(
    items: Sequence[tuple[int, Any]], query: Mapping[str, str]
) -> tuple[list[Any], dict[str, Any]]:
    """
    Cut one page from *items* (``(seq, item)``, newest first).

    Returns the page's items and its ``page_info``.

    Raises:
        ApiError: 400 for a bad ``first`` or ``after``.
    """
    first = _first(query.get("first", str(DEFAULT_FIRST)))
    start = 0
    if "after" in query:
        after = _decode(query["after"])
        start = next((i for i, (seq, _) in enumerate(items) if seq < after), len(items))
    chunk = items[start : start + first]
    end_cursor = _encode(chunk[-1][0]) if chunk else None
    return [item for _, item in chunk], {
        "end_cursor": end_cursor,
        "has_next_page": start + first < len(items),
    }


def _first(raw: str) -> int:
    try:
        first = int(raw)
    except ValueError:
        first = 0
    if not 1 <= first <= MAX_FIRST:
        raise invalid(f"first must be an integer from 1 to {MAX_FIRST}.")
    return first


def _encode(seq: int) -> str:
    return base64.urlsafe_b64encode(f"c:{seq}".encode()).decode()


def _decode(cursor: str) -> int:
    try:
        text = base64.urlsafe_b64decode(cursor.encode()).decode()
        return int(text.removeprefix("c:"))
    except ValueError:  # binascii.Error and UnicodeDecodeError are ValueErrors
        raise invalid("after is not a valid cursor.") from None

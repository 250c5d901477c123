"""
Request ids and idempotency keys: random (version 4) UUID strings.

Owns id generation. Each id takes 16 fresh bytes from ``os.urandom``, with no
state kept between calls: the default idempotency keys come from here, and a
repeated key would replay another request instead of moving money, so ids
must stay unique across threads, event loops and forked processes alike. (A
buffered pool shared by threads handed out duplicates; one system call per id
measured faster than that pool anyway.)
"""

from __future__ import annotations

import os


def new_id() -> str:
    """
    Return a new random (version 4) UUID as a string.
    """
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"

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


# The RFC 4122 variant's hex digit for each random one (its top bits 10).
_VARIANT = {d: "89ab"[int(d, 16) & 3] for d in "0123456789abcdef"}


def new_id() -> str:
    """
    Return a new random (version 4) UUID as a string.
    """
    h = os.urandom(16).hex()  # version and variant set in the text: faster
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:]}"

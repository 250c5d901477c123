"""
The one seam to the network: send a ``_wire.Request``, get a ``_wire.Response``.

The home of aiohttp (with the fake server in ``testing/``): nothing else in
the package imports it. Its modules:

- ``session``: ``AiohttpTransport``, the session and one attempt;
- ``direct``: sending below ``ClientSession.request`` on a session of ours;
- ``answers``: the capped read of an answer;
- ``failures``: aiohttp's failures mapped to typed errors, without frames
  that hold the key.
"""

from .session import AiohttpTransport, ClientSession


__all__ = ["AiohttpTransport", "ClientSession"]

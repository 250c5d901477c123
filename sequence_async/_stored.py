"""
The text a stored outcome is kept as in the coordinator's store.

Owns ``encode`` and ``decode``: a wait's outcome (the terminal snapshot, or
the 404 of an execution never seen) as compact JSON, and back; a text that is
not one of ours decodes as ``None`` (with a WARNING), never as an error.

May import: ``errors``, ``models``, ``_convert``, ``_json``, ``_waits``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import datetime

import attrs

from . import errors, models
from ._convert import structure
from ._json import loads
from ._waits import Outcome


log = logging.getLogger("sequence_async")


def encode(outcome: Outcome) -> str:
    """
    Return an outcome as the JSON text the store keeps.
    """
    if isinstance(outcome, errors.NotFoundError):
        return json.dumps({"missing": outcome.message})
    data = attrs.asdict(outcome, recurse=False)
    return json.dumps({"result": data}, default=_plain, separators=(",", ":"))


def decode(value: str) -> Outcome | None:
    """
    Return the outcome a stored text holds (``None`` when it is not one).
    """
    data = loads(value)  # strict: no NaN, no nesting that exhausts the stack
    if isinstance(data, dict):
        try:
            if "missing" in data:
                return errors.NotFoundError(
                    str(data["missing"]), status=404, code="resource_not_found"
                )
            return structure(data["result"], models.RuleExecution)
        except (ValueError, TypeError, KeyError, errors.ResponseValidationError):
            pass
    log.warning("ignored a stored outcome that is not one of ours")
    return None


def _plain(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(type(value).__name__)

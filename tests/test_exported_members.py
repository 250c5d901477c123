"""
The public surface: ``__all__`` sorted and complete, every public type exported.
"""

from __future__ import annotations

import inspect
import pydoc
import typing
from typing import Any

import sequence_async
from sequence_async import SequenceClient, errors, models


NAMESPACES = (
    "accounts",
    "audit_logs",
    "card_transactions",
    "cards",
    "external_transactions",
    "rule_executions",
    "rules",
    "transfers",
)


def public_classes() -> list[type[Any]]:
    """Every class the package exports."""
    return [
        value
        for name in sequence_async.__all__
        if inspect.isclass(value := getattr(sequence_async, name))
    ]


def _isort_style(name: str) -> tuple[int, str]:
    if name.isupper():
        return (0, name)
    return (1, name) if name[:1].isupper() else (2, name)


def package_types(annotation: Any) -> set[type[Any]]:
    """The package's own classes named anywhere in *annotation*."""
    found: set[type[Any]] = set()
    stack = [annotation]
    while stack:
        item = stack.pop()
        stack.extend(typing.get_args(item))
        origin = typing.get_origin(item)
        for candidate in (item, origin):
            if inspect.isclass(candidate) and candidate.__module__.startswith(
                "sequence_async"
            ):
                found.add(candidate)
    return found


def test_all_is_sorted_and_complete() -> None:
    """__all__ is sorted and names every public attribute of the package."""
    exported = sequence_async.__all__
    public = {
        name
        for name, value in vars(sequence_async).items()
        if not name.startswith("_") and not inspect.ismodule(value)
    }

    # ruff's RUF022 order: SCREAMING_CASE, CamelCase, then the rest.
    assert sorted(exported, key=_isort_style) == exported
    assert public == set(exported) - {"__version__"}
    assert set(errors.__all__) <= set(exported)
    assert set(models.__all__) - {"TERMINAL_STATUSES"} <= set(exported)


def test_every_type_a_public_method_takes_or_returns_is_exported() -> None:
    """No public method names a type a user cannot import from the package."""
    exported = {getattr(sequence_async, n) for n in sequence_async.__all__}
    missing: set[str] = set()
    for cls in public_classes():
        if getattr(cls, "_is_protocol", False):
            continue  # a seam for implementers (Coordinator), not methods to call
        for name, member in inspect.getmembers(cls):
            # Handles and namespaces are built by the client from private
            # parts: only SequenceClient's own constructor is checked.
            constructor = name == "__init__" and cls is SequenceClient
            if name.startswith("_") and not constructor:
                continue
            function = member.fget if isinstance(member, property) else member
            if not callable(function):
                continue
            try:
                hints = typing.get_type_hints(function)
            except (NameError, TypeError):
                continue
            for hint in hints.values():
                missing |= {
                    f"{cls.__name__}.{name}: {t.__name__}"
                    for t in package_types(hint)
                    if t not in exported
                }

    assert set() == missing


def test_resource_namespaces_show_in_help_and_dir() -> None:
    """The namespaces are documented attributes of SequenceClient."""
    text = pydoc.plain(pydoc.render_doc(SequenceClient))

    for name in NAMESPACES:
        assert name in dir(SequenceClient)
        assert name in text

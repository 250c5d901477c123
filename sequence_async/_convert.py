"""
The private cattrs converter: JSON data to models, leniently.

Owns how wire data becomes models: ISO timestamps to aware datetimes, enum
fields that keep unknown values as the raw string, plain-data fields kept as
they are, lists to tuples, unknown keys ignored. Integers, strings and
booleans are taken only as themselves (no ``1999.99`` read as 1999 cents). A
body that still does not fit raises ``ResponseValidationError`` with cattrs'
readable error lines. One converter per API profile: on Platform, model
fields are read from their camelCase wire names (``Profile.wire``), and
plain-data fields get snake_case keys, so both surfaces give the same values.
"""

from __future__ import annotations

import enum
import types
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Final, TypeVar, Union, get_args, get_origin

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn, override
from cattrs.preconf.json import make_converter

from . import errors
from ._profiles import DEFAULT, PROFILES, Profile, snake


T = TypeVar("T")


def _is_enum_or_str(tp: Any) -> bool:
    if get_origin(tp) not in (Union, types.UnionType):
        return False
    args = [a for a in get_args(tp) if a is not type(None)]
    return (
        len(args) == 2
        and args[1] is str
        and isinstance(args[0], type)
        and issubclass(args[0], enum.Enum)
    )


def _enum_or_str(profile: Profile) -> Callable[[Any], Any]:
    def factory(tp: Any) -> Callable[[Any, Any], Any]:
        enum_cls = next(a for a in get_args(tp) if a is not type(None))
        members: dict[str, Any] = {m.value: m for m in enum_cls}
        # A surface's own name for a member (Platform's DIRECT_DEPOSIT).
        members |= {
            alias: members[value]
            for alias, value in profile.enum_aliases.items()
            if value in members
        }

        optional = type(None) in get_args(tp)

        def structure(value: Any, _: Any) -> Any:
            if value is None and optional:
                return None
            if not isinstance(value, str):
                raise TypeError(f"expected a string, got {type(value).__name__}")
            # The API mixes casings for one concept; members are lowercase.
            found = members.get(value) or members.get(value.lower())
            if found is None and not (len(value) <= 64 and value.isprintable()):
                # A value unknown to this version is kept, if it is a name.
                raise ValueError(f"not a {enum_cls.__name__} name: {value[:64]!r}")
            return found or value

        return structure

    return factory


# Plain-string fields whose values are enum-like but spelled in either case
# (a rule's ON_FUNDS_TRANSFERRED, an execution's on_funds_transferred,
# Platform's MANUAL): one lowercase value whatever the surface.
_LOWERCASE: Final = frozenset({"trigger_type"})


def _lowercase(value: Any, _: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return value.lower()


def _structure_datetime(value: Any, _: Any) -> datetime:
    if not isinstance(value, str):
        raise TypeError(f"expected an ISO 8601 string, got {type(value).__name__}")
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


# The deepest nesting kept of the server's plain data (a rule's conditions,
# an execution's trigger details): deeper would exhaust the stack later, when
# the data is pickled, journalled or printed.
MAX_PLAIN_DEPTH = 100


def _structure_plain(value: Any, _: Any) -> Any:
    if value is not None and not isinstance(value, dict):
        raise TypeError(f"expected an object, got {type(value).__name__}")
    _check_depth(value)
    return value


def _snake_keys(value: Any, _: Any) -> Any:
    return _snaked(_structure_plain(value, _))


def _check_depth(value: Any) -> None:
    # Without recursion: the check must not be what exhausts the stack.
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children: Iterable[Any]
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > MAX_PLAIN_DEPTH:
            raise ValueError(f"plain data nested over {MAX_PLAIN_DEPTH} levels")
        stack.extend((child, depth + 1) for child in children)


def _snaked(value: Any) -> Any:
    if isinstance(value, dict):
        snaked: dict[Any, Any] = {}
        for k, v in value.items():
            name = snake(k) if isinstance(k, str) else k
            if name in snaked:  # amountInCents and amount_in_cents: which?
                raise ValueError(f"two keys read as {name!r}, {str(k)[:40]!r} one")
            snaked[name] = _snaked(v)
        return snaked
    if isinstance(value, list):
        return [_snaked(v) for v in value]
    return value


def _objects_only(
    converter: cattrs.Converter, profile: Profile
) -> Callable[[Any], Any]:
    def factory(cls: Any) -> Callable[[Any, Any], Any]:
        overrides = {}
        for f in attrs.fields(cls):
            changes: dict[str, Any] = {}
            # The envelope's request id (eq=False) is set by ``structure``.
            if (f.name != "request_id" or f.eq) and profile.wire(f.name) != f.name:
                changes["rename"] = profile.wire(f.name)
            if f.name in _LOWERCASE:
                changes["struct_hook"] = _lowercase
            if changes:
                overrides[f.name] = override(**changes)
        build = make_dict_structure_fn(cls, converter, **overrides)  # type: ignore[arg-type]

        def structure(value: Any, tp: Any) -> Any:
            if not isinstance(value, dict):
                raise TypeError(f"expected an object, got {type(value).__name__}")
            return build(value, tp)

        return structure

    return factory


def _is_homogeneous_tuple(tp: Any) -> bool:
    args = get_args(tp)
    return get_origin(tp) is tuple and len(args) == 2 and args[1] is Ellipsis


def _lists_only(converter: cattrs.Converter) -> Callable[[Any], Any]:
    def factory(tp: Any) -> Callable[[Any, Any], Any]:
        item_type = get_args(tp)[0]

        def structure(value: Any, _: Any) -> tuple[Any, ...]:
            if not isinstance(value, list):
                raise TypeError(f"expected an array, got {type(value).__name__}")
            item = converter.get_structure_hook(item_type)
            return tuple(item(v, item_type) for v in value)

        return structure

    return factory


def _exactly(kind: type[Any]) -> Callable[[Any, Any], Any]:
    # preconf's hooks coerce: 1999.99 -> 1999, "1999" -> 1999, true -> 1. For
    # money and ids, only the JSON type itself is accepted.
    def structure(value: Any, _: Any) -> Any:
        if type(value) is not kind:
            raise TypeError(f"expected {kind.__name__}, got {type(value).__name__}")
        return value

    return structure


def _make(profile: Profile) -> cattrs.Converter:
    converter = make_converter()
    for kind in (int, str, bool):
        converter.register_structure_hook(kind, _exactly(kind))
    # Strings and objects are iterable: never read one as a list or a model.
    converter.register_structure_hook_factory(
        attrs.has, _objects_only(converter, profile)
    )
    converter.register_structure_hook_factory(
        _is_homogeneous_tuple, _lists_only(converter)
    )
    converter.register_structure_hook(datetime, _structure_datetime)
    converter.register_structure_hook_factory(_is_enum_or_str, _enum_or_str(profile))
    converter.register_structure_hook_func(
        lambda tp: tp == Mapping[str, Any],
        _snake_keys if profile.camel_case else _structure_plain,
    )
    return converter


_CONVERTERS = {name: _make(profile) for name, profile in PROFILES.items()}
_CONVERTER = _CONVERTERS[DEFAULT.name]
# What structuring a body that does not fit may raise: all of it is turned
# into ResponseValidationError (deep nesting included).
_INVALID = (cattrs.BaseValidationError, ValueError, TypeError, KeyError, RecursionError)


def structure(
    data: Any,
    cls: type[T],
    *,
    request_id: str | None = None,
    profile: Profile = DEFAULT,
) -> T:
    """
    Build a *cls* from JSON data; ``request_id`` is set where the model has one.

    Raises:
        errors.ResponseValidationError: The data does not fit the model.
    """
    if request_id is not None and isinstance(data, dict) and _has_request_id(cls):
        data = {**data, "request_id": request_id}
    try:
        return _CONVERTERS[profile.name].structure(data, cls)
    except _INVALID as exc:
        raise _invalid(exc, cls.__name__, request_id) from None


def structure_list(
    data: Any,
    cls: type[T],
    *,
    request_id: str | None = None,
    profile: Profile = DEFAULT,
) -> tuple[T, ...]:
    """
    Build a tuple of *cls* from a JSON array.

    Raises:
        errors.ResponseValidationError: ``data`` is not an array of *cls*.
    """
    if not isinstance(data, list):
        raise errors.ResponseValidationError(
            f"expected a list of {cls.__name__}, got {type(data).__name__}",
            request_id=request_id,
        )
    converter = _CONVERTERS[profile.name]
    try:
        return tuple(converter.structure(item, cls) for item in data)
    except _INVALID as exc:
        raise _invalid(exc, cls.__name__, request_id) from None


def unstructure(value: Any) -> Any:
    """
    Turn a model into JSON data (the journal stores results this way).
    """
    return _CONVERTER.unstructure(value)


def _has_request_id(cls: type[Any]) -> bool:
    return attrs.has(cls) and "request_id" in attrs.fields_dict(cls)


def _invalid(
    exc: Exception, name: str, request_id: str | None
) -> errors.ResponseValidationError:
    if isinstance(exc, RecursionError):
        detail = f"{name}: nested too deeply"
    elif isinstance(exc, cattrs.BaseValidationError):
        detail = "; ".join(cattrs.transform_error(exc, path=name))
    else:
        detail = f"{name}: {exc}"
    return errors.ResponseValidationError(
        f"response does not match {name}: {detail}", request_id=request_id
    )

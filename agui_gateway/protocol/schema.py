"""What @ag-ui/client 1.0.0's enforcement stage does to an event's *shape*.

``enforceEvents`` (enforce/enforce.ts + enforce/strip.ts) drops events whose type
the protocol does not know, deep-strips what the event's zod schema does not
describe, then ``schema.parse``s the result. This module ports the first two:

* unknown keys of every described object are removed, except on ``specOpen``
  objects (the RFC 6902 patch operations), which keep them;
* an element of a discriminated union whose tag matches no member is removed
  from its array, or its key omitted when optional; in a required position the
  containing object goes instead (a media part with an unknown ``source.type``);
* opaque positions (metadata, rawEvent, state, activity content, …) pass whole;
* a malformed value on a described field is left untouched — the client's
  ``parse`` rejects it fatally; this module does not validate.

The parse itself changes nothing for events or messages: no event or message
schema declares a default or transform. The only defaults are in
``RunAgentInput`` (``tools``/``context`` default to ``[]``, ``state: null``
becomes absent), which the client applies to ``RUN_STARTED.input`` but its
reducer never reads, so no ``apply_event_defaults`` is needed.

The shapes are compiled once, at import, from the official Python models
(``ag_ui._generated.models``: field aliases, ``Optional``, ``List``,
discriminated ``Union``s). tests/protocol/test_schema.py checks them against the zod
schemas the client actually runs.

Stripping returns the *same* object wherever nothing under it was removed (zod
returns fresh copies), so callers must copy before mutating what they keep.
"""

from __future__ import annotations

import types
import typing
from typing import Any

from ag_ui._generated import models
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from agui_gateway.protocol import events as ev
from agui_gateway.protocol.types import UNRECOGNIZED, Event

# ------------------------------------------------------------------ compiled shapes


class ObjectShape:
    """A described object: its wire keys, which of them need descent, and openness."""

    __slots__ = ("allowed", "fields", "name", "nested", "required", "spec_open")

    def __init__(self, name: str, spec_open: bool) -> None:
        self.name = name
        self.fields: dict[str, Shape] = {}  # wire key -> shape (LEAF for opaque/scalar)
        self.allowed: frozenset[str] = frozenset()  # the described keys
        self.required: frozenset[str] = frozenset()
        self.nested: frozenset[str] = frozenset()  # keys whose shape is not a leaf
        self.spec_open = spec_open


class ArrayShape:
    __slots__ = ("element",)

    def __init__(self, element: Shape) -> None:
        self.element = element


class TaggedUnionShape:
    """A discriminated union: the member is chosen by ``value[discriminator]``."""

    __slots__ = ("discriminator", "members")

    def __init__(self, discriminator: str, members: dict[str, ObjectShape]) -> None:
        self.discriminator = discriminator
        self.members = members


class UnionShape:
    """A structural union (``string | ContentPart[]``): recurse by the value's kind."""

    __slots__ = ("options",)

    def __init__(self, options: list[Shape]) -> None:
        self.options = options


class _Leaf:
    __slots__ = ()

    def __repr__(self) -> str:
        return "LEAF"


LEAF = _Leaf()  # scalars, enums, literals and opaque JSON positions: kept whole
Shape = ObjectShape | ArrayShape | TaggedUnionShape | UnionShape | _Leaf


def _patch_operation_models() -> set[type[BaseModel]]:
    # The zod schemas mark exactly the RFC 6902 operations `.meta({ specOpen: true })`:
    # RFC 6902 says members an operation does not define are ignored, not errors.
    # The Python models carry no such marker, so the set is read off the JsonPatchOperation
    # union rather than listed by hand.
    union = typing.get_args(models.JsonPatchOperation)[0]
    return set(typing.get_args(union))


_SPEC_OPEN_MODELS = _patch_operation_models()
_OBJECTS: dict[type[BaseModel], ObjectShape] = {}


def _discriminator_of(metadata: typing.Iterable[Any]) -> str | None:
    for item in metadata:
        if isinstance(item, FieldInfo) and isinstance(item.discriminator, str):
            return item.discriminator
    return None


def _literal_tag(model: type[BaseModel], discriminator: str) -> str:
    (tag,) = typing.get_args(model.model_fields[discriminator].annotation)
    name: str = tag.value if hasattr(tag, "value") else tag  # EventType members are str enums
    return name


def _compile(annotation: Any, discriminator: str | None = None) -> Shape:
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        base, *metadata = typing.get_args(annotation)
        return _compile(base, discriminator or _discriminator_of(metadata))
    if origin is typing.Union or origin is types.UnionType:
        options = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        if len(options) == 1:
            return _compile(options[0], discriminator)
        if discriminator is not None:
            members = {}
            for member in options:
                member_shape = _compile(member)
                assert isinstance(member_shape, ObjectShape), member
                members[_literal_tag(member, discriminator)] = member_shape
            return TaggedUnionShape(discriminator, members)
        return UnionShape([_compile(option) for option in options])
    if origin is list:
        return ArrayShape(_compile(typing.get_args(annotation)[0]))
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return _compile_object(annotation)
    # str, int, bool, Literal, Any, Dict[str, Any] (zod: z.custom / z.any): opaque.
    return LEAF


def _compile_object(model: type[BaseModel]) -> ObjectShape:
    shape = _OBJECTS.get(model)
    if shape is not None:
        return shape
    shape = _OBJECTS[model] = ObjectShape(model.__name__, model in _SPEC_OPEN_MODELS)
    required = set()
    for name, field in model.model_fields.items():
        key = field.alias or name
        discriminator = field.discriminator if isinstance(field.discriminator, str) else None
        shape.fields[key] = _compile(field.annotation, discriminator)
        if field.is_required():
            required.add(key)
    shape.allowed = frozenset(shape.fields)
    shape.required = frozenset(required)
    shape.nested = frozenset(key for key, child in shape.fields.items() if child is not LEAF)
    return shape


EVENT_SHAPE = _compile(models.Event)
MESSAGE_SHAPE = _compile(models.Message)
assert isinstance(EVENT_SHAPE, TaggedUnionShape) and isinstance(MESSAGE_SHAPE, TaggedUnionShape)
EVENT_SHAPES: dict[str, ObjectShape] = EVENT_SHAPE.members
MESSAGE_SHAPES: dict[str, ObjectShape] = MESSAGE_SHAPE.members
assert EVENT_SHAPES.keys() == ev.ALL_TYPES


# ------------------------------------------------------------------ stripping


def _strip(value: Any, shape: Shape, path: str, stripped: list[str]) -> Any:
    """strip.ts ``stripAgainst``; returns ``value`` itself when nothing under it changed."""
    if isinstance(shape, _Leaf):
        return value
    if isinstance(shape, ObjectShape):
        return _strip_object(value, shape, path, stripped)
    if isinstance(shape, ArrayShape):
        if type(value) is not list or shape.element is LEAF:
            return value
        result = []
        changed = False
        for index, entry in enumerate(value):
            mark = len(stripped)
            child = _strip(entry, shape.element, f"{path}/{index}", stripped)
            if child is UNRECOGNIZED:
                del stripped[mark:]  # the element goes whole, with whatever its descent named
                stripped.append(f"{path}/{index}")
                changed = True
                continue
            changed = changed or child is not entry
            result.append(child)
        return result if changed else value
    if isinstance(shape, TaggedUnionShape):
        if type(value) is not dict:
            return value  # wrong kind: the validator's to reject, fatally
        tag = value.get(shape.discriminator)
        member = shape.members.get(tag) if type(tag) is str else None
        if member is None:
            return UNRECOGNIZED  # an unrecognised union member: removable, never fatal
        return _strip_object(value, member, path, stripped)
    # Structural union: follow the option whose basic kind matches the value.
    is_object = type(value) is dict
    if is_object and sum(isinstance(option, ObjectShape) for option in shape.options) > 1:
        return value  # no tag to choose by: left to the validator, as the client does
    for option in shape.options:
        if isinstance(option, ArrayShape) and type(value) is list:
            return _strip(value, option, path, stripped)
        if isinstance(option, ObjectShape) and is_object:
            return _strip(value, option, path, stripped)
    return value


def _strip_object(value: Any, shape: ObjectShape, path: str, stripped: list[str]) -> Any:
    if type(value) is not dict:
        return value
    keys = value.keys()
    if (shape.spec_open or keys <= shape.allowed) and (not shape.nested or keys.isdisjoint(shape.nested)):
        return value  # fast path: nothing to remove, nothing to descend into
    fields = shape.fields
    result = {}
    changed = False
    for key, item in value.items():
        child_shape = fields.get(key)
        if child_shape is None:
            if shape.spec_open:
                result[key] = item
            else:
                stripped.append(f"{path}/{key}")
                changed = True
            continue
        if child_shape is LEAF:
            result[key] = item
            continue
        mark = len(stripped)
        child = _strip(item, child_shape, f"{path}/{key}", stripped)
        if child is UNRECOGNIZED:
            del stripped[mark:]
            if key not in shape.required:
                stripped.append(f"{path}/{key}")  # optional position: the key goes
                changed = True
                continue
            return UNRECOGNIZED  # required position: the whole containing object is unrecognisable
        changed = changed or child is not item
        result[key] = child
    return result if changed else value


# ------------------------------------------------------------------ public API


def is_recognized_event(event: Event) -> bool:
    """``isRecognizedEvent``: does the protocol know this event's type?"""
    etype = event.get("type")
    return type(etype) is str and etype in ev.ALL_TYPES


def normalize_event(event: Event, stripped: list[str] | None = None) -> Event | None:
    """The event as enforcement passes it on, or ``None`` when enforcement drops it
    (unrecognised type). Paths of removed material are appended to ``stripped``
    (JSON-pointer-ish, as the client's warnings name them)."""
    etype = event.get("type")
    shape = EVENT_SHAPES.get(etype) if type(etype) is str else None
    if shape is None:
        return None
    result = _strip_object(event, shape, "", [] if stripped is None else stripped)
    if not isinstance(result, dict):  # UNRECOGNIZED: unreachable with the 1.0 schemas; strip.ts throws too
        raise AssertionError("the whole event was unrecognisable: schema/stripper mismatch")
    return result


def normalize_message(message: Any, stripped: list[str] | None = None) -> Any:
    """One message as enforcement leaves it inside MESSAGES_SNAPSHOT.messages (or
    RUN_STARTED.input.messages). ``None`` means enforcement removes the message: its
    ``role`` is missing or unknown. A non-object is returned as is (the client's
    validator rejects it)."""
    result = _strip(message, MESSAGE_SHAPE, "", [] if stripped is None else stripped)
    return None if result is UNRECOGNIZED else result


def normalize_messages(messages: list[Any], stripped: list[str] | None = None) -> list[Any]:
    """A message list as enforcement leaves it: each message stripped, messages with
    an unknown role removed."""
    result = _strip(messages, ArrayShape(MESSAGE_SHAPE), "", [] if stripped is None else stripped)
    return list(result) if result is messages else result

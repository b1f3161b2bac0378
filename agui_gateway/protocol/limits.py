"""Nesting and size limits for JSON that enters the gateway (pure; no I/O).

Why a nesting limit at all: orjson refuses to *encode* JSON nested deeper than
254 levels (it decodes up to 1024), so a value between the two can be received
but never stored, served or checkpointed again. Every document that enters
(a request body, an agent event, the state a JSON patch produces) is held to
:data:`MAX_DEPTH`, far below that ceiling, so that every envelope the gateway
wraps around it (a stored record, a checkpoint, a ``/snapshot`` answer, a
compacted STATE_SNAPSHOT) stays encodable with room to spare.

Depth counts containers: ``1`` and ``"x"`` have depth 0, ``{}`` and ``[1]``
depth 1, ``{"a": [{}]}`` depth 3.
"""

from __future__ import annotations

from typing import Any

# Deepest nesting accepted in a request body, an agent event and a thread's state.
# An envelope adds at most a handful of levels (record: 2, checkpoint: ~5), far from 254.
MAX_DEPTH = 100


class TooDeep(ValueError):
    """A JSON value nested deeper than the limit."""


def depth_exceeds(value: Any, limit: int = MAX_DEPTH) -> bool:
    """Whether ``value`` (decoded JSON) nests more than ``limit`` containers deep.

    Iterative (no recursion limit to hit) and it stops at the first path that
    passes the limit.
    """
    return _depth_cap(value, limit) > limit


def raw_may_exceed(data: bytes | bytearray | memoryview, limit: int = MAX_DEPTH) -> bool:
    """Cheap pre-check on encoded JSON: False means it cannot nest deeper than ``limit``.

    Counting opening brackets is done in C and overcounts (brackets in strings,
    siblings), so only documents it flags need :func:`depth_exceeds`.
    """
    raw = bytes(data) if isinstance(data, memoryview) else data
    return raw.count(b"{") + raw.count(b"[") > limit


def json_exceeds(value: Any, raw: bytes | bytearray | memoryview, limit: int = MAX_DEPTH) -> bool:
    """:func:`depth_exceeds` for a value decoded from ``raw``, skipped when ``raw`` is shallow."""
    return raw_may_exceed(raw, limit) and depth_exceeds(value, limit)


def pointer_tokens(path: Any) -> int:
    """How many reference tokens a JSON pointer string has ("" is the root: 0)."""
    if not isinstance(path, str) or not path:
        return 0
    return path.count("/")


def patch_exceeds(document: Any, patch: Any, limit: int = MAX_DEPTH) -> bool:
    """Whether applying ``patch`` (RFC 6902) to ``document`` could nest it deeper than ``limit``.

    ``document`` is assumed within the limit already (every state is, by
    induction), so only what the patch places can pass it: a value put at a
    path of k tokens reaches depth k + depth(value). For ``move``/``copy`` the
    placed value is the one at ``from`` in ``document`` (approximated by the
    deepest it could be, ``limit`` minus its own path, when it cannot be found).
    """
    if not isinstance(patch, list):
        return False
    for op in patch:
        if not isinstance(op, dict):
            continue
        kind = op.get("op")
        tokens = pointer_tokens(op.get("path"))
        if kind in ("add", "replace"):
            value = op.get("value")
            if tokens > limit or (tokens + _depth_cap(value, limit) > limit):
                return True
        elif kind in ("move", "copy"):
            source = _resolve(document, op.get("from"))
            if source is _MISSING:
                continue  # the patch fails on it anyway (all or nothing)
            if tokens + _depth_cap(source, limit) > limit:
                return True
    return False


_MISSING = object()


def _depth_cap(value: Any, limit: int) -> int:
    """The depth of ``value``, or ``limit + 1`` once it is known to pass ``limit``."""
    if not isinstance(value, dict | list):
        return 0
    best = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        best = max(best, depth)
        if best > limit:
            return limit + 1
        children = node.values() if isinstance(node, dict) else node
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return best


def _resolve(document: Any, pointer: Any) -> Any:
    if not isinstance(pointer, str):
        return _MISSING
    if pointer == "":
        return document
    node = document
    for raw in pointer.split("/")[1:]:
        token = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and token in node:
            node = node[token]
        elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
            node = node[int(token)]
        else:
            return _MISSING
    return node

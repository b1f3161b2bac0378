"""RFC 6902 patches that are valid (or deliberately invalid) against a tracked document.

The generator keeps the document a consumer would hold (agent state, an
activity's content) and builds each patch operation against it, applying the
operations one by one with the ``jsonpatch`` library so that a later operation
in the same patch sees the effect of the earlier ones, exactly as an applier
does.

Portability rules, so the official client (fast-json-patch) and Python agree:
object keys never look like integers (JavaScript would reorder them), never
name prototype members, booleans never stand in for numbers in a ``test``, the
root is never replaced or removed by a delta, and ``move`` never goes into its
own subtree.
"""

from __future__ import annotations

import copy
import random
from typing import Any

import jsonpatch

from agui_testkit import text

JsonPatch = list[dict[str, Any]]

_KEY_WORDS = (
    "status",
    "files",
    "todo",
    "plan",
    "notes",
    "count",
    "owner",
    "tags",
    "progress",
    "branch",
    "config",
    "limits",
    "items",
    "meta",
    "summary",
)
# Keys that exercise JSON Pointer escaping and non-ASCII handling.
_ODD_KEYS = ("a/b", "til~de", "~1literal", "ключ", "キー", "emoji🙂", "sp ace", "")


def escape_token(key: str) -> str:
    """RFC 6901 escaping of one reference token."""
    return key.replace("~", "~0").replace("/", "~1")


def pointer(tokens: list[str | int]) -> str:
    return "".join("/" + escape_token(str(token)) for token in tokens)


def random_key(rng: random.Random, odd_keys: bool) -> str:
    if odd_keys and rng.random() < 0.2:
        return rng.choice(_ODD_KEYS)
    return f"{rng.choice(_KEY_WORDS)}_{rng.randrange(1000)}"


def random_value(rng: random.Random, depth: int = 0, odd_keys: bool = False) -> Any:
    """A small JSON value; containers only near the top."""
    roll = rng.random()
    if depth < 2 and roll < 0.15:
        return {random_key(rng, odd_keys): random_value(rng, depth + 1, odd_keys) for _ in range(rng.randrange(0, 4))}
    if depth < 2 and roll < 0.25:
        return [random_value(rng, depth + 1, odd_keys) for _ in range(rng.randrange(0, 4))]
    if roll < 0.55:
        return text.words(rng, rng.randrange(1, 5)) if not odd_keys or rng.random() < 0.7 else rng.choice(text.UNICODE)
    if roll < 0.75:
        return rng.randrange(-1000, 100000)
    if roll < 0.85:
        return round(rng.uniform(-100, 100), 3)
    if roll < 0.95:
        return rng.random() < 0.5
    return None


def random_document(rng: random.Random, keys: int, odd_keys: bool = False) -> dict[str, Any]:
    """An object with ``keys`` top-level entries (used for snapshots)."""
    doc: dict[str, Any] = {}
    while len(doc) < keys:
        doc[random_key(rng, odd_keys)] = random_value(rng, 0, odd_keys)
    return doc


def _random_existing_path(rng: random.Random, doc: Any) -> list[str | int]:
    """A random walk from the root to an existing non-root location (or [] if none)."""
    tokens: list[str | int] = []
    node = doc
    while True:
        if isinstance(node, dict) and node:
            key = rng.choice(list(node))
            tokens.append(key)
            node = node[key]
        elif isinstance(node, list) and node:
            index = rng.randrange(len(node))
            tokens.append(index)
            node = node[index]
        else:
            return tokens
        if rng.random() < 0.45:
            return tokens


def _resolve(doc: Any, tokens: list[str | int]) -> Any:
    for token in tokens:
        doc = doc[token]
    return doc


def _random_container_path(rng: random.Random, doc: Any) -> list[str | int]:
    """Path to an existing container (root included) to add into."""
    tokens = _random_existing_path(rng, doc)
    while tokens and not isinstance(_resolve(doc, tokens), (dict, list)):
        tokens.pop()
    return tokens


def _add_target(rng: random.Random, doc: Any, odd_keys: bool) -> list[str | int] | None:
    """A location ``add`` may write to: a new/existing key, an array index or '-'."""
    parent_tokens = _random_container_path(rng, doc)
    parent = _resolve(doc, parent_tokens)
    if isinstance(parent, dict):
        return [*parent_tokens, random_key(rng, odd_keys)]
    if isinstance(parent, list):
        return [*parent_tokens, rng.choice(("-", rng.randrange(len(parent) + 1)))]
    return None


def _is_prefix(prefix: list[str | int], tokens: list[str | int]) -> bool:
    return len(prefix) <= len(tokens) and [str(t) for t in tokens[: len(prefix)]] == [str(t) for t in prefix]


def _one_op(rng: random.Random, doc: Any, odd_keys: bool) -> dict[str, Any] | None:
    kind = rng.choices(("add", "replace", "remove", "move", "copy", "test"), (30, 30, 12, 8, 8, 12))[0]
    existing = _random_existing_path(rng, doc)
    if kind == "add" or not existing:
        target = _add_target(rng, doc, odd_keys)
        if target is None:
            return None
        return {"op": "add", "path": pointer(target), "value": random_value(rng, 1, odd_keys)}
    if kind == "replace":
        return {"op": "replace", "path": pointer(existing), "value": random_value(rng, 1, odd_keys)}
    if kind == "remove":
        return {"op": "remove", "path": pointer(existing)}
    if kind == "test":
        return {"op": "test", "path": pointer(existing), "value": copy.deepcopy(_resolve(doc, existing))}
    target = _add_target(rng, doc, odd_keys)
    if target is None or (target[-1] == "-" and kind == "move"):
        return None
    if kind == "move" and (_is_prefix(existing, target) or _is_prefix(target, existing)):
        return None
    return {"op": kind, "from": pointer(existing), "path": pointer(target)}


def valid_patch(rng: random.Random, doc: Any, ops: int, odd_keys: bool = False) -> tuple[JsonPatch, Any]:
    """A patch of up to ``ops`` operations that applies to ``doc``; returns (patch, new doc).

    ``doc`` itself is not modified.
    """
    working = copy.deepcopy(doc)
    patch: JsonPatch = []
    attempts = 0
    while len(patch) < ops and attempts < ops * 4:
        attempts += 1
        op = _one_op(rng, working, odd_keys)
        if op is None:
            continue
        try:
            working = jsonpatch.apply_patch(working, [op], in_place=True)
        except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException):
            continue
        if type(working) is not type(doc):  # ops never target the root
            raise AssertionError("patch generator replaced the root")
        patch.append(op)
    return patch, working


def failing_patch(rng: random.Random, doc: Any, odd_keys: bool = False) -> JsonPatch:
    """A patch whose first operations would apply but whose final ``test`` does not hold.

    The applier must reject the whole patch (RFC 6902 is all-or-nothing), so
    the document a consumer holds afterwards is ``doc`` unchanged.
    """
    prefix, after_prefix = valid_patch(rng, doc, rng.randrange(1, 4), odd_keys)
    tokens = _random_existing_path(rng, after_prefix)
    # A string that never appears as a generated value, so the test fails in any
    # implementation regardless of how it compares numbers and booleans.
    impossible = f"\u2400never-{rng.randrange(10**9)}"
    return [*prefix, {"op": "test", "path": pointer(tokens), "value": impossible}]


def find_path(rng: random.Random, doc: Any, predicate: Any, limit: int = 10_000) -> list[str | int] | None:
    """A random non-root location whose value satisfies ``predicate`` (None if there is none)."""
    found: list[list[str | int]] = []
    stack: list[tuple[list[str | int], Any]] = [([], doc)]
    while stack and len(found) < limit:
        tokens, node = stack.pop()
        if tokens and predicate(node):
            found.append(tokens)
        if isinstance(node, dict):
            stack.extend(([*tokens, k], v) for k, v in node.items())
        elif isinstance(node, list):
            stack.extend(([*tokens, i], v) for i, v in enumerate(node))
    return rng.choice(found) if found else None

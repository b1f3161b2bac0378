"""``GET /threads``: the thread list, optionally filtered by id prefix and paginated.

Without ``limit`` and ``cursor`` the answer is what it always was: every
readable thread, in the store's order (by id), as ``{"threads": [...]}``. With
either, it is one page sorted by last activity, newest first (ties by id), and
``{"threads": [...], "next": CURSOR | null}``; ``next`` is passed back as
``?cursor=`` for the page after. A cursor is the sort key of the last row sent,
so a page never repeats a row of the page before, even when threads are added
meanwhile (a thread whose activity moves it ahead of the cursor shows up in the
live feed, ``GET /threads/changes``, instead).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from agui_gateway.server.errors import InvalidListQuery
from agui_gateway.server.runtime.thread import ThreadRuntime
from agui_gateway.store.base import ThreadInfo

MAX_LIMIT = 1000

Row = dict[str, Any]  # {"threadId", "events", "bytes", "lastActivity", "running"}
SortKey = tuple[int, str]


@dataclass(frozen=True, slots=True)
class ListQuery:
    prefix: str = ""
    limit: int | None = None  # None with no cursor: the unpaginated, legacy answer
    after: SortKey | None = None

    @property
    def paginated(self) -> bool:
        return self.limit is not None or self.after is not None


def parse_list_query(params: dict[str, str]) -> ListQuery:
    prefix = params.get("prefix", "")
    if len(prefix) > 128:
        raise InvalidListQuery("prefix is at most 128 characters (the longest thread id)")
    limit: int | None = None
    if "limit" in params:
        try:
            limit = int(params["limit"])
        except ValueError:
            raise InvalidListQuery(f"limit must be an integer, not {params['limit']!r}") from None
        if not 1 <= limit <= MAX_LIMIT:
            raise InvalidListQuery(f"limit must be between 1 and {MAX_LIMIT}")
    after = decode_cursor(params["cursor"]) if params.get("cursor") else None
    if after is not None and limit is None:
        limit = 100
    return ListQuery(prefix=prefix, limit=limit, after=after)


def thread_row(info: ThreadInfo, runtime: ThreadRuntime | None) -> Row:
    """One thread of the list (and of the changes feed)."""
    return {
        "threadId": info.thread_id,
        "events": info.events,
        "bytes": info.bytes,
        "lastActivity": info.last_activity_ms,
        # A run in progress here, or one the log shows open (another replica's, with
        # recovery off; with it on, runs a crash left open are closed at start-up).
        "running": runtime is not None and (runtime.running or runtime.log_run_open),
    }


def sort_key(row: Row) -> SortKey:
    """Newest activity first; a thread without a timestamp last; ties by id."""
    return (-(row["lastActivity"] or 0), row["threadId"])


def encode_cursor(key: SortKey) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(list(key))).decode().rstrip("=")


def decode_cursor(cursor: str) -> SortKey:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value = orjson.loads(raw)
    except (binascii.Error, ValueError) as exc:
        raise InvalidListQuery("cursor is not one this gateway sent (pass back 'next' as it is)") from exc
    if not isinstance(value, list) or len(value) != 2 or type(value[0]) is not int or not isinstance(value[1], str):
        raise InvalidListQuery("cursor is not one this gateway sent (pass back 'next' as it is)")
    return (value[0], value[1])


def page(rows: Iterable[Row], query: ListQuery) -> dict[str, Any]:
    """The response body for ``rows`` (already filtered by access) under ``query``."""
    selected = [row for row in rows if row["threadId"].startswith(query.prefix)]
    if not query.paginated:
        return {"threads": selected}
    keyed = sorted(((sort_key(row), row) for row in selected), key=lambda pair: pair[0])
    if query.after is not None:
        after = query.after
        keyed = [pair for pair in keyed if pair[0] > after]
    assert query.limit is not None
    chunk = keyed[: query.limit]
    more = len(keyed) > query.limit
    return {
        "threads": [row for _, row in chunk],
        "next": encode_cursor(chunk[-1][0]) if more and chunk else None,
    }

"""The protocol room's shared vocabulary: the event and message aliases, the
sentinels, and the official client's SSE buffer limit. Defined here once and
imported everywhere else (store, upstream, server and CLI included)."""

from __future__ import annotations

import enum
from typing import Any, Final

Event = dict[str, Any]
"""One AG-UI event as it travels on the wire: a JSON object with a string ``type``."""

Message = dict[str, Any]
"""One AG-UI message (``messages[i]`` of a MESSAGES_SNAPSHOT or of the client's agent)."""


class Sentinel(enum.Enum):
    """Markers that no JSON value can be. An enum so that ``is`` checks narrow for the
    type checker and each marker prints as what it means."""

    ABSENT = "absent"
    NOT_GIVEN = "not given"
    UNRECOGNIZED = "unrecognized"

    def __repr__(self) -> str:
        return f"<{self.value}>"


ABSENT: Final = Sentinel.ABSENT
"""JavaScript ``undefined``: the key is not there at all (a JSON ``null`` is present)."""

NOT_GIVEN: Final = Sentinel.NOT_GIVEN
"""A keyword argument the caller did not pass, where ``None`` is a meaningful value."""

UNRECOGNIZED: Final = Sentinel.UNRECOGNIZED
"""While unwinding a schema check: this whole value is unrecognisable here."""


CLIENT_SSE_BUFFER_LIMIT: Final = 10 * 1024 * 1024
"""The official client's SSE frame limit, 10,485,760.

Source: ``MAX_BUFFER_SIZE = 10 * 1024 * 1024`` in @ag-ui/client 1.0.0
``src/transform/sse.ts`` (read from ``harness/node_modules/@ag-ui/client/dist/index.js.map``,
sourcesContent). After each network chunk the client splits its buffer on ``\\n\\n`` and
fails the stream ("SSE buffer size exceeded maximum limit of 10 MB") when the tail left
over, i.e. the frame still arriving, is longer than this. It is measured in decoded
UTF-16 code units, not bytes; a UTF-8 byte count is never smaller than that, so a frame
whose bytes stay under this limit is always accepted, whatever the transport's chunking.
"""

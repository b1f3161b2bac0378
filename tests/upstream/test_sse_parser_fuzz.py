"""Fuzzing the agent-side SSE parser: any bytes, split anywhere.

It never raises, everything it returns is a dispatched event or a counted
``Malformed``, and what it holds between two feeds never passes the event size
limit, however much is fed that it has to discard (no memory that grows with
input it drops). Within the limits, how the bytes are split changes nothing.
"""

from __future__ import annotations

import itertools
import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agui_gateway.upstream.sse_parser import Malformed, SseData, SseParser, decode_event

LIMIT = 256

# Bytes rich in what matters to the parser: line ends, colons, field names, data.
_pieces = st.one_of(
    st.binary(max_size=64),
    st.sampled_from(
        [b"\n", b"\r", b"\r\n", b":", b"data:", b"data: ", b"event: x", b"id: 1", b"retry: 5", b"\xef\xbb\xbf"]
    ),
    st.builds(lambda n: b"x" * n, st.integers(0, 3 * LIMIT)),
    st.just(b'data: {"type":"RUN_STARTED","threadId":"t","runId":"r"}\n\n'),
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(pieces=st.lists(_pieces, max_size=40), cuts=st.lists(st.integers(0, 10_000), max_size=20))
def test_any_bytes_split_anywhere_never_crash_and_stay_bounded(pieces: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(pieces)
    bounds = sorted({0, len(stream), *(c % (len(stream) + 1) for c in cuts)})
    parser = SseParser(max_event_bytes=LIMIT)
    out: list[SseData | Malformed] = []
    for start, end in itertools.pairwise(bounds):
        out += parser.feed(stream[start:end])
        assert parser.buffered_bytes <= LIMIT
    out += parser.close()
    assert parser.buffered_bytes == 0
    for item in out:
        assert isinstance(item, SseData | Malformed)
        if isinstance(item, SseData):
            assert len(item.data) <= LIMIT
            assert isinstance(decode_event(item.data), dict | Malformed)
    # Within the limits, the same bytes in one piece give the same result. (Past them the
    # parser drops a line or event as it streams, so where a chunk ends may decide which.)
    whole = SseParser(max_event_bytes=LIMIT)
    in_one = whole.feed(stream) + whole.close()
    longest_line = max((len(line) for line in re.split(rb"\r\n|\r|\n", stream)), default=0)
    if longest_line < LIMIT // 2 and not any(isinstance(i, Malformed) and "larger" in i.reason for i in in_one):
        assert in_one == out


@settings(max_examples=50, deadline=None)
@given(size=st.integers(LIMIT + 1, 20 * LIMIT), chunk=st.integers(1, 97))
def test_an_endless_line_is_dropped_as_it_streams(size: int, chunk: int) -> None:
    parser = SseParser(max_event_bytes=LIMIT)
    data = b"data: " + b"y" * size
    out = []
    for start in range(0, len(data), chunk):
        out += parser.feed(data[start : start + chunk])
        assert parser.buffered_bytes <= LIMIT
    out += parser.feed(b'\n\ndata: {"type":"X"}\n\n')
    assert [type(item) for item in out] == [Malformed, SseData]

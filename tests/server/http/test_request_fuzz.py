"""Fuzzing the request parser: any body, any resume id, never anything but a value or a 4xx.

``read_run_input`` runs on a real Starlette ``Request`` fed from an ASGI receive
channel (no network needed: this is the parser, not the transport); bodies are
arbitrary bytes, arbitrary JSON, RunAgentInput-shaped JSON and JSON nested past
the limit. ``parse_resume_position`` gets arbitrary text.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.requests import Request

from agui_gateway.protocol.limits import MAX_DEPTH, depth_exceeds
from agui_gateway.server.errors import ApiError, BadResumePosition
from agui_gateway.server.http.requests import parse_resume_position, read_run_input
from agui_testkit import strategies as kit

LIMIT = 64 * 1024


def _request(body: bytes) -> Request:
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/agents/a/run",
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        "query_string": b"",
    }
    return Request(scope, receive)


def _parse(body: bytes) -> dict[str, Any] | ApiError:
    try:
        return asyncio.run(read_run_input(_request(body), LIMIT))
    except ApiError as exc:
        return exc


def _nest(value: Any, depth: int) -> Any:
    for _ in range(depth):
        value = [value]
    return value


_run_inputs = st.fixed_dictionaries(
    {"threadId": st.text(max_size=10), "runId": st.text(max_size=5)},
    optional={
        "messages": st.lists(kit.json_objects(), max_size=3),
        "state": kit.json_values(),
        "forwardedProps": kit.json_values(),
        "tools": st.lists(kit.json_objects(), max_size=2),
        "context": st.lists(kit.json_objects(), max_size=2),
    },
)


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    body=st.one_of(
        st.binary(max_size=200),
        kit.json_values().map(orjson.dumps),
        _run_inputs.map(orjson.dumps),
        st.tuples(_run_inputs, st.integers(MAX_DEPTH - 3, 400)).map(
            lambda pair: orjson.dumps(pair[0])[:-1] + b',"state":' + b"[" * pair[1] + b"]" * pair[1] + b"}"
        ),
    )
)
def test_any_body_is_a_run_input_or_a_4xx(body: bytes) -> None:
    result = _parse(body)
    if isinstance(result, ApiError):
        assert 400 <= result.status < 500 and result.message
        orjson.dumps({"error": result.message, "details": result.details})  # the answer encodes
    else:
        assert isinstance(result, dict) and not depth_exceeds(result, MAX_DEPTH)
        orjson.dumps(result)  # what is accepted can be stored


def test_the_depth_limit_is_exact() -> None:
    base = orjson.dumps({"threadId": "t", "runId": "r", "messages": [], "tools": [], "context": []})[:-1]
    at_limit = base + b',"state":' + orjson.dumps(_nest(1, MAX_DEPTH - 1)) + b"}"
    assert isinstance(_parse(at_limit), dict)
    beyond = base + b',"state":' + orjson.dumps(_nest(1, MAX_DEPTH)) + b"}"
    refused = _parse(beyond)
    assert isinstance(refused, ApiError) and refused.status == 400


@given(header=st.one_of(st.none(), st.text(max_size=30)), after=st.one_of(st.none(), st.text(max_size=30)))
def test_any_resume_position_is_an_id_or_a_clear_error(header: str | None, after: str | None) -> None:
    try:
        position = parse_resume_position(header, after)
    except BadResumePosition as exc:
        message = str(exc)
    else:
        assert position is None or 0 <= position.seq < 2**63
        return
    assert "event id" in message


def test_a_resume_id_of_thousands_of_digits_is_refused_quickly() -> None:
    for text in ("9" * 5000, "1" + "0" * 19, "0" * 30 + "1"):
        try:
            parse_resume_position(None, text)
        except BadResumePosition:
            continue
        raise AssertionError(f"{text[:20]}... accepted")

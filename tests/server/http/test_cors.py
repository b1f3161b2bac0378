"""CORS: a browser UI on another origin may call the gateway when, and only when, configured.

Real requests against the real server on loopback: the preflight a browser sends
before a cross-origin call with an Authorization header or a JSON body, and simple
requests carrying ``Origin``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from support.servers import RunningGateway, serve_gateway
from support.sse import SseReader

from agui_gateway.cli.serve import build_config, serve
from agui_gateway.server.config import ConfigError, GatewayConfig, load_config, parse_tokens

UI = "http://ui.example:5173"
TOKEN = "reader-token-cors"


def _preflight(method: str, headers: str, origin: str = UI) -> dict[str, str]:
    return {
        "origin": origin,
        "access-control-request-method": method,
        "access-control-request-headers": headers,
    }


def _listed(value: str) -> set[str]:
    return {part.strip().lower() for part in value.split(",")}


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[RunningGateway]:
    config = GatewayConfig(
        data_dir=tmp_path / "data",
        demo=True,
        demo_pace=0,
        tokens=parse_tokens(f"{TOKEN}:write:*"),
        cors_origins=(UI,),
    )
    with serve_gateway(config) as gw:
        yield gw


async def test_preflight_allows_the_methods_and_headers_of_the_api(gateway: RunningGateway) -> None:
    async with httpx.AsyncClient(base_url=gateway.url, timeout=10) as client:
        for path, method, requested in (
            ("/agents/demo/run", "POST", "authorization, content-type"),
            ("/threads/t1/events", "GET", "authorization, last-event-id"),
            ("/threads/t1/stop", "POST", "authorization"),
        ):
            # A browser sends preflights without credentials: they must not meet the 401.
            response = await client.options(path, headers=_preflight(method, requested))
            assert response.status_code == 200, (path, response.text)
            assert response.headers["access-control-allow-origin"] == UI
            assert _listed(response.headers["access-control-allow-methods"]) == {"get", "post"}
            assert {"authorization", "content-type", "last-event-id"} <= _listed(
                response.headers["access-control-allow-headers"]
            )
            assert "access-control-allow-credentials" not in response.headers
            assert "origin" in _listed(response.headers["vary"])


async def test_requests_from_the_origin_get_cors_headers_and_nothing_extra(gateway: RunningGateway) -> None:
    async with httpx.AsyncClient(base_url=gateway.url, timeout=10) as client:
        auth = {"origin": UI, "authorization": f"Bearer {TOKEN}"}
        listed = await client.get("/threads", headers=auth)
        assert listed.status_code == 200 and listed.json() == {"threads": []}
        assert listed.headers["access-control-allow-origin"] == UI
        assert "origin" in _listed(listed.headers["vary"])
        assert "access-control-expose-headers" not in listed.headers
        assert "access-control-allow-credentials" not in listed.headers

        # An error is readable by the page too (the UI can show why it was refused).
        refused = await client.get("/threads", headers={"origin": UI})
        assert refused.status_code == 401 and refused.headers["access-control-allow-origin"] == UI
        assert "error" in refused.json()

        # The event stream, as an EventSource on the UI's page opens it.
        async with client.stream("GET", "/threads/t1/events", headers=auth) as stream:
            assert stream.status_code == 200
            assert stream.headers["access-control-allow-origin"] == UI
            assert stream.headers["content-type"].startswith("text/event-stream")
            async for chunk in stream.aiter_bytes():
                assert chunk.startswith(b"retry:")  # the stream's preamble arrived
                break


async def test_other_origins_get_no_cors_headers(gateway: RunningGateway) -> None:
    other = "http://evil.example"
    async with httpx.AsyncClient(base_url=gateway.url, timeout=10) as client:
        preflight = await client.options("/agents/demo/run", headers=_preflight("POST", "content-type", other))
        assert preflight.status_code == 400
        assert "access-control-allow-origin" not in preflight.headers
        response = await client.get("/threads", headers={"origin": other, "authorization": f"Bearer {TOKEN}"})
        assert response.status_code == 200  # CORS is the browser's rule; the server only withholds the header
        assert "access-control-allow-origin" not in response.headers
        # A header the API does not read is not allowed either.
        odd = await client.options("/threads", headers=_preflight("GET", "x-custom"))
        assert odd.status_code == 400


async def test_any_origin_with_a_star(tmp_path: Path) -> None:
    config = GatewayConfig(data_dir=tmp_path / "data", demo=True, demo_pace=0, cors_origins=("*",))
    with serve_gateway(config) as gw:
        async with httpx.AsyncClient(base_url=gw.url, timeout=10) as client:
            preflight = await client.options(
                "/agents/demo/run", headers=_preflight("POST", "content-type", "https://anything.example")
            )
            assert preflight.status_code == 200
            assert preflight.headers["access-control-allow-origin"] == "*"
            response = await client.get("/healthz", headers={"origin": "https://anything.example"})
            assert response.headers["access-control-allow-origin"] == "*"

            # A run started from the page: the response is the run's SSE stream.
            body = {
                "threadId": "t1",
                "runId": "r1",
                "state": {},
                "tools": [],
                "context": [],
                "forwardedProps": {},
                "messages": [{"id": "u1", "role": "user", "content": "hi"}],
            }
            async with client.stream(
                "POST", "/agents/demo/run", json=body, headers={"origin": "https://anything.example"}
            ) as run:
                assert run.status_code == 200 and run.headers["access-control-allow-origin"] == "*"
                reader, frames = SseReader(), []
                async for chunk in run.aiter_bytes():
                    frames += reader.feed(chunk)
                types = [f.event["type"] for f in frames if f.event is not None]
                assert types[0] == "RUN_STARTED" and types[-1] == "RUN_FINISHED"


async def test_off_by_default(tmp_path: Path) -> None:
    assert GatewayConfig().cors_origins == ()
    with serve_gateway(GatewayConfig(data_dir=tmp_path / "data")) as gw:
        async with httpx.AsyncClient(base_url=gw.url, timeout=10) as client:
            # Without tokens a page of a foreign origin is refused outright (issue 8: no
            # web page may drive a local gateway), the preflight included; no CORS headers.
            preflight = await client.options("/threads", headers=_preflight("GET", "authorization"))
            assert preflight.status_code == 403
            assert "access-control-allow-origin" not in preflight.headers
            response = await client.get("/threads", headers={"origin": UI})
            assert response.status_code == 403 and "access-control-allow-origin" not in response.headers
            assert (await client.get("/threads")).status_code == 200


# -- configuration -----------------------------------------------------------------------


def test_origins_from_file_environment_and_flags(tmp_path: Path) -> None:
    toml = tmp_path / "gateway.toml"
    toml.write_text('cors_origins = ["https://UI.example.com", "http://localhost:3000"]\n')
    assert load_config(toml).cors_origins == ("https://ui.example.com", "http://localhost:3000")
    as_json = tmp_path / "gateway.json"
    as_json.write_text(json.dumps({"cors_origins": "*"}))
    assert load_config(as_json).cors_origins == ("*",)

    env = {"AGUI_GATEWAY_CORS_ORIGINS": "https://a.example, https://b.example:8443"}
    assert load_config(toml, env).cors_origins == ("https://a.example", "https://b.example:8443")

    def flags(*origins: str) -> GatewayConfig:
        return build_config(config_file=toml, cors_origins=origins)

    assert flags().cors_origins == ("https://ui.example.com", "http://localhost:3000")
    assert flags("https://c.example", "*").cors_origins == ("https://c.example", "*")


@pytest.mark.parametrize("value", ["https://ui.example.com/", "ui.example.com", "https://ui.example.com/app", "null"])
def test_what_is_not_an_origin_is_a_clear_error(value: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cors_origins: .* is not an origin"):
        load_config(None, {"AGUI_GATEWAY_CORS_ORIGINS": value})
    path = tmp_path / "gateway.json"
    path.write_text(json.dumps({"cors_origins": [value]}))
    with pytest.raises(ConfigError, match="is not an origin"):
        load_config(path)


@pytest.mark.parametrize("value", [3, ["https://ok.example", 1], {"origin": "https://ok.example"}])
def test_origins_of_the_wrong_type_are_a_clear_error(value: object, tmp_path: Path) -> None:
    path = tmp_path / "gateway.json"
    path.write_text(json.dumps({"cors_origins": value}))
    with pytest.raises(ConfigError, match="cors_origins: expected a list of origins"):
        load_config(path)


def test_the_serve_flag_rejects_a_bad_origin() -> None:
    result = CliRunner().invoke(serve, ["--cors-origin", "https://ui.example.com/"])
    assert result.exit_code == 2
    assert "cors_origins" in result.output and "trailing slash" in result.output

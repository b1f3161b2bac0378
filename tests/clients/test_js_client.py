"""The JavaScript client (``clients/js``): build it and run its Node test suite.

The suite starts the real gateway with this interpreter (``AGUI_PYTHON``), puts a
connection-cutting TCP proxy in front of it and checks that ``GatewayAgent`` ends every
cut run and every restored thread exactly as the official client's uncut run does.
Node.js (>= 18) and npm are required: without them this test fails, it does not skip.
"""

from __future__ import annotations

from support.js_package import CLIENT, build_client, run_node_tests


def test_js_client_builds_and_passes_its_node_suite() -> None:
    build_client()
    suites = sorted((CLIENT / "test").glob("*.test.mjs"))
    assert suites, "clients/js/test has no *.test.mjs files"
    run_node_tests(suites, timeout=280)

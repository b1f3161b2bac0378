"""The agent side: one upstream AG-UI run (``run``: its lifecycle), the HTTP exchange
with the agent and its fault mapping (``agent_http``), the SSE parser (``sse_parser``),
and the scripted demo agent (``demo``)."""

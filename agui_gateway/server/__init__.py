"""The HTTP server: app wiring, routes, request parsing, API errors, SSE encoding, the history-then-
live streams, fan-out, thread runtimes, runs, auth, configuration and metrics."""

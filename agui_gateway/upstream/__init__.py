"""The agent side: the SSE client that runs one upstream AG-UI run (with its fault
mapping), its SSE parser, and the scripted demo agent."""

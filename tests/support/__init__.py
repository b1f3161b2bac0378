"""Helpers shared by the tests of every room, one of each.

* :mod:`support.waiting`: wait on a condition under a deadline (sync and async forms).
* :mod:`support.servers`: real servers on loopback (any ASGI app, the gateway
  in-process or as a child process, a refused port).
* :mod:`support.agents`: the scripted agent the gateway and the upstream client talk to.
* :mod:`support.events`: AG-UI events, run inputs and stored logs as tests build and read them.
* :mod:`support.sse`: reading the gateway's event streams (frames, ids, comments).
* :mod:`support.official_client`: the Node driver of ``harness/`` and the official
  client's replay server on top of it.

Fixtures built on these (``official_client``, ``agent``) are in ``tests/conftest.py``.
"""

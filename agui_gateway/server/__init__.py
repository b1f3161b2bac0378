"""The HTTP gateway, in sub-rooms: ``http/`` (the API), ``runtime/`` (threads and runs),
``fanout/`` (delivering logs to subscribers), ``ui/`` (the thread browser); at their base
``config/``, ``errors.py``, ``metrics.py`` and ``sse.py``; wired by ``app.py`` and
``gateway.py``. ``docs/architecture.md`` has a line for each module."""

"""The HTTP API: routes by resource, request parsing, responses, auth and browser guards.

``routes.py`` (the route table), ``runs.py``, ``threads.py``, ``agents.py``,
``system.py`` (the handlers, by resource), ``streams.py`` (the history-then-live
stream bodies), ``listing.py`` (the thread list's pages), ``requests.py`` (parsing),
``responses.py`` (responses, and the one place errors become responses), ``auth.py``,
``guards.py``, ``stream_slots.py``, ``services.py`` (what the handlers are given).
"""

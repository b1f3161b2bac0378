"""Fan-out: delivering a thread's log to every subscriber, without loss and in bounded memory.

``tail.py`` (the one waiter on the store per thread and process), ``follower.py`` (each
subscriber's cursor over the log), ``recent.py`` (the recent frames subscribers share),
``changes.py`` (which threads changed, for the thread list's feed), ``batches.py``
(send-sized pieces of every stream).
"""

"""The gateway's runtime: threads and runs in one process.

``thread.py`` (one thread: its replay state, recovery, run slot and subscribers, and
the operations runs use), ``replay.py`` (the compactor, checkpoint and encoded
replay), ``recovery.py`` (closing runs a crash left open), ``registry.py`` (the
runtimes of the threads this process touches), ``manager.py`` and ``run_task.py``
(starting, driving and stopping runs), ``active_run.py``, ``leases.py`` (renewal,
handover and the recovery sweep of run leases), ``branches.py`` (runs and branches
read from a log), ``bad_input.py`` (the rate-limited log of bad input).
"""

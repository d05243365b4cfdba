"""Queue workers on PostgreSQL, on the procrastinate engine (docs/decisions/0001-queue-engine.md).

* :mod:`.engine`: the procrastinate app, its schema (the engine's own), PostgreSQL only
* :mod:`.enqueue`: one job per planned entry, deduplicated by entry and fingerprint
* :mod:`.tasks`: the job: the same unit of work as ``limner generate`` (:mod:`limner.runner.unit`)
* :mod:`.worker`: a worker process: a run of its own (identity, heartbeat), stalled-job recovery
* :mod:`.limits`: provider concurrency across every worker (advisory locks) and a shared spend cap
"""

"""Prometheus metrics of one worker (``limner worker --metrics-port P``), served by prometheus_client.

* ``limner_jobs_total{outcome}``: jobs this worker finished: ``published``, ``failed``, ``retried`` (left to
  another live run, to be run again), ``up_to_date`` (nothing to do)
* ``limner_spend_usd_total{provider}``: what this worker's provider calls cost (the ledger's figures)
* ``limner_provider_call_seconds{provider}``: provider call latency (histogram)
* ``limner_queue_jobs{status}``: jobs on the whole queue by status (``queued``, ``running``, ``failed``,
  ``done``), read every few seconds
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from limner.providers import Provider

LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300)


class WorkerMetrics:
    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

        self.registry = CollectorRegistry()
        self.jobs = Counter("limner_jobs", "Jobs this worker finished, by outcome", ["outcome"], registry=self.registry)
        self.spend = Counter("limner_spend_usd", "USD spent by this worker's provider calls", ["provider"],
                             registry=self.registry)
        self.latency = Histogram("limner_provider_call_seconds", "Provider call latency", ["provider"],
                                 buckets=LATENCY_BUCKETS, registry=self.registry)
        self.queue = Gauge("limner_queue_jobs", "Jobs on the queue, by status", ["status"], registry=self.registry)
        self.server, self.thread = start_http_server(port, addr=host, registry=self.registry)

    @property
    def port(self) -> int:
        return int(self.server.server_port)

    def time_calls(self, provider: Provider) -> None:
        """Observe the latency of every ``generate`` of this provider instance."""
        generate = provider.generate
        histogram = self.latency.labels(provider.name)

        async def timed(request: Any) -> Any:
            started = time.perf_counter()
            try:
                return await generate(request)
            finally:
                histogram.observe(time.perf_counter() - started)

        provider.generate = timed  # type: ignore[method-assign]

    def set_queue(self, counts: dict[str, int]) -> None:
        for status, n in counts.items():
            self.queue.labels(status).set(n)

    def close(self) -> None:
        self.server.shutdown()

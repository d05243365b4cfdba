"""Background regenerations: the request returns a job id at once; one worker thread runs each job through
:func:`limner.review.regenerate` (the same unit of work as ``limner generate``) with a Project of its own,
opened from the studio's settings, sharing one set of provider instances (a local model stays loaded). Job status lives in memory: ``queued`` → ``running`` → ``done`` or
``failed``, with the run's summary."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from limner.config.settings import Settings

log = logging.getLogger(__name__)

#: finished jobs kept for ``GET /api/jobs/{id}`` (the oldest are forgotten first)
KEEP_FINISHED = 500


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclasses.dataclass
class Job:
    id: str
    entry_id: str
    params: dict[str, Any]
    status: str = "queued"
    created_at: str = dataclasses.field(default_factory=_now)
    started_at: str | None = None
    finished_at: str | None = None
    #: the run's summary (``limner generate --json``'s keys)
    summary: dict[str, Any] | None = None
    error: str | None = None
    #: the render the job made (None until it is done, and for a failed job)
    render_id: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class Jobs:
    """Queue and run regenerations, one at a time, off the request threads."""

    def __init__(self, settings: Settings, *, on_finished: Callable[[Job], None] | None = None) -> None:
        self.settings = settings
        self._on_finished = on_finished
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        #: what each job's request asked for (before a new seed was drawn), to know a repeated request
        self._asked: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="limner-regenerate")
        #: the providers every job's Project uses: a local model is loaded by the first regeneration and kept
        #: warm for the next ones (jobs run one at a time, each in an event loop of its own)
        self._providers: dict[str, Any] = {}

    def submit(self, entry_id: str, *, new_seed: Callable[[], int] | None = None, **params: Any) -> Job:
        """Queue a regeneration. ``new_seed``: the seed of a request that asks for nothing ("again"). The same
        request for an entry whose job is still queued or running (a double click) is that job, not a second
        paid call: compared as asked, before a new seed is drawn."""
        asked = {k: v for k, v in params.items() if v is not None}
        with self._lock:
            for other in self._jobs.values():
                if other.entry_id == entry_id and self._asked.get(other.id) == asked and \
                        other.status in ("queued", "running"):
                    return other
            job = Job(id=uuid.uuid4().hex, entry_id=entry_id,
                      params=asked if asked or new_seed is None else {"seed": new_seed()})
            self._asked[job.id] = asked
            self._jobs[job.id] = job
            finished = [k for k, j in self._jobs.items() if j.status in ("done", "failed")]
            for key in finished[: max(0, len(finished) - KEEP_FINISHED)]:
                del self._jobs[key]
                self._asked.pop(key, None)
        self._executor.submit(self._run, job)
        return job

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def all(self) -> list[Job]:
        with self._lock:
            return list(self._jobs.values())

    def _run(self, job: Job) -> None:
        from limner.project import Project
        from limner.review import regenerate

        job.status, job.started_at = "running", _now()
        project = None
        try:
            project = Project(self.settings, providers=self._providers)
            summary = regenerate(project, job.entry_id, **job.params)
            job.summary = dataclasses.asdict(summary)
            renders = project.reviews.renders(job.entry_id)
            if summary.failed or summary.generated + summary.resumed == 0:
                reasons = [f.get("error") or f.get("reason") or str(f) for f in summary.failures]
                budget = ("the spend cap ([generate] budget_usd) leaves no room for this call"
                          if summary.budget_stopped else None)
                job.error = "; ".join(r for r in reasons if r) or summary.auth_error or summary.halted or budget or (
                    "nothing was generated (another run is working on this entry?)" if not summary.failed else "failed")
                job.status = "failed"
            else:
                # the render it made (or finished); a failed job names none, not the entry's newest (a rejected
                # one, perhaps, which a script polling the job would then approve)
                job.status, job.render_id = "done", renders[0].id if renders else None
        except Exception as exc:  # a job reports its failure; the server goes on
            log.warning("regeneration of %s failed: %s", job.entry_id, exc)
            job.error = getattr(exc, "message", None) or str(exc) or type(exc).__name__
            job.status = "failed"
        finally:
            if project is not None:
                project.close()
            job.finished_at = _now()
            if self._on_finished is not None:
                try:
                    self._on_finished(job)
                except Exception:  # pragma: no cover - a cache invalidation cannot fail the job
                    log.exception("after job %s", job.id)

    def wait(self, job_id: str, timeout: float = 60.0) -> Job | None:
        """Block until the job finished (tests, scripts); the job, or None when it is unknown."""
        import time

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self.get(job_id)
            if job is None or job.status in ("done", "failed"):
                return job
            time.sleep(0.05)
        return self.get(job_id)

    def shutdown(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)


__all__ = ["Job", "Jobs"]

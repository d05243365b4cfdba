"""JSON log lines for workers (``limner worker --log-format json``): one object per line on stderr, for a
log collector (journald, Loki, CloudWatch)."""

from __future__ import annotations

import json
import logging
import os
import socket
import time


class JsonFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__()
        self.host, self.pid = socket.gethostname(), os.getpid()

    def format(self, record: logging.LogRecord) -> str:
        data = {"ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
                "level": record.levelname.lower(), "logger": record.name, "message": record.getMessage(),
                "host": self.host, "pid": self.pid}
        if hasattr(record, "action"):  # the engine's context: what it did, and to which job
            data["action"] = record.action
        job = getattr(record, "job", None)
        if isinstance(job, dict):
            data.update({"job_id": job.get("id"), "task_name": job.get("task_name"), "queue": job.get("queue"),
                         "attempts": job.get("attempts")})
        if record.exc_info:
            data["error"] = self.formatException(record.exc_info)
        return json.dumps(data, ensure_ascii=False, default=str)


class OneLineOutcomes(logging.Filter):
    """The engine logs a job that raised with its traceback. For Limner's own outcomes (an entry failed and
    recorded why, another run holds the entry, the worker is paused) that reads like a crash: they are
    logged as one line that ends with the reason, and nothing else is changed."""

    def __init__(self, *outcomes: type[BaseException]) -> None:
        super().__init__()
        self.outcomes = outcomes

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, self.outcomes):
            record.msg, record.args = f"{record.getMessage()} - {type(exc).__name__}: {exc}", None
            record.exc_info, record.exc_text = None, None
        return True


def one_line_outcomes(*outcomes: type[BaseException]) -> None:
    """Install :class:`OneLineOutcomes` on the engine's worker logger (once)."""
    logger = logging.getLogger("procrastinate.worker")
    if not any(isinstance(f, OneLineOutcomes) for f in logger.filters):
        logger.addFilter(OneLineOutcomes(*outcomes))


def use_json_logs(level: int) -> None:
    """Limner's and the engine's loggers write JSON lines to stderr at ``level``."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    for name in ("limner", "procrastinate"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(level)
        logger.propagate = False

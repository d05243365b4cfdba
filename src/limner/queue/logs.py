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


def use_json_logs(level: int) -> None:
    """Limner's and the engine's loggers write JSON lines to stderr at ``level``."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    for name in ("limner", "procrastinate"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(level)
        logger.propagate = False

"""Who is running: a run's identity, its heartbeat, and whether another run's claim still holds.

Before a unit of work calls a provider it claims its entry in the database
(:meth:`limner.db.repository.Repository.claim`); a second ``limner generate`` on the
same project leaves claimed entries to the run that holds them, so two runs at
once never pay twice for one entry. A claim holds while its run is alive: on the
same host, while its process exists (a ``kill -9`` frees its entries at once for
the next run); from another host, while its heartbeat is younger than the lease.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from limner.db.models import RunRow

#: a run writes its heartbeat this often (seconds)
HEARTBEAT_S = 10.0
#: a claim of a run whose heartbeat is older than this (seconds) no longer holds
LEASE_S = 60.0


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    return True


@dataclass(frozen=True)
class RunIdentity:
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    host: str = field(default_factory=socket.gethostname)
    pid: int = field(default_factory=os.getpid)

    def holder_is_gone(self, holder: RunRow | None, now: dt.datetime) -> bool:
        """True when ``holder``'s claims no longer hold: it finished, its process is gone (same host),
        or its heartbeat is older than the lease."""
        if holder is None or holder.finished_at is not None:
            return True
        if holder.host == self.host and not pid_alive(holder.pid):
            return True
        return (now - holder.heartbeat_at).total_seconds() > LEASE_S

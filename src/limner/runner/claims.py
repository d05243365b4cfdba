"""Who is running: a run's identity, its heartbeat, and whether another run's claim still holds.

Before a unit of work calls a provider it claims its entry in the database
(:meth:`limner.db.repository.Repository.claim`); a second ``limner generate`` on the
same project leaves claimed entries to the run that holds them, so two runs at
once never pay twice for one entry. A claim holds while its run is alive: in the
same process table, while its process exists (a ``kill -9`` frees its entries at
once for the next run); from anywhere else, while its heartbeat is younger than
the lease.

"The same process table" is more than the same hostname: two containers started
with ``--network host`` share the host's name but not their PID namespaces, and a
pid that does not exist in one may be a live worker in the other. A run records
its :func:`process_table` (hostname, boot id, PID namespace) with its pid.
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


def process_table() -> str:
    """Where this process's pid means something: the hostname, and on Linux the boot id and the PID
    namespace (two containers on one host can share a hostname, never both of these)."""
    parts = [socket.gethostname()]
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as fh:
            parts.append(fh.read().strip())
        ns = os.stat("/proc/self/ns/pid")
        parts.append(f"{ns.st_dev}:{ns.st_ino}")
    except OSError:  # not Linux (or no /proc): the hostname alone, as one machine has one process table
        pass
    return "/".join(parts)


@dataclass(frozen=True)
class RunIdentity:
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    host: str = field(default_factory=socket.gethostname)
    pid: int = field(default_factory=os.getpid)
    #: :func:`process_table`
    scope: str = field(default_factory=process_table)

    def shares_process_table(self, holder: RunRow) -> bool:
        """Whether ``holder.pid`` names a process this one can see (a run recorded without its scope: by host)."""
        return holder.scope == self.scope if holder.scope is not None else holder.host == self.host

    def holder_is_gone(self, holder: RunRow | None, now: dt.datetime) -> bool:
        """True when ``holder``'s claims no longer hold: it finished, its process is gone (same process
        table), or its heartbeat is older than the lease."""
        if holder is None or holder.finished_at is not None:
            return True
        if self.shares_process_table(holder) and not pid_alive(holder.pid):
            return True
        return (now - holder.heartbeat_at).total_seconds() > LEASE_S

"""Who is running: a run's identity, its heartbeat, and whether another run's claim still holds.

Before a unit of work calls a provider it claims its entry in the database
(:meth:`limner.db.repository.Repository.claim`); a second ``limner generate`` on the
same project leaves claimed entries to the run that holds them, so two runs at
once never pay twice for one entry. A claim holds while its run is alive: in the
same process table, while its process exists (a ``kill -9`` frees its entries at
once for the next run; a process stopped with Ctrl-Z keeps them, however old its
heartbeat; a zombie, or another process given the same pid, told by the clock tick
it started at, does not); from anywhere else, while its heartbeat is younger than
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
#: a claim of a run whose heartbeat is older than this (seconds) no longer holds, unless its process is seen alive
LEASE_S = 60.0


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    return True


def process_status(pid: int) -> tuple[str, int] | None:
    """Process ``pid``'s state letter (``R``, ``S``, ``T`` stopped, ``Z`` zombie, ...) and when it started, in
    clock ticks since boot (fields 3 and 22 of proc(5); ticks do not move when the wall clock is set), from
    ``/proc``; None where they cannot be read (not Linux, ``hidepid``, or the process is gone)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            fields = fh.read().rsplit(b")", 1)[1].split()  # after the command name, which may hold spaces
        return fields[0].decode("ascii"), int(fields[19])
    except (OSError, ValueError, IndexError, UnicodeDecodeError):
        return None


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
    #: when this process started, in clock ticks since boot (:func:`process_status`); None where unknown
    process_start: int | None = field(default_factory=lambda: _own_start())

    def shares_process_table(self, holder: RunRow) -> bool:
        """Whether ``holder.pid`` names a process this one can see (a run recorded without its scope: by host)."""
        return holder.scope == self.scope if holder.scope is not None else holder.host == self.host

    def holder_is_gone(self, holder: RunRow | None, now: dt.datetime) -> bool:
        """True when ``holder``'s claims no longer hold: it finished; in the same process table, its process is
        gone, a zombie, or its pid now names another process (one that started at another tick than the run's
        did: a reused pid); from anywhere else (or for a run recorded without its start), its heartbeat is
        older than the lease. The run's own live process keeps its claims however old its heartbeat: a run
        stopped with Ctrl-Z (SIGSTOP) or starved of CPU for a minute still holds its calls in flight, and would
        pay for its entries again when it resumes."""
        if holder is None or holder.finished_at is not None:
            return True
        if self.shares_process_table(holder):
            if not pid_alive(holder.pid):
                return True
            status = process_status(holder.pid)
            if status is not None:
                state, started = status
                if state in ("Z", "X"):  # killed, not yet reaped by its parent
                    return True
                if holder.process_start is not None:
                    return started != holder.process_start
        return (now - holder.heartbeat_at).total_seconds() > LEASE_S


def _own_start() -> int | None:
    status = process_status(os.getpid())
    return status[1] if status is not None else None

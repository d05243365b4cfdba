"""Limits that hold across every worker: a provider's concurrency and rate limit, and a shared spend cap.

**Concurrency.** Slot ``i`` of provider ``P`` is the PostgreSQL session advisory lock
``(hashtext('limner:P'), i)``; a call holds one of the ``concurrency`` slots while it is out. Advisory
locks belong to a database session, so a worker that dies (``kill -9``, a lost machine) gives its slots
back as soon as the server drops its connection: no lease to expire, nothing to clean up. A worker first
takes a local slot (so it never polls for more than it can use), then polls the database for a free
global one. :class:`GlobalSlots` is what :class:`limner.runner.retry.ProviderGate` uses as its ``slots``
in a worker: ``acquire()`` awaits, ``release()`` is synchronous (the unlock is sent in the background).

**Rate limit.** :class:`GlobalRate` counts call starts in the ``call_starts`` table (see its docstring).
"""

from __future__ import annotations

import asyncio
import logging
import random

log = logging.getLogger("limner.queue")

#: the first free slot not held by this session. Advisory locks are re-entrant within a session, so the
#: slots it holds must be left out *before* the lock function runs: a CASE fixes that order (the planner
#: may evaluate the operands of an AND in any order, and a lock taken again on a held slot would never
#: be given back)
_TRY = ("SELECT s FROM generate_series(0, %s - 1) AS s "
        "WHERE CASE WHEN s = ANY(%s) THEN false ELSE pg_try_advisory_lock(hashtext(%s), s) END LIMIT 1")


#: how long one statement of a slot or rate session may go unanswered before the session counts as lost
#: (a network partition, a server gone in a failover: the connection stays open and silent; seconds)
SESSION_TIMEOUT_S = 20.0


class SlotConnection:
    """One database session per worker holding its advisory-lock slots (reconnects with backoff). A statement
    that gets no answer within ``timeout_s`` closes it (its locks go with it): a call waiting for a slot, and a
    worker paused until its calls end, never wait on a dead connection for as long as the kernel keeps it."""

    def __init__(self, dsn: str, *, timeout_s: float = SESSION_TIMEOUT_S) -> None:
        self.dsn, self.timeout_s = dsn, timeout_s
        self._conn = None  # type: ignore[var-annotated]
        self._lock = asyncio.Lock()

    async def conn(self):  # type: ignore[no-untyped-def]
        import psycopg

        async with self._lock:
            delay = 0.2
            while self._conn is None or self._conn.closed:
                try:
                    self._conn = await asyncio.wait_for(
                        psycopg.AsyncConnection.connect(self.dsn, autocommit=True), self.timeout_s)
                except (psycopg.OperationalError, TimeoutError) as exc:  # the database is away: wait, never a crash loop
                    log.warning("slot connection failed (%s); retrying in %.1fs", exc or "no answer", delay)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 10.0)
            return self._conn

    async def answered(self, conn, awaitable):  # type: ignore[no-untyped-def]
        """``awaitable`` (statements on ``conn``) within ``timeout_s``; unanswered, ``conn`` is closed and
        ``psycopg.OperationalError`` raised, as for a dropped connection."""
        import psycopg

        task = asyncio.ensure_future(awaitable)
        try:
            done, _ = await asyncio.wait({task}, timeout=self.timeout_s)
        except BaseException:
            task.cancel()
            raise
        if done:
            return task.result()
        self._abandon(conn)  # first: cancelled, the statement (or its transaction's rollback) waits on it no more
        task.cancel()
        await asyncio.wait({task})  # quick now; what it raised (the closed connection's error) is not ours
        if not task.cancelled() and task.exception() is not None:
            log.debug("an unanswered statement ended: %r", task.exception())
        raise psycopg.OperationalError(f"no answer from the database in {self.timeout_s:g}s; connecting again")

    @staticmethod
    def _abandon(conn) -> None:  # type: ignore[no-untyped-def]
        """Close ``conn`` without a word to a server that does not answer (its session, and locks, end there)."""
        try:
            conn.pgconn.finish()
        except Exception as exc:  # noqa: BLE001 - closed already
            log.debug("closing an unanswered slot connection: %s", exc)

    async def close(self) -> None:
        if self._conn is not None:
            try:
                await asyncio.wait_for(self._conn.close(), self.timeout_s)
            except TimeoutError:
                self._abandon(self._conn)


class GlobalSlots:
    """``concurrency`` slots of one provider shared by every worker on the database."""

    def __init__(self, session: SlotConnection, provider: str, concurrency: int, *, poll_s: float = 0.03) -> None:
        self.session, self.key, self.n = session, f"limner:{provider}", concurrency
        self.poll_s = poll_s
        self._local = asyncio.Semaphore(concurrency)
        #: the slots this worker's calls hold, all taken on the session connection ``_held_on``
        self._held: list[int] = []
        self._held_on = None  # type: ignore[var-annotated]
        #: calls out (acquired, not yet released); more than ``_held`` after the session dropped: those calls
        #: lost their lock with it, and their release gives none back (the slots of newer calls stay held)
        self._out = 0
        self._pending: set[asyncio.Task[None]] = set()
        self._trying = asyncio.Lock()

    async def _try(self) -> int | None:
        import psycopg

        async with self._trying:  # one look-up at a time: each sees the slots the one before took
            try:
                conn = await self.session.conn()
                if conn is not self._held_on:  # a new session: the locks of the one before went with it
                    self._held, self._held_on = [], conn
                cursor = await self.session.answered(conn, conn.execute(_TRY, (self.n, list(self._held), self.key)))
                row = await cursor.fetchone()
            except psycopg.OperationalError as exc:  # the session is gone and its locks with it
                log.warning("slot look-up failed: %s", exc)
                self._held.clear()
                return None
            if row is None:
                return None
            self._held.append(int(row[0]))
            self._out += 1
            return int(row[0])

    async def acquire(self) -> bool:
        await self._local.acquire()
        try:
            while True:
                if await self._try() is not None:
                    return True
                await asyncio.sleep(self.poll_s * random.uniform(0.5, 1.5))
        except BaseException:
            self._local.release()
            raise

    def release(self) -> None:
        """One call ended. It gives a slot back only while this worker holds more slots than it has calls out:
        a call that lost its lock with a dropped session must not unlock the slot of a call still out."""
        self._out -= 1
        if self._held_on is None or self._held_on.closed:  # the session dropped: its locks are gone
            self._held.clear()
        slot = self._held.pop() if len(self._held) > self._out else None
        task = asyncio.get_running_loop().create_task(self._unlock(self._held_on, slot))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _unlock(self, conn, slot: int | None) -> None:  # type: ignore[no-untyped-def]
        """Unlock ``slot`` on the session that took it (never on a newer one: it does not hold it)."""
        try:
            if slot is not None and not conn.closed:
                await self.session.answered(conn, conn.execute("SELECT pg_advisory_unlock(hashtext(%s), %s)",
                                                               (self.key, slot)))
        except Exception as exc:  # noqa: BLE001 - a dropped session released it anyway
            log.warning("slot unlock failed: %s", exc)
        finally:
            self._local.release()


class GlobalRate:
    """``rate_limit_per_minute`` across every worker: at most ``per_minute`` starts of one provider's calls
    in any ``window_s`` (60 s). Each start is a row of ``call_starts``; a worker counts the rows of the
    window under a transaction advisory lock (so two workers never both take the last place) and inserts
    its own, or waits until the oldest leaves the window. What :class:`limner.runner.retry.ProviderGate`
    uses as its ``limiter`` in a worker (``acquire()`` awaits). Its own session: a transaction cannot share
    the slot session with the lock look-ups of other tasks."""

    def __init__(self, session: SlotConnection, provider: str, per_minute: float, *, window_s: float = 60.0) -> None:
        self.session, self.provider, self.limit, self.window_s = session, provider, per_minute, window_s
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        while True:
            wait = await self._try()
            if wait <= 0:
                return
            await asyncio.sleep(min(wait, 5.0) + random.uniform(0, 0.02))

    async def _try(self) -> float:
        """0 when a start was recorded; else the seconds until a place frees up."""
        import psycopg

        async with self._lock:
            try:
                conn = await self.session.conn()
                return await self.session.answered(conn, self._start(conn))
            except psycopg.OperationalError as exc:  # the database is away: wait and ask again
                log.warning("rate look-up failed: %s", exc)
                return 1.0

    async def _start(self, conn) -> float:  # type: ignore[no-untyped-def]
        """:meth:`_try`'s transaction on ``conn``."""
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"limner-rate:{self.provider}",))
            # a statement after the lock: its snapshot sees every start committed before we got it
            n, oldest_leaves_in = await (await conn.execute(
                "SELECT count(*), extract(epoch FROM min(started_at) + make_interval(secs => %s) - clock_timestamp()) "
                "FROM call_starts WHERE provider = %s AND started_at > clock_timestamp() - make_interval(secs => %s)",
                (self.window_s, self.provider, self.window_s))).fetchone()
            if n < self.limit:
                await conn.execute("INSERT INTO call_starts (provider, started_at) VALUES (%s, clock_timestamp())",
                                   (self.provider,))
                if random.random() < 0.05:  # forget starts that left the window, now and then
                    await conn.execute("DELETE FROM call_starts WHERE provider = %s AND started_at < "
                                       "clock_timestamp() - make_interval(secs => %s)", (self.provider, self.window_s))
                return 0.0
            return max(0.01, float(oldest_leaves_in or 0.01))


class SharedBudget:
    """``--budget`` across workers: a call's price is reserved in the database (``spend_caps``, and the worker's
    share in ``spend_holds``) before the call goes out, and settled with what it cost. A worker that dies
    between the two leaves its share reserved until another worker finds the cap held and the worker gone: the
    share is then counted as spent (its calls may have been paid; spend is over-estimated, never over the cap)."""

    def __init__(self, repo, cap_id: str | None, run_id: str | None = None) -> None:  # type: ignore[no-untyped-def]
        self.repo, self.cap_id, self.run_id = repo, cap_id, run_id

    def reserve(self, price_usd: float) -> bool:
        return self.cap_id is None or self.repo.reserve_spend(self.cap_id, price_usd, self.run_id)

    def settle(self, reserved_usd: float, actual_usd: float) -> None:
        if self.cap_id is not None:
            self.repo.settle_spend(self.cap_id, reserved_usd, actual_usd, self.run_id)

    def held_in_flight(self, price_usd: float) -> bool:
        """After :meth:`reserve` said no: whether the cap may still have room once the calls in flight settle
        (a call refused at no charge gives its reservation back). The shares of workers that are gone are first
        counted as spent (:meth:`Repository.reclaim_spend`); then True when what is spent leaves room for
        ``price_usd`` and live workers hold part of the cap, False when nothing in flight can give room back."""
        if self.cap_id is None:
            return False
        from limner.db.tables import utcnow
        from limner.runner.claims import RunIdentity

        me, now = RunIdentity(), utcnow()  # only workers run enqueued jobs under a shared cap
        live = {run.id for run, _held in self.repo.live_runs(kind="worker") if not me.holder_is_gone(run, now)}
        if self.run_id is not None:
            live.add(self.run_id)
        self.repo.reclaim_spend(self.cap_id, live)
        cap = self.repo.spend_cap(self.cap_id)
        return not (cap is None or cap.reserved_usd <= 1e-12 or cap.spent_usd + price_usd > cap.cap_usd + 1e-9)

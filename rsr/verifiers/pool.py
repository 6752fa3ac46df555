"""Worker processes that run one verifier with a hard timeout per check.

A Python signal cannot interrupt C-level work (sympy multiplying out
`10^{10^{10}}` spends its time inside big-integer code), so a timeout that must
hold is enforced from outside: each worker runs checks one after another and
reports results as it goes; when a worker has not finished its current check
within the timeout (plus a small grace), the parent kills that process, records
a timeout error (passed NULL) for the check it was on, starts a fresh worker
and hands the rest of the chunk on. Inside the worker an interval timer stops
pure-Python loops at the timeout first, which saves the restart.

Workers are forked (spawned where fork does not exist): a fork starts in
milliseconds with the verifier's modules already imported, and, unlike spawn or
forkserver, never re-imports the caller's `__main__`, so a training script
that calls verify_batch() at top level works without an `if __name__` guard.
"""

import logging
import multiprocessing
import os
import signal
import threading
import time
from collections import deque
from multiprocessing.connection import wait

from .base import Verdict, safe_call, undecided

log = logging.getLogger(__name__)

# How long after its timeout a check is killed: room for the in-worker timer.
GRACE_SECONDS = 0.5
# A worker sends finished results at least this often.
FLUSH_SECONDS = 0.05


class CheckTimeout(BaseException):
    """Raised inside a worker when one check runs past the timeout (not an
    Exception, so that a verifier's own except clauses cannot swallow it)."""


def _on_alarm(signum, frame):
    raise CheckTimeout()


def timeout_verdict(timeout):
    return undecided(f"timeout: check took longer than {timeout:g}s", reason="timeout")


def _worker_main(conn, state, verifier, timeout):
    """A worker's loop: receive chunks of (index, item), send back [(index, verdict tuple)].

    state is shared memory [index of the check running now or -1, its start
    time], so that the parent knows exactly which check to blame when it kills.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    if timeout:
        signal.signal(signal.SIGALRM, _on_alarm)
    parent = os.getppid()
    while True:
        # A forked worker holds a copy of the parent's end of the pipe, so it
        # never sees EOF when the parent is killed: it watches its parent.
        if not conn.poll(1.0):
            if os.getppid() != parent:
                return
            continue
        try:
            chunk = conn.recv()
        except EOFError:
            return
        if chunk is None:
            return
        results, last_flush = [], time.monotonic()
        for index, item in chunk:
            if results and time.monotonic() - last_flush > FLUSH_SECONDS:
                conn.send(results)
                results, last_flush = [], time.monotonic()
            state[1] = time.monotonic()
            state[0] = index
            try:
                if timeout:
                    signal.setitimer(signal.ITIMER_REAL, timeout)
                try:
                    verdict = safe_call(verifier, *item)
                finally:
                    if timeout:
                        signal.setitimer(signal.ITIMER_REAL, 0)
            except CheckTimeout:
                verdict = timeout_verdict(timeout)
            state[0] = -1
            results.append((index, verdict.astuple()))
        conn.send(results)
        conn.send("done")


class _Worker:
    def __init__(self, ctx, verifier, timeout):
        self.conn, child = ctx.Pipe()
        self.state = ctx.RawArray("d", [-1.0, 0.0])
        self.process = ctx.Process(
            target=_worker_main, args=(child, self.state, verifier, timeout), daemon=True,
            name=f"rsr-verify-{verifier.name}",
        )
        self.process.start()
        child.close()
        self.outstanding = set()  # indexes sent and not yet answered

    def send(self, chunk):
        self.outstanding = {index for index, _ in chunk}
        self.conn.send(chunk)

    def running_since(self):
        "(index, start time) of the check running now, or None between checks."
        index, started = self.state[0], self.state[1]
        return None if index < 0 else (int(index), started)

    def kill(self):
        self.process.kill()
        self.process.join(5)
        self.conn.close()

    def stop(self):
        try:
            self.conn.send(None)
        except (BrokenPipeError, OSError):
            pass
        self.process.join(2)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(2)
        self.conn.close()


class WorkerPool:
    """workers processes running verifier; map(items) -> [Verdict] in order.

    timeout is seconds per check (None: no limit). map() may be called from
    several threads; calls take turns.
    """

    def __init__(self, verifier, workers=1, timeout=None, chunk_size=None):
        self.verifier = verifier
        self.size = max(1, int(workers))
        self.timeout = timeout
        self.chunk_size = chunk_size
        methods = multiprocessing.get_all_start_methods()
        self.ctx = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
        self.workers = []
        self.lock = threading.Lock()
        self.restarts = 0
        self.deaths = 0

    def _ensure_workers(self):
        while len(self.workers) < self.size:
            self.workers.append(_Worker(self.ctx, self.verifier, self.timeout))

    def _replace(self, worker):
        worker.kill()
        self.workers.remove(worker)
        self.restarts += 1
        fresh = _Worker(self.ctx, self.verifier, self.timeout)
        self.workers.append(fresh)
        return fresh

    def map(self, items):
        "Verdicts for [(response, metadata, prompt)], in order; each check under the timeout."
        items = list(items)
        if not items:
            return []
        with self.lock:
            return self._map(items)

    def _map(self, items):
        self._ensure_workers()
        results = [None] * len(items)
        size = self.chunk_size or max(1, min(256, -(-len(items) // (self.size * 4))))
        queue = deque(
            [(i, items[i]) for i in range(start, min(start + size, len(items)))]
            for start in range(0, len(items), size)
        )
        idle = list(self.workers)
        busy = {}
        while queue or busy:
            while queue and idle:
                worker = idle.pop()
                chunk = queue.popleft()
                try:
                    worker.send(chunk)
                except (BrokenPipeError, OSError):
                    idle.append(self._lost(worker, chunk, results, queue, "worker process died"))
                    continue
                busy[worker.conn] = (worker, chunk)
            wait_for = None
            if self.timeout:
                limit = self.timeout + GRACE_SECONDS
                now = time.monotonic()
                wait_for = limit
                for worker, _ in busy.values():
                    running = worker.running_since()
                    if running:
                        wait_for = min(wait_for, max(0.0, running[1] + limit - now))
            for conn in wait(list(busy), wait_for):
                worker, chunk = busy[conn]
                try:
                    message = conn.recv()
                except (EOFError, OSError):
                    message = None
                if message == "done":
                    del busy[conn]
                    idle.append(worker)
                elif message is None:
                    del busy[conn]
                    idle.append(self._lost(worker, chunk, results, queue, "worker process died"))
                else:
                    for index, verdict in message:
                        results[index] = Verdict(*verdict)
                        worker.outstanding.discard(index)
            if self.timeout:
                now = time.monotonic()
                for conn, (worker, chunk) in list(busy.items()):
                    running = worker.running_since()
                    if running and now - running[1] > self.timeout + GRACE_SECONDS:
                        del busy[conn]
                        idle.append(self._lost(worker, chunk, results, queue, None))
        return results

    def _lost(self, worker, chunk, results, queue, reason):
        "A worker that hung or died: record its current check, requeue the rest, replace it."
        running = worker.running_since()
        if running and running[0] in worker.outstanding:
            current = running[0]
            worker.outstanding.discard(current)
            if reason is None:
                results[current] = timeout_verdict(self.timeout)
                log.warning("check %d ran past %ss; worker restarted", current, self.timeout)
            else:
                # A check that kills its worker (out of memory, a crash in C)
                # is recorded, not retried: it would kill the next one too.
                results[current] = undecided(reason, reason="worker died")
            self.deaths = 0
        else:
            self.deaths += 1
        # Results the worker had not sent yet are computed again, unless workers
        # keep dying with no check running (a verifier that cannot even start).
        remaining = [(i, item) for i, item in chunk if i in worker.outstanding]
        if remaining and self.deaths >= 3:
            for i, _ in remaining:
                results[i] = undecided(reason or "worker process died", reason="worker died")
        elif remaining:
            queue.appendleft(remaining)
        return self._replace(worker)

    def close(self):
        "Stop every worker."
        with self.lock:
            for worker in self.workers:
                worker.stop()
            self.workers = []

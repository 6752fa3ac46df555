"""A cheap in-process verifier run in a helper process, off the sampling loop's core.

An inline verifier (mcq, exact) costs tens of microseconds a rollout. A
sampling loop that issues thousands of requests a second runs on one core
(the GIL), so that is time taken from the requests themselves: with mcq it was
the largest single piece of rsr's own work per request. `ScoringProcess` runs
the verifier in one forked process instead. The loop hands it each step's
items and awaits their verdicts; a thread in this process sends everything
that arrived since its last hand-over as one message and waits for the
answer, so the loop pays for a pickle, not for the checks.

Nothing goes unscored: if the process dies, the thread scores the rest itself
(same verifier, same verdicts) and says so once in the log.
"""

import asyncio
import logging
import multiprocessing
import os
import signal
import sys
import threading

from .base import Verdict

log = logging.getLogger(__name__)


def available():
    """True where the helper process can be forked (it starts with the verifier
    loaded): Linux. macOS can fork, but a forked child of a threaded process
    may crash there."""
    return sys.platform.startswith("linux") and "fork" in multiprocessing.get_all_start_methods()


def _serve(conn, verifier):
    "The helper process: receive lists of items, send back lists of verdict tuples."
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    parent = os.getppid()
    while True:
        # A forked child holds a copy of the parent's end of the pipe, so it
        # never sees EOF when the parent is killed: it watches its parent.
        if not conn.poll(1.0):
            if os.getppid() != parent:
                return
            continue
        try:
            items = conn.recv()
        except EOFError:
            return
        if items is None:
            return
        conn.send([verdict.astuple() for verdict in verifier.check_many(items)])


class ScoringProcess:
    """Scores [(response, metadata, prompt)] with verifier in a helper process.

    Start it before other threads exist where possible (a fork copies only the
    calling thread). `await score(items)` from an event loop; close() stops it.
    """

    def __init__(self, verifier):
        self.verifier = verifier
        ctx = multiprocessing.get_context("fork")
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_serve, args=(child, verifier), daemon=True,
                                   name=f"rsr-score-{verifier.name}")
        self.process.start()
        child.close()
        self.alive = True
        self.closed = False
        self.pending = []  # (items, future, loop)
        self.lock = threading.Lock()
        self.arrived = threading.Condition(self.lock)
        self.thread = threading.Thread(target=self._run, name="rsr-scoring", daemon=True)
        self.thread.start()

    async def score(self, items) -> list:
        "Verdicts for items, in order."
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        with self.lock:
            if self.closed:
                raise RuntimeError("the scoring process is closed")
            self.pending.append((items, future, loop))
            self.arrived.notify()
        return await future

    def _run(self):
        while True:
            with self.lock:
                while not self.pending and not self.closed:
                    self.arrived.wait()
                if not self.pending:
                    return
                batch, self.pending = self.pending, []
            items = [item for entry in batch for item in entry[0]]
            try:
                verdicts = self._score(items)
            except BaseException as ex:  # noqa: BLE001 - handed to the awaiting steps
                for _, future, loop in batch:
                    loop.call_soon_threadsafe(_fail, future, ex)
                continue
            by_loop, start = {}, 0
            for entry_items, future, loop in batch:
                by_loop.setdefault(loop, []).append((future, verdicts[start:start + len(entry_items)]))
                start += len(entry_items)
            # One wake-up of each loop for the whole hand-over.
            for loop, parts in by_loop.items():
                loop.call_soon_threadsafe(_resolve, parts)

    def _score(self, items):
        if self.alive:
            try:
                self.conn.send(items)
                return [Verdict(*values) for values in self.conn.recv()]
            except (EOFError, OSError) as ex:
                self.alive = False
                log.warning("the %s scoring process stopped (%s): scoring in this process from now on",
                            self.verifier.name, type(ex).__name__)
        return self.verifier.check_many(items)

    def close(self):
        "Score what is queued, then stop the thread and the process."
        with self.lock:
            self.closed = True
            self.arrived.notify()
        self.thread.join()
        try:
            self.conn.send(None)
        except OSError:
            pass
        self.process.join(2)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(2)
        self.conn.close()


def _resolve(parts):
    for future, verdicts in parts:
        if not future.done():
            future.set_result(verdicts)


def _fail(future, error):
    if not future.done():
        future.set_exception(error)

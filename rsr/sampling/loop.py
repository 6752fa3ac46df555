"""The one sampling loop: ask the ledger what is left, sample, score, write, repeat.

This module only schedules: the plan (rsr/sampling/plan.py), the requests
(requests.py), the ledger's queries and writer (ledger.py) and the report
(report.py) do the work it hands them, and RunState (state.py) says when to stop.

The database decides the work. A prompt needs sampling while its target is not
satisfied and it has budget left (rsr/early_stop.py); each step asks for up to
`step_size` more rollouts of it. There is no barrier between steps: when a
prompt's step is written and scored, the prompt is checked again at once and,
if it still needs more, goes back to the front of the queue.

Exactly once: every rollout has a fixed (prompt_id, arm, sample_index) chosen before
it is requested, and is written (with its scores and its step) in one small
transaction as soon as its request returns. Writes run on a thread with its own
connection, so the event loop never waits for SQLite or the disk's fsync; a
step's prompt is checked again only once its write has committed. With one
request per rollout (a server that ignores n), each reply is written as it
returns, never held for its step's slowest sibling. A crash loses only the
requests in flight and the replies queued behind the commit that was running;
the next run plans the lowest missing sample indexes again, with the same
seeds, and completes a step that was cut short under the same step number.
SIGINT/SIGTERM start no new request, wait up to STOP_GRACE_S for those in
flight, and write everything that arrived.

Until the endpoint has answered one request correctly, a failure that says
it is the wrong endpoint (requests.ENDPOINT_FAULTS) writes nothing, and a few
of them stop the run: a mistyped URL spends no prompt's budget.
"""

import asyncio
import contextlib
import gc
import logging
import os
import signal
import sqlite3
import time
from dataclasses import dataclass, field

from .. import costs, early_stop
from ..client import RetryPolicy
from ..config import SAMPLER, SAMPLING
from ..errors import ConfigError, RsrError
from .ledger import LedgerWriter, PromptStates
from .plan import Planner
from .report import SampleReport
from .requests import Requester, Unreachable
from .state import RunState

log = logging.getLogger(__name__)

# Seconds a SIGINT/SIGTERM waits for the requests in flight before cancelling
# them: a reply already on the wire when the signal came is read and written.
STOP_GRACE_S = 1.0


class Interrupted(RsrError):
    "Sampling stopped on a signal after writing everything that had arrived."


class Capped(RsrError):
    "Sampling stopped at a cost cap after writing everything that had arrived."

    def __init__(self, message, report=None):
        super().__init__(message)
        self.report = report


@dataclass
class SampleSettings:
    "How to sample: target, budget, sampling parameters and concurrency."

    target: early_stop.Target = field(
        default_factory=lambda: early_stop.parse_target(SAMPLING.target, SAMPLING.max_rollouts))
    max_rollouts: int = SAMPLING.max_rollouts
    step_size: int = SAMPLING.step_size
    max_steps: int = SAMPLING.max_steps
    params: dict = field(default_factory=dict)
    seed: int | None = None
    concurrency: int = SAMPLER.concurrency
    # Prompts per engine call for batch samplers (vLLM batches internally).
    batch_prompts: int = SAMPLER.batch_prompts
    limit: int | None = None
    where: str | None = None
    # Identical passing completions (whitespace-normalised) count once.
    dedupe: bool = False
    # The arm this run samples (its budget), and whether its target counts
    # every arm's passes.
    arm: str = early_stop.DEFAULT_ARM
    pool: bool = False
    # uniform or proportional (rsr/early_stop.py), and proportional's rule:
    # no more draws after this many rollouts without a pass.
    budget: str = SAMPLING.budget
    hopeless: int | None = SAMPLING.hopeless
    # Cost caps (rsr/costs.py): the ledger's total, and a prompt's token cost.
    max_cost: float | None = SAMPLING.max_cost
    max_cost_per_prompt: float | None = SAMPLING.max_cost_per_prompt
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    # Stop the run when this many requests in a row fail for good: the server is
    # down, and writing error rows would only burn every prompt's budget.
    max_consecutive_failures: int = 50
    # Score an inline verifier in a helper process when the sampler's requests
    # keep the event loop's core busy (see rsr.verifiers.offload).
    offload_scoring: bool = True


def usable_cpus():
    "CPUs this process may run on."
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


class SamplingLoop:
    "Runs one sampling session over a ledger; see sample()."

    def __init__(self, db, sampler, scorer, settings, run_id=None, on_progress=None):
        self.db = db
        self.sampler = sampler
        self.scorer = scorer
        self.settings = settings
        self.run_id = run_id
        self.on_progress = on_progress
        self.report = SampleReport()
        self.verifier_name = scorer.name if scorer is not None else ""
        self.states = PromptStates(db, settings, self.verifier_name)
        self.info = sampler.describe()
        self.plan = Planner(db, settings)
        self.active = set()
        # Prompts whose step is written, to be checked again (in one query).
        self.finished = []
        # Steps whose requests are done and whose writes have not committed yet.
        self.committing = 0
        self.state = RunState()
        self.writer = LedgerWriter(db, run_id, self.info, settings.params, self.verifier_name,
                                   self.state.wake.set, settings.arm)
        self.requests = Requester(sampler, settings, self.report, self.state, self.info)
        self.stop_timer = None
        self.meter = None
        if settings.max_cost is not None:
            self.meter = costs.CostMeter(costs.spent(db), costs.stored_prices(db, settings.arm),
                                         settings.max_cost)
        # True when the scorer runs in a helper process (set by sample()).
        self.offloaded = False

    # -- scheduling ---------------------------------------------------------

    async def run(self):
        self.writer.open()
        writer = asyncio.create_task(self.writer.run())
        ticker = asyncio.create_task(self.ticker())
        try:
            await self.dispatch()
            if self.state.stop_requested:
                await self.drain()
        finally:
            # From here on the run only writes what arrived and closes: no
            # cancellation may cut that short (see sample()).
            self.state.stopping = True
            if self.stop_timer is not None:
                self.stop_timer.cancel()
            for task in list(self.active):
                task.cancel()
            await asyncio.gather(*self.active, return_exceptions=True)
            ticker.cancel()
            writer.cancel()
            await asyncio.gather(ticker, writer, return_exceptions=True)
            try:
                if self.writer.pending is not None:
                    # A write the thread is still running finishes (or fails) first.
                    await asyncio.wait([self.writer.pending])
                # Whatever arrived before the stop is written, never dropped.
                self.writer.flush()
            finally:
                self.writer.close()
                close = getattr(self.sampler, "aclose", None)
                if close is not None:
                    await close()
        if self.state.ledger_error is not None:
            raise self.state.ledger_error
        self.report.refresh_summary(self.states)
        if self.state.abort_error is not None:
            raise (ConfigError if self.state.abort_config else RsrError)(self.state.abort_error)
        return self.report

    async def dispatch(self):
        """Keep `concurrency` steps in flight until a full pass over the ledger,
        made with nothing in flight, finds no prompt that needs sampling."""
        page = max(2 * self.settings.concurrency, 256)
        capacity = 1 if self.sampler.batch else self.settings.concurrency
        after, exhausted, found = 0, False, False
        regranted = False
        while self.state.abort_error is None and not self.state.stop_requested:
            if self.meter is not None and self.meter.reached():
                self.cap()
                break
            if self.finished:
                self.requeue_finished()
            if not exhausted and len(self.plan.ready) < page:
                rows = self.states.pending(after, page)
                exhausted = len(rows) < page
                for row in rows:
                    after = row["rowid"]
                    if row["id"] not in self.plan.in_flight and self.plan.enqueue(row, front=False):
                        found = True
            while self.plan.ready and len(self.active) < capacity:
                self.launch()
            if exhausted and not (self.active or self.plan.ready or self.writer.queued
                                  or self.finished or self.committing):
                # Nothing in flight: under --budget proportional, a new round
                # of allowances. The run ends after a pass that found nothing
                # when the round grants nothing, or when the pass came right
                # after a round (what it granted cannot be drawn: a cost cap).
                if found:
                    regranted = False
                    self.states.reallocate()
                elif regranted or not self.states.reallocate():
                    return
                else:
                    regranted = True
                # Start a new pass from the top; it ends the run if it finds nothing.
                after, exhausted, found = 0, False, False
                continue
            if not exhausted and len(self.plan.ready) < page and len(self.active) < capacity:
                continue
            self.state.wake.clear()
            await self.state.wake.wait()

    def request_stop(self, grace, on_timeout):
        """Start no new request; run() ends once the requests in flight have
        returned, or on_timeout() is called after grace seconds (unless run()
        is already writing what arrived and closing by then)."""
        self.state.stop_requested = True
        self.stop_timer = asyncio.get_running_loop().call_later(grace, on_timeout)
        self.state.wake.set()

    def cap(self):
        """Stop at the cost cap: no new request starts; those in flight (paid
        for) are awaited and written, as after a first signal."""
        if self.state.capped is None:
            self.state.capped = (
                f"Capped: the ledger's cost reached {self.meter.total:,.4f} "
                f"(--max-cost {self.settings.max_cost:g})")
        self.state.stop_requested = True
        self.state.wake.set()

    async def drain(self):
        "Wait for the steps in flight: what they receive is written like any reply."
        while self.active:
            await asyncio.wait(list(self.active))

    def launch(self):
        if self.sampler.batch:
            size = getattr(self.sampler, "preferred_batch_prompts", None) or self.settings.batch_prompts
            works = self.plan.take(size)
            task = asyncio.create_task(self.run_batch(works))
        else:
            task = asyncio.create_task(self.run_work(self.plan.take()[0]))
        self.active.add(task)
        task.add_done_callback(self.task_done)

    def task_done(self, task):
        self.active.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.fail(task.exception())
        self.state.wake.set()

    def fail(self, error):
        "Stop the run on an error from a task or a write (the first one is reported)."
        if self.state.abort_error is not None:
            return
        self.state.abort_error = f"Sampling failed: {type(error).__name__}: {error}"
        if isinstance(error, sqlite3.DatabaseError):
            # The ledger's disk or file (full, read-only): no bug, no traceback;
            # raised as it is for the caller to report.
            self.state.ledger_error = error
        else:
            log.error("sampling task failed", exc_info=error)
        self.state.wake.set()

    def after_commit(self, works, waits):
        """Finish these steps once their writes (waits) have committed.

        The task that ran the requests ends now, so its concurrency slot takes
        other work while the writer thread commits (an fsync, or a checkpoint
        of tens of milliseconds); the prompts are checked again after it."""
        self.committing += len(works)

        def committed(done):
            self.committing -= len(works)
            if done.cancelled():
                pass  # the run is stopping
            elif done.exception() is not None:
                self.fail(done.exception())
            else:
                for work in works:
                    self.step_finished(work)
            self.state.wake.set()

        asyncio.gather(*waits).add_done_callback(committed)

    # -- requests -----------------------------------------------------------

    async def run_work(self, work):
        "All requests of one step of one prompt (API samplers)."
        waits = []
        try:
            await self.requests.run_step(work, self.submit, waits)
        except Unreachable:
            pass
        self.after_commit([work], waits)

    async def run_batch(self, works):
        "One engine call for many prompts (batch samplers such as vLLM)."
        waits = await self.requests.run_batch(works, self.submit)
        self.after_commit(works, waits)

    async def submit(self, work, indexes, completions):
        "Score completions and queue them for writing; returns a future for the write."
        # Errors, truncated and empty answers are written, never scored.
        valid = [i for i, c in enumerate(completions) if c.valid]
        verdicts = [None] * len(completions)
        stopped = False
        if self.scorer is not None:
            # A sampler that scores where it samples (a Ray executor verifying on
            # its workers) hands back verdicts; only the others are scored here.
            for i in valid:
                verdicts[i] = completions[i].verdict
            todo = [i for i in valid if verdicts[i] is None]
            if todo:
                items = [(completions[i].response, work.metadata, work.messages) for i in todo]
                try:
                    scored = await self.scorer.ascore(items)
                except asyncio.CancelledError:
                    if not self.offloaded:
                        raise
                    # The run is stopping while the helper process held these:
                    # they arrived, so they are scored here and written.
                    stopped, scored = True, self.scorer.verifier.check_many(items)
                for i, verdict in zip(todo, scored):
                    verdicts[i] = verdict
        future = self.writer.queue((work, indexes, completions, verdicts))
        work.written.extend(indexes)
        self.report.count(completions, verdicts)
        if self.meter is not None:
            self.meter.add(completions)
            if self.meter.reached():
                self.cap()
        if stopped:
            raise asyncio.CancelledError()
        return future

    def step_finished(self, work):
        """The step is written: the prompt is checked again (with the others
        finished meanwhile, in one query) and requeued if it needs more."""
        self.report.steps += 1
        if self.state.stopping or self.state.stop_requested or self.state.abort_error is not None:
            self.plan.in_flight.discard(work.prompt_id)
            return
        # The prompt stays in flight until it is checked, so that a page of
        # pending prompts read meanwhile does not plan it twice.
        self.finished.append(work)
        self.state.wake.set()

    def requeue_finished(self):
        "Check the prompts whose steps finished; requeue, in front, those that need more."
        works, self.finished = {w.prompt_id: w for w in self.finished}, []
        rows = self.states.of(list(works))
        self.plan.in_flight.difference_update(works)
        for row in rows:
            if row["needs_sampling"]:
                self.plan.enqueue(row, front=True, previous=works[row["id"]])

    # -- progress ---------------------------------------------------------

    async def ticker(self):
        last_summary = 0.0
        while True:
            await asyncio.sleep(0.5)
            if self.on_progress is None:
                continue
            if time.monotonic() - last_summary > 5:
                self.report.refresh_summary(self.states)
                last_summary = time.monotonic()
            self.on_progress(self.report)


@contextlib.contextmanager
def collector_tuned():
    """Run with fewer garbage collections: the loop allocates a few dozen objects
    per request, and with the default thresholds Python's collector walks every
    object of the imported libraries over and over (about 0.15 ms of CPU per
    request in bench/orchestration.py). What is alive now is frozen out of the
    collector's walks, and young objects are collected in larger batches."""
    thresholds = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(max(thresholds[0], 20_000), thresholds[1], thresholds[2])
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()


def sample(db, sampler, scorer, settings, run_id=None, on_progress=None) -> SampleReport:
    """Sample until every selected prompt is satisfied or out of budget.

    Stops cleanly on SIGINT/SIGTERM (raising Interrupted) after writing every
    completion that had arrived.
    """
    if settings.target.needs_verifier() and scorer is None:
        raise RsrError(f"Target {settings.target.label} needs a verifier: pass --verifier NAME")
    loop_runner = SamplingLoop(db, sampler, scorer, settings, run_id, on_progress)

    async def main():
        task = asyncio.current_task()
        loop = asyncio.get_running_loop()
        received = []

        def stop(signum):
            # The first signal lets replies on their way arrive and be written
            # (for up to STOP_GRACE_S); a second one, or the grace running out,
            # stops at once, still writing everything that has arrived.
            received.append(signum)
            if loop_runner.state.stopping:
                return  # already writing what arrived and closing
            if len(received) == 1:
                loop_runner.request_stop(STOP_GRACE_S, task.cancel)
            else:
                task.cancel()

        def interrupted():
            return Interrupted(
                f"Interrupted by {signal.Signals(received[0]).name}: "
                f"{loop_runner.report.rollouts:,} rollouts written; re-run to resume"
            )

        installed = []
        for signum in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(signum, stop, signum)
                installed.append(signum)
            except (NotImplementedError, RuntimeError, ValueError):
                pass  # not the main thread: the caller handles signals
        try:
            with collector_tuned():
                report = await loop_runner.run()
            if received:
                raise interrupted()
            if loop_runner.state.capped is not None:
                raise Capped(f"{loop_runner.state.capped}: {report.rollouts:,} rollouts written; "
                             "re-run with a higher --max-cost to continue", report)
            return report
        except asyncio.CancelledError:
            if received:
                raise interrupted() from None
            raise
        finally:
            for signum in installed:
                loop.remove_signal_handler(signum)

    loop_runner.offloaded = (
        scorer is not None and settings.offload_scoring and getattr(sampler, "loop_bound", False)
        and usable_cpus() >= 2 and scorer.start_offload()
    )
    try:
        return asyncio.run(main())
    finally:
        if loop_runner.offloaded:
            scorer.stop_offload()
        close = getattr(sampler, "close", None)
        if close is not None:
            close()

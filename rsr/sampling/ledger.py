"""The ledger side of a run: the state queries that say what is left, and the
writer that inserts finished requests.

Exactly once: every rollout is written (with its scores and its step) in one
small transaction as soon as its request returns. Writes run on a thread with
its own connection, so the event loop never waits for SQLite or the disk's
fsync; a write's future resolves only once it has committed.
"""

import asyncio
import concurrent.futures
import functools
import json
import sqlite3

from .. import early_stop
from ..db import BUSY_TIMEOUT_MS
from ..runs import utcnow
from ..selection import response_hash
from ..verification import score_row

# Writes are multi-row INSERTs: one statement (one sqlite3_step) inserts many
# rows, triggers included, without holding the GIL. executemany() would take
# the GIL back for every row, and on the writer thread each of those handoffs
# waits for the busy event loop (seconds per batch, measured).
# Each is (head, one row's VALUES tuple, tail); rows are tuples in that order.
INSERT_ROLLOUTS = (
    """insert into rollouts (prompt_id, arm, sample_index, step, run_id, model, sampler, params,
        seed, response, reasoning, finish_reason, truncated, prompt_tokens, completion_tokens,
        latency_ms, error, created_at, response_hash, first_of_request)""",
    "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    "",
)

# Scores of rollouts written in the same transaction, found by their key.
INSERT_SCORES = (
    "insert into scores (rollout_id, verifier, score, passed, extracted, details, error)",
    "((select id from rollouts where prompt_id = ? and arm = ? and sample_index = ?), "
    "?, ?, ?, ?, ?, ?)",
    "",
)

# The first write of a step creates its row; later writes of the same step (a
# server that ignores n, or a run completing a step a crash cut short) add to
# it. The tail's one parameter is the time of the write.
UPSERT_STEPS = (
    "insert into steps (prompt_id, step, arm, run_id, requested, received, started_at, "
    "finished_at)",
    "(?, ?, ?, ?, ?, ?, ?, ?)",
    """on conflict (prompt_id, step) do update set
        received = steps.received + excluded.received,
        run_id = excluded.run_id,
        finished_at = case when steps.received + excluded.received >= steps.requested
                           then ? end""",
)

# Rows per statement: a few sizes, so a handful of prepared statements serve
# every batch.
CHUNK_ROWS = (256, 64, 16, 4, 1)


@functools.lru_cache(maxsize=64)
def _statement(head, values, tail, rows):
    return f"{head} values {', '.join([values] * rows)} {tail}"


def insert_rows(conn, statement, rows, tail_params=()):
    "Insert rows (tuples) with a few multi-row statements."
    head, values, tail = statement
    # Older SQLite builds allow only 999 parameters in a statement.
    width = values.count("?")
    limit = max(1, (_max_variables(conn) - len(tail_params)) // width)
    start = 0
    while start < len(rows):
        count = next(c for c in CHUNK_ROWS if c <= min(limit, len(rows) - start))
        chunk = rows[start:start + count]
        params = [value for row in chunk for value in row]
        params.extend(tail_params)
        conn.execute(_statement(head, values, tail, count), params)
        start += count


def _max_variables(conn):
    try:
        return conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
    except AttributeError:  # Python 3.10
        return 999


class PromptStates:
    "The state of the prompts a run selects, as rsr/early_stop.py's SQL says it."

    def __init__(self, db, settings, verifier_name):
        self.db = db
        target = settings.target
        budget = {"budget": settings.budget, "cost_cap": settings.max_cost_per_prompt is not None}
        self.sql = early_stop.states_sql(
            target, settings.where, settings.limit, settings.dedupe, settings.pool, **budget)
        self.pending_sql = early_stop.pending_sql(
            target, settings.where, settings.limit, settings.dedupe, settings.pool, **budget)
        self.some_sql = (
            f"select * from ({self.sql}) where id in (select value from json_each(:ids))"
        )
        self.params = early_stop.state_params(
            target, verifier_name, settings.max_rollouts, settings.max_steps, settings.limit,
            settings.arm, settings.step_size, settings.max_cost_per_prompt)
        self.settings = settings

    def reallocate(self):
        """Under --budget proportional, a new round of allowances (rsr/early_stop.py);
        returns the rollouts it granted (0 under uniform)."""
        if self.settings.budget != "proportional":
            return 0
        total = self.settings.max_rollouts * next(self.db.query(
            f"select count(*) as n from ({self.sql})", self.params))["n"]
        return early_stop.reallocate(self.db, self.sql, self.params, total, self.settings.step_size,
                                     self.settings.max_steps, self.settings.hopeless)

    def pending(self, after, page):
        "A page of the prompts that need sampling, after this rowid."
        params = dict(self.params, after=after, page=page)
        return list(self.db.query(self.pending_sql, params))

    def of(self, prompt_ids):
        "The state rows of these prompts (those the run still selects)."
        cursor = self.db.conn.cursor()
        cursor.row_factory = sqlite3.Row
        cursor.execute(self.some_sql, dict(self.params, ids=json.dumps(prompt_ids)))
        return cursor.fetchall()


class LedgerWriter:
    """Writes finished requests: the queue, the writer thread and its connection.

    queue() takes (work, indexes, completions, verdicts) and returns a future
    that resolves once that write has committed; run() is the task that hands
    the queue to the thread, and calls on_written() after each write."""

    def __init__(self, db, run_id, info, params, verifier_name, on_written, arm):
        self.db = db
        self.arm = arm
        self.run_id = run_id
        self.info = info
        self.params_json = json.dumps(params, sort_keys=True)
        self.verifier_name = verifier_name
        self.on_written = on_written
        # [(item, future)] waiting for the next write.
        self.queued = []
        self.wake = asyncio.Event()
        # The thread's own connection and the write it is running.
        self.conn = None
        self.thread = None
        self.pending = None

    def queue(self, item):
        "Queue one finished request for writing; returns a future for its write."
        future = asyncio.get_running_loop().create_future()
        self.queued.append((item, future))
        self.wake.set()
        return future

    def write(self, batch):
        "Write [(work, indexes, completions, verdicts)] in one transaction, here and now."
        self.execute(self.rows(batch))

    def rows(self, batch):
        "The (rollouts, scores, steps) parameters of a batch of finished requests."
        now = utcnow()
        rollouts, scores, steps = [], [], []
        for work, indexes, completions, verdicts in batch:
            # Each item is one request's reply: its first rollout pays the prompt.
            for position, (index, completion, verdict) in enumerate(zip(indexes, completions, verdicts)):
                rollouts.append(self.rollout_row(work, index, completion, now) + (int(position == 0),))
                if verdict is not None:
                    row = score_row(None, self.verifier_name, verdict)
                    scores.append((work.prompt_id, self.arm, index) + row[1:])
            received = len(indexes)
            steps.append((work.prompt_id, work.step, self.arm, self.run_id, work.requested, received,
                          work.started_at, now if received >= work.requested else None))
        return rollouts, scores, steps, now

    def execute(self, rows):
        "Insert rows from rows() in one transaction (on the writer thread when it runs)."
        rollouts, scores, steps, now = rows
        if self.conn is None:
            conn = self.db.conn
            with self.db.atomic():
                insert_rows(conn, INSERT_ROLLOUTS, rollouts)
                insert_rows(conn, INSERT_SCORES, scores)
                insert_rows(conn, UPSERT_STEPS, steps, (now,))
            return
        conn = self.conn
        conn.execute("begin immediate")
        try:
            insert_rows(conn, INSERT_ROLLOUTS, rollouts)
            insert_rows(conn, INSERT_SCORES, scores)
            insert_rows(conn, UPSERT_STEPS, steps, (now,))
            conn.execute("commit")
        except BaseException:
            if conn.in_transaction:
                conn.execute("rollback")
            raise

    def open(self):
        """A connection of its own for the writer thread, with the ledger's settings.

        A ledger in memory, or a connection inside a transaction of the
        caller's, is written here on the loop instead."""
        path = self.db.conn.execute("pragma database_list").fetchone()[2]
        if not path or self.db.conn.in_transaction:
            return
        conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        conn.execute(f"pragma busy_timeout = {BUSY_TIMEOUT_MS}")
        conn.execute("pragma foreign_keys = on")
        # As open_db sets it: a committed rollout survives power loss.
        conn.execute("pragma synchronous = full")
        self.conn = conn
        self.thread = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="rsr-writer")

    def close(self):
        if self.thread is not None:
            self.thread.shutdown(wait=True)
            self.thread = None
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def rollout_row(self, work, index, completion, now):
        "The INSERT_ROLLOUTS parameters of one completion."
        return (
            work.prompt_id, self.arm, index, work.step, self.run_id, self.info.get("model"),
            self.info.get("sampler"), self.params_json, completion.seed, completion.response,
            completion.reasoning, completion.finish_reason, int(completion.truncated),
            completion.prompt_tokens, completion.completion_tokens, completion.latency_ms,
            completion.error, now, response_hash(completion.response),
        )

    async def run(self):
        loop = asyncio.get_running_loop()
        while True:
            await self.wake.wait()
            self.wake.clear()
            if self.thread is None:
                self.flush()
            elif self.queued:
                batch, self.queued = self.queued, []
                rows = self.rows([item for item, _ in batch])
                self.pending = loop.run_in_executor(self.thread, self.execute, rows)
                self.pending.add_done_callback(lambda done, batch=batch: settle(batch, done))
                # Shielded: cancelling the writer (a stop) leaves the thread's
                # write to finish; the loop waits for it before the last flush.
                await asyncio.shield(self.pending)
            self.on_written()

    def flush(self):
        "Write what is queued, here and now (the writer thread, if any, is idle)."
        if not self.queued:
            return
        batch, self.queued = self.queued, []
        try:
            self.write([item for item, _ in batch])
        except BaseException as ex:
            _settle_futures(batch, ex)
            raise
        _settle_futures(batch, None)


def settle(batch, done):
    "Resolve the futures of a batch whose write (a finished future) ran on the thread."
    _settle_futures(batch, done.exception() if not done.cancelled() else asyncio.CancelledError())


def _settle_futures(batch, error):
    for _, future in batch:
        if not future.done():
            if error is None:
                future.set_result(None)
            else:
                future.set_exception(error)
                # The error reaches the user through the run (fail() or the last
                # flush raises it); a step cancelled by the stop never awaits its
                # future, and asyncio would log a traceback for it at exit.
                future.exception()

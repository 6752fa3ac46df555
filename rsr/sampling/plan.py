"""The plan: which rollouts a prompt's next step asks for, and with which seeds.

Every rollout has a fixed (prompt_id, arm, sample_index) chosen before it is
requested. A crash loses only the requests in flight; the next run plans the
lowest missing sample indexes again, with the same seeds, and completes a step
that was cut short under the same step number. Whether a prompt needs a step
at all is rsr/early_stop.py's rule (the pending and state queries).
"""

import hashlib
import json
from collections import deque
from dataclasses import dataclass, field

from .. import early_stop
from ..runs import utcnow
from ..samplers import SampleRequest

SAMPLE_INDEXES_SQL = (
    "select sample_index from rollouts where prompt_id = :prompt_id and arm = :arm")


@dataclass
class Work:
    "One step of one prompt: which sample indexes to ask for."

    prompt_id: str
    messages: list
    metadata: dict
    step: int
    indexes: list
    requested: int
    started_at: str = field(default_factory=utcnow)
    outstanding: int = 0
    # Sample indexes the ledger held when the step was planned, and those this
    # step has written: together, what the prompt holds once it is written.
    taken: set = field(default_factory=set)
    written: list = field(default_factory=list)


def derive_seed(base_seed, prompt_id, sample_index):
    "A per-rollout seed, fixed by (base seed, prompt, sample index)."
    if base_seed is None:
        return None
    digest = hashlib.sha256(f"{base_seed}:{prompt_id}:{sample_index}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def plan_step(db, row, settings, previous=None):
    """The next Work for a pending prompt row, or None if it needs nothing.

    previous is the prompt's last Work in this run, if any: its indexes and
    parsed messages are reused instead of read again (this run holds the
    writer lock, so nothing else adds rollouts meanwhile)."""
    planned = early_stop.next_step(row, settings.max_rollouts, settings.step_size)
    if planned is None:
        return None
    rollouts, count = row["rollouts"], planned.count
    taken = set()
    if previous is not None and len(previous.taken) + len(previous.written) == rollouts:
        taken = previous.taken.union(previous.written)
    if rollouts and len(taken) != rollouts:
        taken = {r[0] for r in db.execute(SAMPLE_INDEXES_SQL,
                                          {"prompt_id": row["id"], "arm": settings.arm})}
    indexes, candidate = [], 0
    while len(indexes) < count:
        if candidate not in taken:
            indexes.append(candidate)
        candidate += 1
    if previous is not None:
        messages, metadata = previous.messages, previous.metadata
    else:
        messages, metadata = json.loads(row["messages"]), json.loads(row["metadata"] or "{}")
    return Work(
        prompt_id=row["id"],
        messages=messages,
        metadata=metadata,
        step=planned.number,
        indexes=indexes,
        requested=planned.requested,
        taken=taken,
    )


def request_for(work, indexes, settings):
    "The SampleRequest for these sample indexes of a step, each with its own seed."
    seeds = [derive_seed(settings.seed, work.prompt_id, i) for i in indexes]
    return SampleRequest(work.prompt_id, work.messages, len(indexes), seeds[0],
                         settings.params, seeds, work.metadata)


class Planner:
    """The steps planned and not yet started (ready, in order), and the prompts
    planned or in flight: a prompt is planned once until its step is checked."""

    def __init__(self, db, settings):
        self.db = db
        self.settings = settings
        self.ready = deque()
        # Prompt ids with a step planned, running or waiting to be checked.
        self.in_flight = set()

    def enqueue(self, row, front, previous=None):
        "Plan the prompt row's next step, at the front or the back; False if it needs none."
        work = plan_step(self.db, row, self.settings, previous)
        if work is None:
            return False
        self.in_flight.add(work.prompt_id)
        (self.ready.appendleft if front else self.ready.append)(work)
        return True

    def take(self, count=1):
        "The next count planned steps, in order."
        return [self.ready.popleft() for _ in range(min(count, len(self.ready)))]

"""The one verification loop: which rollouts need a score, scoring them, writing.

`Scorer` (rsr/verifiers/scorer.py) runs a verifier over (response, metadata,
messages) items and is shared by `rsr verify` and the inline scoring in
`rsr sample`. How it runs depends on the verifier:

- inline verifiers (mcq, exact) run in this process, on the caller's thread,
  or, in a sampling loop that issues HTTP requests, in one helper process
  (start_offload(); rsr.verifiers.offload) so they take no time from the loop;
- CPU verifiers that may hang (math, a user's function) run in worker processes
  (rsr.verifiers.pool) with a hard timeout per check, also with workers=0
  (then one worker);
- async verifiers (judge) await their HTTP backend on the event loop;
- batched in-process verifiers (reward-model) run their batches in a thread
  from `ascore`, so the event loop never blocks.

`verify_rollouts` is `rsr verify`: it scores every valid rollout that has no
score from the verifier, in batches, each written in one transaction, so an
interrupted run resumes where it stopped.
"""

import json
from dataclasses import dataclass

from .runs import finish_run, start_run, utcnow
from .verifiers.base import Verdict
from .verifiers.scorer import Scorer

__all__ = ["Scorer", "VerifyCounts", "count_pending", "save_scores", "score_row",
           "verify_rollouts"]

INSERT_SCORE_SQL = """
insert into scores (rollout_id, verifier, score, passed, extracted, details, error)
values (?, ?, ?, ?, ?, ?, ?)
on conflict (rollout_id, verifier) do update set
    score = excluded.score, passed = excluded.passed, extracted = excluded.extracted,
    details = excluded.details, error = excluded.error,
    created_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
"""

# Valid rollouts (a non-empty answer, not truncated, no error) after :after that need a
# score from :verifier: none yet, or (rescoring) one older than :rescore_before.
PENDING_WHERE = """
from rollouts join prompts on prompts.id = rollouts.prompt_id
left join labels on :use_labels and labels.prompt_id = rollouts.prompt_id
where rollouts.valid
  and not exists (
      select 1 from scores
      where scores.rollout_id = rollouts.id and scores.verifier = :verifier
        and (:rescore_before is null or scores.created_at >= :rescore_before)
        and not (labels.label is not null and scores.error is 'no gold answer')
  )
"""
PENDING_SQL = (
    "select rollouts.id, rollouts.response, prompts.metadata, prompts.messages, labels.label, "
    "labels.method"
    + PENDING_WHERE
    + "and rollouts.id > :after order by rollouts.id limit :limit"
)
COUNT_PENDING_SQL = "select count(*)" + PENDING_WHERE
COUNT_SKIPPED_SQL = """
select count(*) from rollouts
where not valid
"""


def score_row(rollout_id, verifier_name, verdict):
    "The parameters of one scores row."
    passed = None if verdict.passed is None else int(bool(verdict.passed))
    return (
        rollout_id,
        verifier_name,
        verdict.score,
        passed,
        None if verdict.extracted is None else str(verdict.extracted),
        json.dumps(verdict.details, ensure_ascii=False, default=str) if verdict.details else None,
        verdict.error,
    )


def save_scores(db, rows):
    "Insert (or replace) score rows made by score_row(); call inside db.atomic()."
    db.conn.executemany(INSERT_SCORE_SQL, rows)


@dataclass
class VerifyCounts:
    "What a verify run did, for its summary line."

    scored: int = 0
    passed: int = 0
    failed: int = 0
    undecided: int = 0
    errors: int = 0
    skipped: int = 0

    def add(self, verdict: Verdict):
        self.scored += 1
        if verdict.passed is None:
            self.undecided += 1
        elif verdict.passed:
            self.passed += 1
        else:
            self.failed += 1
        if verdict.error:
            self.errors += 1

    def summary(self):
        return (
            f"{self.scored:,} scored: {self.passed:,} passed, {self.failed:,} failed, "
            f"{self.undecided:,} undecided ({self.errors:,} errors); "
            f"{self.skipped:,} truncated, errored or empty rollouts skipped"
        )


GOLD_SOURCES = ("answer", "label")


def count_pending(db, verifier_name, rescore=False, gold="answer"):
    "How many valid rollouts still need a score from this verifier (all of them, rescoring)."
    # Every stored created_at sorts before this, so rescoring counts every rollout.
    params = {"verifier": verifier_name, "rescore_before": "9999" if rescore else None,
              "use_labels": gold == "label"}
    return db.execute(COUNT_PENDING_SQL, params).fetchone()[0]


def with_label(metadata: dict, label: str | None, method: str | None) -> tuple[dict, bool]:
    """metadata with the prompt's majority label as its answer when it has no gold
    answer, and whether it was used; a gold answer is never replaced."""
    gold = metadata.get("answer")
    if label is None or not (gold is None or (isinstance(gold, str) and not gold.strip())):
        return metadata, False
    return {**metadata, "answer": label}, True


def verify_rollouts(db, scorer, *, rescore=False, batch_size=1000, on_batch=None,
                    config=None, gold="answer") -> VerifyCounts:
    """Score every valid rollout lacking a score from scorer's verifier.

    With rescore=True, rollouts already scored before this call are scored
    again. gold="label" grades prompts without metadata.answer against their
    majority label (rsr.labels), says so in the score's details, and scores again
    the rollouts that found no gold answer before their prompt had a label.
    Each batch is written in one transaction; on_batch(n, counts) is called
    after each, with the batch's size and the counts so far. The invocation is
    recorded in the runs table.
    """
    started = utcnow()
    rescore_before = started if rescore else None
    params = {"verifier": scorer.name, "rescore_before": rescore_before, "limit": batch_size,
              "use_labels": gold == "label"}
    counts = VerifyCounts(skipped=db.execute(COUNT_SKIPPED_SQL).fetchone()[0])
    run_id = start_run(db, "verify", config or {"verifier": scorer.name, "rescore": rescore})
    status = "failed"
    try:
        after = 0
        while True:
            rows = db.execute(PENDING_SQL, {**params, "after": after}).fetchall()
            if not rows:
                break
            needs_prompt = scorer.verifier.needs_prompt
            items, labelled = [], []
            for _, response, metadata, messages, label, method in rows:
                metadata, used = with_label(json.loads(metadata), label, method)
                items.append((response, metadata, json.loads(messages) if needs_prompt else None))
                labelled.append(method if used else None)
            verdicts = scorer.score(items)
            for verdict, method in zip(verdicts, labelled):
                if method is not None:
                    verdict.details = {**(verdict.details or {}), "gold_source": "label",
                                       "label_method": method}
            with db.atomic():
                save_scores(db, [score_row(row[0], scorer.name, v) for row, v in zip(rows, verdicts)])
            for verdict in verdicts:
                counts.add(verdict)
            after = rows[-1][0]
            if on_batch is not None:
                on_batch(len(rows), counts)
        status = "finished"
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    finally:
        finish_run(db, run_id, status, counts.summary())
    return counts

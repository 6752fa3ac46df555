"""The one verification loop: which rollouts need a score, scoring them, writing.

`Scorer` runs a verifier over (response, metadata, messages) items, inline or in
worker processes, and is shared by `rsr verify` and the inline scoring in
`rsr sample`. Scores are written with `save_scores` in the caller's transaction.
"""

import asyncio
import json

from .verifiers import Verdict

INSERT_SCORE_SQL = """
insert into scores (rollout_id, verifier, score, passed, extracted, details, error)
values (?, ?, ?, ?, ?, ?, ?)
on conflict (rollout_id, verifier) do update set
    score = excluded.score, passed = excluded.passed, extracted = excluded.extracted,
    details = excluded.details, error = excluded.error,
    created_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
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


def _safe_call(verifier, response, metadata, messages):
    try:
        return verifier(response, metadata, prompt=messages)
    except Exception as ex:  # a verifier bug must be recorded, not end the run
        return Verdict(None, None, None, {}, f"{type(ex).__name__}: {ex}")


class Scorer:
    "Scores items [(response, metadata, messages)] with one verifier."

    def __init__(self, verifier, workers=0, timeout=None):
        self.verifier = verifier
        self.name = verifier.name
        self.workers = workers
        self.timeout = timeout

    def score(self, items):
        return [_safe_call(self.verifier, *item) for item in items]

    async def ascore(self, items):
        if getattr(self.verifier, "inline", True):
            return self.score(items)
        return await asyncio.to_thread(self.score, items)

    def close(self):
        pass

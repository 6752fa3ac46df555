"""A short summary of a ledger: counts, schema version, recent runs."""

from .db import schema_version

COUNTS_SQL = """
select
    (select count(*) from prompts) as prompts,
    (select count(*) from rollouts) as rollouts,
    (select count(*) from rollouts where truncated = 1) as truncated,
    (select count(*) from rollouts where error is not null) as errored,
    (select count(*) from scores) as scores,
    (select count(*) from runs) as runs
"""

VERIFIERS_SQL = """
select verifier, count(*) as scored, sum(passed is 1) as passed, sum(passed is 0) as failed,
       sum(passed is null) as undecided
from scores group by verifier order by verifier
"""

RECENT_RUNS_SQL = """
select id, command, status, started_at, finished_at, summary
from runs order by id desc limit :limit
"""


def ledger_info(db, runs_limit=10) -> dict:
    "Counts, schema version, verifiers seen and the most recent runs."
    counts = next(db.query(COUNTS_SQL))
    return {
        "schema_version": schema_version(db),
        "counts": counts,
        "verifiers": list(db.query(VERIFIERS_SQL)),
        "runs": list(db.query(RECENT_RUNS_SQL, {"limit": runs_limit})),
    }

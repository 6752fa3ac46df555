"""Choosing rollouts for export: every selection rule written as SQL.

A selection starts from the *candidates*: the valid rollouts (a response, not
truncated, no error) of the prompts a `where` clause picks, each with its score
from one verifier. `value` is what a rollout is ranked by: the verifier's
`score`, or `passed` (1/0) when there is no score. `passed` is the verifier's
verdict, or `score >= pass_threshold` when a threshold is given; NULL is an
undecided score, which is neither a pass nor a fail.

With dedupe, identical completions of a prompt (after whitespace
normalisation) count once: only the best-ranked copy stays a candidate, so
duplicates count once in pass rates and in every per-prompt limit.

Ties in value are broken by the pick rule, and then by sample_index:

- shortest: the shorter response first (in characters)
- first: the earliest sample_index first
- random: a seeded shuffle (the same seed always gives the same order)

The SQL below is assembled only from fixed fragments chosen in code; every
value is a named parameter. The `where` text is the user's own SQL over the
prompts table, run on a read-only connection.
"""

import hashlib
import json
import sqlite3
from dataclasses import dataclass

from .errors import ConfigError

PICK_ORDER = {
    "shortest": "length, sample_index, rollout_id",
    "first": "sample_index, rollout_id",
    "random": "rsr_random(:seed, rollout_id), rollout_id",
}

PASSED_FROM_VERDICT = "scores.passed"
PASSED_FROM_THRESHOLD = (
    "case when scores.score is null then null else scores.score >= :pass_threshold end"
)

# The valid scored rollouts. Texts stay out (only their length comes along):
# the selected rows fetch theirs at the end.
SCORED_SQL = """
with scored as (
    select
        rollouts.id as rollout_id,
        rollouts.prompt_id,
        rollouts.sample_index,
        rollouts.arm,
        length(rollouts.response) as length,
        scores.score,
        {passed} as passed,
        coalesce(scores.score, scores.passed) as value,
        {norm} as norm
    from rollouts
    join scores on scores.rollout_id = rollouts.id and scores.verifier = :verifier
    where rollouts.valid
      {prompt_filter}
      {prefilter}
)"""
PROMPT_FILTER = "and rollouts.prompt_id in (select id from prompts where {where})"
ONE_PROMPT_FILTER = "and rollouts.prompt_id = :prompt_id"
ARM_FILTER = "and rollouts.arm in (select value from json_each(:arms))"
# A DPO pool restricted to some arms (--chosen-arm, --rejected-arm).
POOL_ARM_FILTER = " and arm in (select value from json_each(:{side}_arms))"

# The best copy of each distinct (whitespace-normalised) completion of a prompt.
DISTINCT_SQL = """,
kept as (
    select * from (
        select {source}.*, row_number() over (
            partition by prompt_id, norm order by value desc nulls last, {pick}
        ) as copy_rank
        from {source}
    ) where copy_rank = 1
)"""

# Curriculum bands over each prompt's pass rate (of the rows kept so far).
BAND_SQL = """,
rated as (
    select {source}.*,
        sum(passed is 1) over by_prompt as prompt_passed,
        sum(passed is 0) over by_prompt as prompt_failed
    from {source}
    window by_prompt as (partition by prompt_id)
),
banded as (
    select * from rated
    where (:pass_rate_min is null or (prompt_passed + prompt_failed > 0
           and 1.0 * prompt_passed / (prompt_passed + prompt_failed) >= :pass_rate_min))
      and (:pass_rate_max is null or (prompt_passed + prompt_failed > 0
           and 1.0 * prompt_passed / (prompt_passed + prompt_failed) <= :pass_rate_max))
)"""

CANDIDATES_SQL = """,
candidates as (select * from {source})
"""

# One row per prompt and rank: the passing rollouts (sft, multi-sft) or all
# scored ones (best-of-n), best value first, ties by the pick rule.
PER_PROMPT_SQL = """
, ranked as (
    select candidates.*, row_number() over (
        partition by prompt_id order by value desc, {pick}
    ) as rank
    from candidates where {filter}
)
select ranked.*, rollouts.response, rollouts.reasoning, prompts.messages, prompts.metadata
from ranked
join rollouts on rollouts.id = ranked.rollout_id
join prompts on prompts.id = ranked.prompt_id
where rank <= :per_prompt
order by prompts.rowid, rank
"""

# The K best (prompt, rollout) pairs over the whole ledger.
TOP_K_SQL = """
select candidates.*, rollouts.response, rollouts.reasoning, prompts.messages, prompts.metadata
from candidates
join rollouts on rollouts.id = candidates.rollout_id
join prompts on prompts.id = candidates.prompt_id
where value is not null
order by value desc, {pick}
limit :k
"""

# Pairs within a prompt. The candidates and the two pools go into indexed
# temporary tables first (the join on prompt_id needs an index SQLite will not
# reliably build for a CTE): the chosen pool ranked best first, the rejected
# pool in the strategy's order, and the pairs taken in the strategy's order.
CANDIDATES_TABLE_SQL = "create temp table rsr_candidates as {candidates} select * from candidates"
POOL_TABLE_SQL = """
create temp table {table} as
select prompt_id, rollout_id, arm, score, passed, value, norm,
       row_number() over (partition by prompt_id order by {order}) as pool_rank
from temp.rsr_candidates where {filter}
"""
POOL_INDEX_SQL = "create index temp.{table}_by_prompt on {table}(prompt_id)"
DROP_TEMP_SQL = "drop table if exists temp.{table}"
TEMP_TABLES = ("rsr_candidates", "rsr_chosen", "rsr_rejected")

PAIRS_SQL = """
with pairs as (
    select
        chosen.prompt_id,
        chosen.rollout_id as chosen_id, chosen.score as chosen_score,
        chosen.passed as chosen_passed,
        rejected.rollout_id as rejected_id, rejected.score as rejected_score,
        rejected.passed as rejected_passed,
        row_number() over (
            partition by chosen.prompt_id
            order by {pair_order}
        ) as pair_rank
    from temp.rsr_chosen as chosen
    join temp.rsr_rejected as rejected on rejected.prompt_id = chosen.prompt_id
    where chosen.rollout_id != rejected.rollout_id
      and chosen.norm != rejected.norm
      and {preference}
      and (:min_margin is null or chosen.value - rejected.value >= :min_margin)
)
select pairs.*,
    chosen_rollout.response as chosen_response, chosen_rollout.reasoning as chosen_reasoning,
    rejected_rollout.response as rejected_response,
    rejected_rollout.reasoning as rejected_reasoning,
    prompts.messages, prompts.metadata
from pairs
join rollouts as chosen_rollout on chosen_rollout.id = pairs.chosen_id
join rollouts as rejected_rollout on rejected_rollout.id = pairs.rejected_id
join prompts on prompts.id = pairs.prompt_id
where pair_rank <= :max_pairs
order by prompts.rowid, pair_rank
"""

# Diagonal first (1st with 1st, 2nd with 2nd, then neighbours): each rollout is
# used once before any is reused.
DIAGONAL = "abs(chosen.pool_rank - rejected.pool_rank), chosen.pool_rank, rejected.pool_rank"
# The best chosen with every rejected (in the rejected pool's order) first.
BEST_FIRST = "chosen.pool_rank, rejected.pool_rank"

# strategy: (chosen pool, rejected pool, rejected order, preference, pair order)
PAIR_STRATEGIES = {
    # passes (best first) against fails (worst first)
    "pass-fail": ("passed is 1", "passed is 0", "value, {pick}", "1", DIAGONAL),
    # k-th best against k-th worst; a tie never pairs
    "best-worst": (
        "value is not null",
        "value is not null",
        "value, {pick}",
        "chosen.value > rejected.value",
        DIAGONAL,
    ),
    # the best against lower-scored rollouts in seeded random order
    "best-random": (
        "value is not null",
        "value is not null",
        "rsr_random(:seed + 1, rollout_id), rollout_id",
        "chosen.value > rejected.value",
        BEST_FIRST,
    ),
}

VERIFIERS_SQL = "select distinct verifier from scores order by verifier"


@dataclass
class Selection:
    "What every export format shares: which scores, which prompts, which copies."

    verifier: str
    pass_threshold: float = None
    dedupe: bool = False
    pass_rate_min: float = None
    pass_rate_max: float = None
    where: str = None
    pick: str = "shortest"
    seed: int = 0
    # One prompt only (a prompt's page in `rsr browse`): every rule is per
    # prompt, so its picks are the ones the whole export makes for it.
    prompt_id: str = None
    # Only these arms' rollouts are candidates (None: every arm, pooled); DPO
    # takes its chosen side from chosen_arms and its rejected side from
    # rejected_arms when given.
    arms: tuple = None
    chosen_arms: tuple = None
    rejected_arms: tuple = None

    def params(self, **extra):
        params = {
            "verifier": self.verifier,
            "prompt_id": self.prompt_id,
            "pass_threshold": self.pass_threshold,
            "pass_rate_min": self.pass_rate_min,
            "pass_rate_max": self.pass_rate_max,
            "seed": self.seed,
            "arms": json.dumps(list(self.arms or ())),
            "chosen_arms": json.dumps(list(self.chosen_arms or ())),
            "rejected_arms": json.dumps(list(self.rejected_arms or ())),
        }
        params.update(extra)
        return params


def normalize_whitespace(text):
    "A completion with runs of whitespace collapsed, for spotting duplicates."
    return " ".join(text.split()) if text is not None else None


def response_hash(text):
    """The ledger's stored key of a completion: whitespace runs collapsed, then
    SHA-256 (first 16 hex digits). Stable across processes, unlike normalized_key."""
    if text is None:
        return None
    return hashlib.sha256(normalize_whitespace(text).encode("utf-8")).hexdigest()[:16]


def normalized_key(text):
    """A 64-bit key of the whitespace-normalised text, small to sort and compare.

    Python's string hash: the fastest key to compute per row, and stable
    within the one process that runs a selection, which is all it needs.
    """
    return None if text is None else hash(normalize_whitespace(text))


def seeded_random(seed, rollout_id):
    "A stable pseudo-random sort key for a rollout under a seed."
    digest = hashlib.blake2b(f"{seed}:{rollout_id}".encode(), digest_size=7).digest()
    return int.from_bytes(digest, "big")


def prepare(db):
    "Register the SQL functions the selection queries call."
    db.register_function(normalized_key, deterministic=True, name="rsr_norm", replace=True)
    db.register_function(seeded_random, deterministic=True, name="rsr_random", replace=True)


def resolve_verifier(db, verifier):
    "The verifier to export by: the one given, or the only one in the ledger."
    names = [row[0] for row in db.execute(VERIFIERS_SQL)]
    if verifier is not None:
        if verifier not in names:
            known = ", ".join(names) or "none yet"
            raise ConfigError(
                f"No scores from verifier {verifier!r} in this ledger (verifiers: {known})"
            )
        return verifier
    if not names:
        raise ConfigError("This ledger has no scores yet; run 'rsr verify' first")
    if len(names) > 1:
        raise ConfigError(
            f"This ledger has scores from several verifiers ({', '.join(names)}); "
            "choose one with --verifier"
        )
    return names[0]


def candidates_sql(selection, need_norm, passing_only=False):
    """The WITH clause that defines `candidates` for a selection.

    passing_only lets the scan skip non-passing rollouts early, when nothing
    downstream (dedupe, pass-rate bands) needs to see them.
    """
    if selection.pick not in PICK_ORDER:
        raise ConfigError(f"pick must be one of {', '.join(PICK_ORDER)}, not {selection.pick!r}")
    where = selection.where.strip() if selection.where else ""
    banded = selection.pass_rate_min is not None or selection.pass_rate_max is not None
    passed = PASSED_FROM_THRESHOLD if selection.pass_threshold is not None else PASSED_FROM_VERDICT
    sql = SCORED_SQL.format(
        passed=passed,
        norm="rsr_norm(rollouts.response)" if (need_norm or selection.dedupe) else "rollouts.id",
        prompt_filter=(PROMPT_FILTER.format(where=where) if where else "")
        + (ONE_PROMPT_FILTER if selection.prompt_id is not None else "")
        + (ARM_FILTER if selection.arms else ""),
        prefilter=(
            f"and ({passed}) is 1" if passing_only and not (banded or selection.dedupe) else ""
        ),
    )
    source = "scored"
    if selection.dedupe:
        sql += DISTINCT_SQL.format(source=source, pick=PICK_ORDER[selection.pick])
        source = "kept"
    if banded:
        sql += BAND_SQL.format(source=source)
        source = "banded"
    return sql + CANDIDATES_SQL.format(source=source)


def _query(db, sql, params, where):
    prepare(db)
    try:
        cursor = db.execute(sql, params)
    except sqlite3.OperationalError as ex:
        if where:
            raise ConfigError(f"--where {where!r} is not valid SQL on prompts: {ex}") from None
        raise
    if cursor.description is None:
        return
    columns = [c[0] for c in cursor.description]
    for row in cursor:
        yield dict(zip(columns, row))


def select_per_prompt(db, selection, per_prompt, passing_only=True):
    "Up to per_prompt rollouts of each prompt, best first (passing ones only, or all)."
    pick = PICK_ORDER.get(selection.pick, "")
    sql = candidates_sql(selection, need_norm=False, passing_only=passing_only)
    sql += PER_PROMPT_SQL.format(
        pick=pick, filter="passed is 1" if passing_only else "value is not null"
    )
    return _query(db, sql, selection.params(per_prompt=per_prompt), selection.where)


def select_top_k(db, selection, k):
    "The k best rollouts over all prompts."
    pick = PICK_ORDER.get(selection.pick, "")
    sql = candidates_sql(selection, need_norm=False) + TOP_K_SQL.format(pick=pick)
    return _query(db, sql, selection.params(k=k), selection.where)


def select_pairs(db, selection, strategy, max_pairs=1, min_margin=None):
    "Chosen/rejected pairs within each prompt; a tie or an identical text never pairs."
    if strategy not in PAIR_STRATEGIES:
        raise ConfigError(f"--pairs must be one of {', '.join(PAIR_STRATEGIES)}")
    pick = PICK_ORDER.get(selection.pick, "")
    chosen_filter, rejected_filter, rejected_order, preference, pair_order = PAIR_STRATEGIES[
        strategy
    ]
    params = selection.params(max_pairs=max_pairs, min_margin=min_margin)
    _drop_temp_tables(db)
    try:
        candidates = candidates_sql(selection, need_norm=True)
        list(
            _query(db, CANDIDATES_TABLE_SQL.format(candidates=candidates), params, selection.where)
        )
        if selection.chosen_arms:
            chosen_filter += POOL_ARM_FILTER.format(side="chosen")
        if selection.rejected_arms:
            rejected_filter += POOL_ARM_FILTER.format(side="rejected")
        for table, order, where in (
            ("rsr_chosen", f"value desc, {pick}", chosen_filter),
            ("rsr_rejected", rejected_order.format(pick=pick), rejected_filter),
        ):
            db.execute(POOL_TABLE_SQL.format(table=table, order=order, filter=where), params)
            db.execute(POOL_INDEX_SQL.format(table=table))
        sql = PAIRS_SQL.format(pair_order=pair_order, preference=preference)
        yield from _query(db, sql, params, None)
    finally:
        _drop_temp_tables(db)


def _drop_temp_tables(db):
    for table in TEMP_TABLES:
        db.execute(DROP_TEMP_SQL.format(table=table))

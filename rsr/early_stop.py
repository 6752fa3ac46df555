"""Targets and budgets, written as SQL over the progress counters.

A target says when a prompt has what the training format needs:

    sft           one passing rollout
    dpo           one pass and one fail (a chosen/rejected pair)
    multi-sft:K   K passing rollouts
    best-of-n[:N] N valid rollouts (default N = max_rollouts)
    none          never satisfied: sample every prompt to its budget

The budget is `max_rollouts` rollouts and `max_steps` steps per prompt, whatever
the target. Truncated and errored rollouts count toward the budget, never toward
the target (the `verdicts` counters only count valid rollouts), so a prompt
cannot loop forever.

Budgets and targets are per arm (a sampling configuration: model, sampler,
parameters; see schema.sql): a run samples one arm, and its prompts' budgets
and passes are that arm's. A pooled target (`--pool`) counts passes of every
arm, so an arm stops where another has already produced what is needed. This
module is the only place these rules live.

Two budget modes (`--budget`): uniform gives every prompt the same
`max_rollouts`; proportional (DART-Math's Prop2Diff) gives a first step to
every prompt, then shares what is left of the same total (`max_rollouts` x
prompts) in rounds, more to prompts whose observed pass rate is low and none
to those the user's rule calls hopeless (`--hopeless N`: no pass in N
rollouts). Its per-prompt allowances live in the `allowances` table
(`reallocate()`). A cost cap per prompt (`--max-cost-per-prompt`) ends a
prompt's budget once its tokens cost that much (schema.sql's rollout_token_costs).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping

from .errors import ConfigError
from .config import SAMPLING

# Each target's "satisfied" predicate over `pr` (progress) and `v` (verdicts of
# the chosen verifier); :k is the target's number.
SATISFIED_SQL = {
    "sft": "coalesce(v.passed, 0) >= 1",
    "dpo": "coalesce(v.passed, 0) >= 1 and coalesce(v.failed, 0) >= 1",
    "multi-sft": "coalesce(v.passed, 0) >= :k",
    "best-of-n": "coalesce(t.valid, 0) >= :k",
    "none": "0",
}

# A prompt has budget left while it is under both caps, or while its last step
# was cut short (rollouts < requested): finishing that step starts no new one.
WITHIN_BUDGET_SQL = """
coalesce(pr.rollouts, 0) < {allowance}
and (coalesce(pr.steps, 0) < :max_steps or coalesce(pr.rollouts, 0) < coalesce(pr.requested, 0))
"""

# The rollouts a prompt's arm may draw: max_rollouts under --budget uniform;
# under proportional, its allowance, or a first step before it has one.
UNIFORM_ALLOWANCE_SQL = ":max_rollouts"
PROPORTIONAL_ALLOWANCE_SQL = "coalesce(al.rollouts, min(:step_size, :max_rollouts))"
ALLOWANCES_JOIN_SQL = "left join allowances al on al.prompt_id = prompts.id and al.arm = :arm"

# What a prompt's arm has spent on tokens (the per-prompt cost cap).
PROMPT_COST_SQL = """(select coalesce(sum(c.token_cost), 0) from rollout_token_costs c
     where c.prompt_id = prompts.id and c.arm = :arm)"""
UNDER_COST_CAP_SQL = PROMPT_COST_SQL + " < :max_cost_per_prompt"

# A step cut short by a crash is completed even when the prompt is already
# satisfied, so an interrupted run ends with exactly the rollouts of an
# uninterrupted one.
INCOMPLETE_STEP_SQL = (
    "coalesce(pr.rollouts, 0) < coalesce(pr.requested, 0) and coalesce(pr.rollouts, 0) < {allowance}"
)

# A prompt needs sampling while it is not satisfied and has budget left, or
# while a step of it was cut short: over the columns of PROMPT_STATE_SQL.
NEEDS_SAMPLING_SQL = "(not satisfied and within_budget) or incomplete"

# Every prompt a run selects is in one of three states: satisfied (its target is
# met and no step is left to finish), pending (it needs sampling) or exhausted
# (neither: its budget is spent).
STATE_SQL = f"""case when satisfied and not incomplete then 'satisfied'
     when {NEEDS_SAMPLING_SQL} then 'pending' else 'exhausted' end"""

# The arm a rollout belongs to when nothing names one (schema.sql's default).
DEFAULT_ARM = "default"

# `pr` is the budget of the run's arm (:arm), `pp` the prompt's counters over
# all arms; the target counts the arm's own verdicts (`v`, `t`), or with a
# pooled target every arm's. last_step and prompt_steps number the next step.
PROMPT_STATE_SQL = """
select
    prompts.rowid as rowid, prompts.id as id, prompts.messages as messages,
    prompts.metadata as metadata,
    coalesce(pr.rollouts, 0) as rollouts, coalesce(pr.steps, 0) as steps,
    coalesce(pr.requested, 0) as requested, coalesce(pr.last_step, 0) as last_step,
    coalesce(pp.steps, 0) as prompt_steps,
    coalesce(v.passed, 0) as passed, coalesce(v.failed, 0) as failed,
    {allowance} as allowance, ({under_cost_cap}) as under_cost_cap,
    ({satisfied}) as satisfied,
    ({within_budget}) as within_budget,
    ({incomplete}) as incomplete
from prompts
left join arm_progress pr on pr.prompt_id = prompts.id and pr.arm = :arm
left join progress pp on pp.prompt_id = prompts.id
{verdicts}
{allowances}
"""
ARM_VERDICTS_SQL = (
    "left join arm_verdicts v on v.prompt_id = prompts.id and v.arm = :arm "
    "and v.verifier = :verifier")
POOLED_VERDICTS_SQL = "left join verdicts v on v.prompt_id = prompts.id and v.verifier = :verifier"


@dataclass(frozen=True)
class Target:
    "A parsed --target: its kind and number."

    kind: str
    k: int | None = None

    @property
    def label(self):
        return f"{self.kind}:{self.k}" if self.kind in ("multi-sft", "best-of-n") and self.k else self.kind

    def needs_verifier(self):
        "True when the target is about passes and fails."
        return self.kind in ("sft", "dpo", "multi-sft")


def parse_target(text, max_rollouts=SAMPLING.max_rollouts) -> Target:
    "Parse 'sft', 'dpo', 'multi-sft:K', 'best-of-n[:N]' or 'none'."
    match = re.fullmatch(r"(sft|dpo|multi-sft|best-of-n|none)(?::(\d+))?", (text or "").strip())
    if not match:
        raise ConfigError(
            f"Unknown target {text!r}: use sft, dpo, multi-sft:K, best-of-n[:N] or none"
        )
    kind, number = match.group(1), match.group(2)
    k: int | None
    if kind == "multi-sft":
        if number is None:
            raise ConfigError("multi-sft needs a number of passes: multi-sft:K, e.g. multi-sft:4")
        k = int(number)
    elif kind == "best-of-n":
        k = int(number) if number else max_rollouts
    elif number is not None:
        raise ConfigError(f"Target {kind} takes no number (got {text!r})")
    else:
        k = 1 if kind == "sft" else None
    if k is not None and k < 1:
        raise ConfigError(f"Target {text!r}: the number must be at least 1")
    target = Target(kind, k)
    check_reachable(target, max_rollouts)
    return target


def rollouts_needed(target) -> int:
    "The fewest valid rollouts that can satisfy target (0 for none)."
    if target.kind == "dpo":
        return 2  # a pass and a fail are two rollouts
    if target.kind == "none":
        return 0
    return target.k


def check_reachable(target, max_rollouts, max_steps=None, step_size=None):
    """Refuse a target that no prompt could ever meet within its budget, so a
    run that cannot produce what it was asked for spends nothing.

    The budget a prompt can draw is max_rollouts, and at most max_steps steps
    of step_size rollouts each."""
    needed = rollouts_needed(target)
    if needed > max_rollouts:
        raise ConfigError(
            f"Target {target.label} needs at least {needed} rollouts per prompt but "
            f"--max-rollouts is {max_rollouts}: it could never be met; "
            f"raise --max-rollouts to {needed} or more"
        )
    if max_steps is not None and step_size is not None and needed > max_steps * step_size:
        raise ConfigError(
            f"Target {target.label} needs at least {needed} rollouts per prompt but "
            f"--max-steps {max_steps} x --step-size {step_size} allows only "
            f"{max_steps * step_size}: it could never be met; raise either"
        )


BUDGETS = ("uniform", "proportional")


def prompt_state_sql(target, where=None, limit=None, dedupe=False, pool=False,
                     budget=SAMPLING.budget, cost_cap=False):
    """SQL for the state of prompts (satisfied, within_budget) under a target,
    for the arm :arm.

    where is the user's own SQL on the prompts table (as with `--where`); limit
    restricts the run to the first N prompts (in load order) that match it;
    dedupe counts identical passing completions (after whitespace
    normalisation) once; pool counts the target over every arm's rollouts
    (the budget is always the arm's own). budget "proportional" reads each
    prompt's allowance (needs :step_size); cost_cap ends a prompt's budget at
    :max_cost_per_prompt.
    """
    satisfied = SATISFIED_SQL[target.kind].replace("t.valid", "pp.valid" if pool else "pr.valid")
    if dedupe:
        satisfied = satisfied.replace("v.passed", "v.distinct_passed")
    allowance = PROPORTIONAL_ALLOWANCE_SQL if budget == "proportional" else UNIFORM_ALLOWANCE_SQL
    within = WITHIN_BUDGET_SQL.strip().format(allowance=allowance)
    if cost_cap:
        within += " and " + UNDER_COST_CAP_SQL
    sql = PROMPT_STATE_SQL.format(
        satisfied=satisfied, within_budget=within, allowance=allowance,
        under_cost_cap=UNDER_COST_CAP_SQL if cost_cap else "1",
        incomplete=INCOMPLETE_STEP_SQL.format(allowance=allowance),
        verdicts=POOLED_VERDICTS_SQL if pool else ARM_VERDICTS_SQL,
        allowances=ALLOWANCES_JOIN_SQL if budget == "proportional" else "",
    )
    filters = []
    if where:
        filters.append(f"({where})")
    if limit is not None:
        inner = f"select rowid from prompts {'where ' + where if where else ''} order by rowid limit :limit"
        filters.append(f"prompts.rowid in ({inner})")
    if filters:
        sql += "where " + " and ".join(filters) + "\n"
    return sql


def states_sql(target, where=None, limit=None, dedupe=False, pool=False, **budget):
    """SQL: prompt_state_sql() with the needs_sampling and state columns (this
    module's one rule for each)."""
    return (f"select *, ({NEEDS_SAMPLING_SQL}) as needs_sampling, {STATE_SQL} as state from ("
            + prompt_state_sql(target, where, limit, dedupe, pool, **budget) + ")")


def pending_sql(target, where=None, limit=None, dedupe=False, pool=False, **budget):
    "SQL: the next page of prompts that still need sampling, after rowid :after."
    return (
        "select * from (" + states_sql(target, where, limit, dedupe, pool, **budget) + ")"
        " where needs_sampling and rowid > :after order by rowid limit :page"
    )


@dataclass(frozen=True)
class Step:
    "What a prompt's next step asks for: its number, rollouts, and the step's size."

    number: int
    count: int
    requested: int


def next_step(state: Mapping[str, Any], max_rollouts: int, step_size: int) -> Step | None:
    """The next step of a prompt's arm in this state (its rollouts, requested,
    last_step, and the prompt's steps over all arms), or None when the arm's
    budget has no room. A step cut short (rollouts < requested) is completed
    under its own number; otherwise a new step, numbered after every step the
    prompt has, asks for up to step_size rollouts, never past max_rollouts."""
    rollouts, requested = state["rollouts"], state["requested"]
    if "allowance" in state.keys():
        max_rollouts = state["allowance"]  # the prompt's own under --budget proportional
    room = max_rollouts - rollouts
    if room <= 0:
        return None
    if rollouts < requested:
        return Step(state["last_step"], min(requested - rollouts, room), requested)
    count = min(step_size, room)
    return Step(state["prompt_steps"] + 1, count, count)


def state_params(target, verifier, max_rollouts, max_steps, limit=None, arm=DEFAULT_ARM,
                 step_size=SAMPLING.step_size, max_cost_per_prompt=None):
    "The named parameters the SQL above needs."
    params = {
        "arm": arm,
        "verifier": verifier,
        "k": target.k,
        "max_rollouts": max_rollouts,
        "max_steps": max_steps,
        "step_size": step_size,
        "max_cost_per_prompt": max_cost_per_prompt,
    }
    if limit is not None:
        params["limit"] = limit
    return params


# The most rollouts a prompt that still needs sampling may yet draw: what its
# caps leave (a step cut short, then max_steps steps of :step_size), or only
# the rest of a cut-short step once it is satisfied.
BUDGET_LEFT_SQL = """
select coalesce(sum(case
    when satisfied then max(requested - rollouts, 0)
    else max(min(:max_rollouts - rollouts,
                 max(requested - rollouts, 0) + max(:max_steps - steps, 0) * :step_size), 0)
    end), 0)
from ({states}) where needs_sampling
"""


def budget_left_sql(target, where=None, limit=None, dedupe=False, pool=False, **budget):
    "SQL: how many rollouts the prompts a run selects may still draw (needs :step_size too)."
    return BUDGET_LEFT_SQL.format(states=states_sql(target, where, limit, dedupe, pool, **budget))


# -- --budget proportional ----------------------------------------------------

UPSERT_ALLOWANCE_SQL = """
insert into allowances (prompt_id, arm, rollouts) values (:prompt_id, :arm, :rollouts)
on conflict (prompt_id, arm) do update set rollouts = excluded.rollouts
"""


def difficulty(passed: int, failed: int) -> float:
    """A prompt's estimated difficulty: 1 minus its pass rate, smoothed so
    that a prompt with few verdicts sits near the middle (Laplace's rule)."""
    return 1.0 - (passed + 1) / (passed + failed + 2)


def hopeless(state: Mapping[str, Any], rule: int | None) -> bool:
    "True when the user's rule (no pass in `rule` rollouts) gives up on this prompt."
    return rule is not None and state["passed"] == 0 and state["rollouts"] >= rule


def allocate(states: list, total: int, step_size: int, max_steps: int,
             rule: int | None = None) -> dict[str, int]:
    """One round of --budget proportional: {prompt id: its new allowance}.

    states are the rows of every prompt the run selects (states_sql); total
    is the whole budget (max_rollouts x prompts). What is left of it goes to
    the prompts that still need sampling and have steps left (and are under
    the per-prompt cost cap, if any), each asking up
    to step_size more in proportion to its difficulty (at least one); when
    they ask for more than is left, each gets its share of what is left
    (rounded down, the remainder to the hardest). Allowances never add up to
    more than total."""
    used = sum(max(row["rollouts"], row["requested"]) for row in states)
    left = total - used
    eligible = [row for row in states
                if not row["satisfied"] and row["steps"] < max_steps and row["under_cost_cap"]
                and not hopeless(row, rule)]
    if left <= 0 or not eligible:
        return {}
    hardness = {row["id"]: difficulty(row["passed"], row["failed"]) for row in eligible}
    hardest = max(hardness.values())
    want = {key: max(1, round(step_size * d / hardest)) for key, d in hardness.items()}
    asked = sum(want.values())
    if asked > left:
        shares = {key: left * w / asked for key, w in want.items()}
        want = {key: int(share) for key, share in shares.items()}
        rest = left - sum(want.values())
        for key in sorted(want, key=lambda k: (-hardness[k], -(shares[k] - want[k]), k))[:rest]:
            want[key] += 1
    by_id = {row["id"]: row for row in eligible}
    return {key: max(by_id[key]["rollouts"], by_id[key]["requested"]) + w
            for key, w in want.items() if w > 0}


def reallocate(db, states_query: str, params: Mapping[str, Any], total: int, step_size: int,
               max_steps: int, rule: int | None = None) -> int:
    """Run a round of allocate() over the ledger (states_query: states_sql()
    with its params) and store the allowances; returns the rollouts granted."""
    states = list(db.query(states_query, dict(params)))
    allowances = allocate(states, total, step_size, max_steps, rule)
    if not allowances:
        return 0
    rows = {row["id"]: row for row in states}
    with db.atomic():
        for prompt_id, rollouts in allowances.items():
            db.execute(UPSERT_ALLOWANCE_SQL, {"prompt_id": prompt_id, "arm": params["arm"],
                                              "rollouts": rollouts})
    return sum(n - max(rows[k]["rollouts"], rows[k]["requested"]) for k, n in allowances.items())

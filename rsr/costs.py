"""What sampling costs: prices per arm, the cost of what a ledger holds, and
the meter that stops a run at a cost cap.

Cost is never estimated: it is the engine's token counts (rollouts'
prompt_tokens and completion_tokens) times the prices a run records for its
arm in the `prices` table, plus, for a self-hosted engine, a price per
GPU-hour times the run's time. A request with n > 1 pays its prompt once
(rollouts.first_of_request). The SQL lives in schema.sql (rollout_costs,
run_costs); this module records prices, reads totals and keeps a running
count for the caps while a run samples.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional

from .errors import ConfigError
from .runs import utcnow

UPSERT_PRICES_SQL = """
insert into prices (arm, per_million_in, per_million_out, per_gpu_hour, run_id, updated_at)
values (:arm, :per_million_in, :per_million_out, :per_gpu_hour, :run_id, :updated_at)
on conflict (arm) do update set
    per_million_in = excluded.per_million_in, per_million_out = excluded.per_million_out,
    per_gpu_hour = excluded.per_gpu_hour, run_id = excluded.run_id,
    updated_at = excluded.updated_at
"""

PRICES_SQL = "select per_million_in, per_million_out, per_gpu_hour from prices where arm = :arm"

# The ledger's whole spend so far: every arm, every run.
SPENT_SQL = "select coalesce(sum(cost), 0) from rollout_costs"

# A prices file's keys per entry, and the Prices field each sets.
FILE_KEYS = {"in": "per_million_in", "out": "per_million_out", "gpu_hour": "per_gpu_hour"}


@dataclass(frozen=True)
class Prices:
    "An arm's prices: currency per million input and output tokens, and per GPU-hour."

    per_million_in: float = 0.0
    per_million_out: float = 0.0
    per_gpu_hour: float = 0.0

    def tokens(self, prompt_tokens: int, completion_tokens: int) -> float:
        "The cost of these tokens (prompt tokens as charged: once per request)."
        return (prompt_tokens * self.per_million_in + completion_tokens * self.per_million_out) / 1e6


def load_prices_file(path: str) -> dict[str, Prices]:
    """{arm or model name: Prices} from a YAML or JSON file such as

        Qwen/Qwen3-8B: {in: 0.05, out: 0.25}
        local-vllm: {gpu_hour: 2.5}
    """
    file = Path(path)
    try:
        text = file.read_text()
    except OSError as ex:
        raise ConfigError(f"Cannot read the prices file {path}: {ex.strerror}") from None
    try:
        if file.suffix == ".json":
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except ValueError as ex:  # json.JSONDecodeError and yaml.YAMLError's parse errors
        raise ConfigError(f"{path}: not valid {file.suffix.lstrip('.') or 'YAML'}: {ex}") from None
    except Exception as ex:  # yaml.YAMLError does not derive from ValueError
        if type(ex).__module__.startswith("yaml"):
            raise ConfigError(f"{path}: not valid YAML: {ex}") from None
        raise
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a prices file maps arm or model names to "
                          "{in: ..., out: ..., gpu_hour: ...}")
    return {str(name): _entry(path, str(name), entry) for name, entry in data.items()}


def _entry(path: str, name: str, entry: Any) -> Prices:
    if not isinstance(entry, dict):
        raise ConfigError(f"{path}: {name}: expected a mapping such as {{in: 0.1, out: 0.4}}")
    unknown = set(entry) - set(FILE_KEYS)
    if unknown:
        raise ConfigError(f"{path}: {name}: unknown key(s) {', '.join(sorted(map(str, unknown)))}; "
                          "use in, out, gpu_hour")
    values = {}
    for key, field_name in FILE_KEYS.items():
        value = entry.get(key, 0)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise ConfigError(f"{path}: {name}.{key}: a price must be a number >= 0 (got {value!r})")
        values[field_name] = float(value)
    return Prices(**values)


def configured_prices(sampling: Mapping[str, Any], arm: str, model: Optional[str]) -> Optional[Prices]:
    """The prices a run's sampling section sets for its arm: a prices file's
    entry for the arm (else the model), with --price-in/--price-out/
    --price-gpu-hour over it; None when nothing sets a price."""
    base = None
    if sampling.get("prices"):
        table = load_prices_file(sampling["prices"])
        base = table.get(arm) or (table.get(model) if model else None)
    flags = {"per_million_in": sampling.get("price_in"), "per_million_out": sampling.get("price_out"),
             "per_gpu_hour": sampling.get("price_gpu_hour")}
    for key, value in flags.items():
        if value is not None and value < 0:
            raise ConfigError(f"--{key.replace('per_million_', 'price-').replace('per_gpu_hour', 'price-gpu-hour')}"
                              f" must be >= 0 (got {value})")
    if base is None and all(v is None for v in flags.values()):
        return None
    base = base or Prices()
    return Prices(**{key: (value if value is not None else getattr(base, key))
                     for key, value in flags.items()})


def record_prices(db, arm: str, prices: Prices, run_id: Optional[int]) -> None:
    "Store an arm's prices (the latest run that sets them wins)."
    with db.atomic():
        db.execute(UPSERT_PRICES_SQL, {"arm": arm, "run_id": run_id, "updated_at": utcnow(),
                                       **prices.__dict__})


def stored_prices(db, arm: str) -> Prices:
    "The prices the ledger holds for an arm (zeros when none were recorded)."
    row = db.execute(PRICES_SQL, {"arm": arm}).fetchone()
    return Prices(*row) if row else Prices()


def spent(db) -> float:
    "What the ledger's rollouts have cost so far, every arm and run (schema.sql's rollout_costs)."
    return float(db.execute(SPENT_SQL).fetchone()[0])


class CostMeter:
    """A run's running spend for --max-cost: what the ledger had spent when the
    run began, plus the tokens of each reply as it arrives and the run's time
    at the arm's GPU-hour price. It counts as rollout_costs does (a request's
    prompt once), so the ledger's total afterwards equals its reading."""

    def __init__(self, base: float, prices: Prices, max_cost: Optional[float]) -> None:
        self.base = base
        self.prices = prices
        self.max_cost = max_cost
        self.tokens_cost = 0.0
        self.started = time.monotonic()

    def add(self, completions: list) -> None:
        "Count one request's completions (the first pays the prompt)."
        prompt = completions[0].prompt_tokens or 0 if completions else 0
        completion = sum(c.completion_tokens or 0 for c in completions)
        self.tokens_cost += self.prices.tokens(prompt, completion)

    @property
    def total(self) -> float:
        hours = (time.monotonic() - self.started) / 3600
        return self.base + self.tokens_cost + hours * self.prices.per_gpu_hour

    def reached(self) -> bool:
        "True once the cap (if any) is reached."
        return self.max_cost is not None and self.total >= self.max_cost


# -- rsr stats ----------------------------------------------------------------

COST_TOTALS_SQL = """
select coalesce(sum(cost), 0) as total, coalesce(sum(token_cost), 0) as tokens,
       coalesce(sum(gpu_cost), 0) as gpu, count(distinct prompt_id) as prompts,
       coalesce(sum(charged_prompt_tokens), 0) as prompt_tokens,
       coalesce(sum(completion_tokens), 0) as completion_tokens
from rollout_costs
"""

# Passing rollouts (valid, passed by the verifier) and the rows the target's
# export format writes by default: one per prompt with a pass (sft), up to K
# per prompt (multi-sft:K), one pair per prompt with a pass and a fail (dpo),
# one per prompt with valid rollouts (best-of-n).
YIELD_SQL = """
select coalesce(sum(v.passed), 0) as passing,
       coalesce(sum(case :kind
           when 'sft' then v.passed >= 1
           when 'multi-sft' then min(v.passed, :k)
           when 'dpo' then v.passed >= 1 and v.failed >= 1
           else 0 end), 0) as exported
from verdicts v where v.verifier = :verifier
"""
BEST_OF_N_ROWS_SQL = "select count(*) from progress where valid > 0"

COST_BY_ARM_SQL = """
select c.arm as value, count(distinct c.prompt_id) as prompts, sum(c.cost) as cost,
       (select count(*) from scores s join rollouts r on r.id = s.rollout_id
        where r.arm = c.arm and s.verifier = :verifier and s.passed = 1 and r.valid) as passing
from rollout_costs c group by c.arm order by c.arm
"""

COST_BY_FIELD_SQL = """
with spend as (
    select json_extract(p.metadata, :path) as value, count(distinct c.prompt_id) as prompts,
           sum(c.cost) as cost
    from rollout_costs c join prompts p on p.id = c.prompt_id group by 1),
passes as (
    select json_extract(p.metadata, :path) as value, sum(v.passed) as passing
    from verdicts v join prompts p on p.id = v.prompt_id where v.verifier = :verifier group by 1)
select spend.value, spend.prompts, spend.cost, coalesce(passes.passing, 0) as passing
from spend left join passes on passes.value is spend.value order by spend.value
"""


# Each cascade's stages as they ran: calls, decisions and the tokens a
# stage's server reported (a judge's usage), from the scores' details.
CASCADE_STAGES_SQL = """
select s.verifier, cast(st.key as integer) as position,
       json_extract(st.value, '$.verifier') as stage, count(*) as calls,
       sum(json_extract(s.details, '$.decided_by') is json_extract(st.value, '$.verifier'))
           as decided,
       coalesce(sum(json_extract(st.value, '$.usage.prompt_tokens')), 0) as prompt_tokens,
       coalesce(sum(json_extract(st.value, '$.usage.completion_tokens')), 0) as completion_tokens
from scores s, json_each(s.details, '$.stages') st
where s.verifier like 'cascade:%' and json_valid(s.details)
group by 1, 2, 3 order by 1, 2
"""


def cascade_stats(db) -> dict[str, list[dict[str, Any]]]:
    "{cascade name: [{verifier, calls, decided, prompt_tokens, completion_tokens}] per stage}."
    out: dict[str, list[dict[str, Any]]] = {}
    for row in db.query(CASCADE_STAGES_SQL):
        out.setdefault(row["verifier"], []).append(
            {"verifier": row["stage"], "calls": row["calls"], "decided": row["decided"],
             "prompt_tokens": row["prompt_tokens"], "completion_tokens": row["completion_tokens"]})
    return out


def _per(total: float, count: int) -> Optional[float]:
    return round(total / count, 8) if count else None


def cost_stats(db, verifier: Optional[str], kind: str, k: Optional[int],
               by: Optional[str] = None) -> dict[str, Any]:
    """The ledger's cost in total, per sampled prompt, per passing rollout and
    per exported row, and by arm or by a metadata field (`by`)."""
    totals = dict(next(db.query(COST_TOTALS_SQL)))
    params = {"verifier": verifier or "", "kind": kind, "k": k or 1}
    yields = dict(next(db.query(YIELD_SQL, params)))
    if kind == "best-of-n":
        yields["exported"] = db.execute(BEST_OF_N_ROWS_SQL).fetchone()[0]
    total = totals["total"]
    out: dict[str, Any] = {
        "total": round(total, 8), "tokens": round(totals["tokens"], 8),
        "gpu": round(totals["gpu"], 8),
        "charged_prompt_tokens": totals["prompt_tokens"],
        "completion_tokens": totals["completion_tokens"],
        "per_prompt": _per(total, totals["prompts"]),
        "passing_rollouts": yields["passing"],
        "per_passing_rollout": _per(total, yields["passing"]),
        "exported_rows": yields["exported"],
        "per_exported_row": _per(total, yields["exported"]),
        "priced_arms": [row[0] for row in db.execute("select arm from prices order by arm")],
    }
    cascades = cascade_stats(db)
    if cascades:
        out["cascades"] = cascades
    if by is not None:
        sql, extra = ((COST_BY_ARM_SQL, {}) if by == "arm"
                      else (COST_BY_FIELD_SQL, {"path": "$." + json.dumps(by)}))
        out["by"] = {"field": by, "values": [
            {**row, "cost": round(row["cost"] or 0, 8),
             "per_passing_rollout": _per(row["cost"] or 0, row["passing"])}
            for row in db.query(sql, {**params, **extra})]}
    return out


def format_cost(cost: Mapping[str, Any]) -> list[str]:
    "The cost lines of rsr stats' text."

    def money(value):
        return "-" if value is None else f"{value:,.6g}"

    if not cost["priced_arms"]:
        lines = ["Cost: no prices recorded (rsr sample --price-in/--price-out/--price-gpu-hour)"]
    else:
        lines = [f"Cost: {money(cost['total'])} in total ({money(cost['tokens'])} tokens, "
                 f"{money(cost['gpu'])} GPU time); per prompt {money(cost['per_prompt'])}, per "
                 f"passing rollout {money(cost['per_passing_rollout'])}, per exported row "
                 f"{money(cost['per_exported_row'])} ({cost['exported_rows']:,} rows)"]
        for row in cost.get("by", {}).get("values", []):
            lines.append(f"  {cost['by']['field']}={row['value']}: {money(row['cost'])} "
                         f"({row['prompts']:,} prompts, {money(row['per_passing_rollout'])} "
                         "per passing rollout)")
    for name, stages in cost.get("cascades", {}).items():
        lines.append(f"Cascade {name}: " + ", ".join(
            f"{s['verifier']} {s['calls']:,} calls ({s['decided']:,} decided"
            + (f", {s['prompt_tokens'] + s['completion_tokens']:,} tokens"
               if s["prompt_tokens"] or s["completion_tokens"] else "") + ")" for s in stages))
    return lines

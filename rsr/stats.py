"""The numbers a researcher needs to decide the next run, from the ledger.

Everything is read from the counter tables (`progress`, `verdicts`) or from a
single grouped pass over rollouts, so a ledger of a million rollouts answers
in seconds. The sections:

- prompts: total, satisfied (the sampling target is met), exhausted (not
  met, budget spent: max_rollouts rollouts or max_steps steps) and pending,
  judged by the rules `rsr sample` stops by (rsr/early_stop.py)
- pass rate overall and by a metadata field; the per-prompt pass-rate
  distribution in buckets 0, (0, .25], (.25, .5], (.5, .75], (.75, 1), 1
- pass@k for k = 1, 2, 4, ... with the unbiased estimator of Chen et al.
  (2021), 1 - C(n-c, k) / C(n, k) averaged over the prompts with n >= k draws.
  A draw is a rollout the model finished: valid rollouts with a verdict count,
  a truncated rollout or an empty answer counts as a failed draw, an errored
  request or an undecided score is not a draw.
- completion tokens per rollout (p50/p90/p99/max, nearest rank), passed vs
  failed; truncation, error and empty-answer rates
- draws spent against the budget without early stop (prompts x max_rollouts)
- time, rollouts and completion tokens per second for each run that sampled

The target and budget are the options given, else those of the latest
`rsr sample` or `rsr run` in `runs`, else sample's defaults (sft, 16, 8).
"""

import json
import math
from pathlib import Path

from . import costs, early_stop
from .config import SAMPLING
from .errors import ConfigError
from .labels import label_stats
from .selection import VERIFIERS_SQL

# What a ledger without a sampling run is read with: sample's own defaults.
DEFAULTS = {key: getattr(SAMPLING, key)
            for key in ("target", "max_rollouts", "max_steps", "dedupe", "arm", "pool")}

# Runs that sampled, newest first: their configuration has the target and budget
# (under "sampling" for rsr sample, rsr run and a batch round's export).
SAMPLE_CONFIGS_SQL = """
select config from runs
where command in ('sample', 'run')
   or (command = 'export' and json_extract(config, '$.format') = 'batch-requests')
order by id desc
"""

# A prompt's state (satisfied, pending, exhausted) comes from early_stop, the
# one place that rule lives.
PROMPT_STATES_SQL = """
select
    count(*) as total,
    coalesce(sum(state = 'satisfied'), 0) as satisfied,
    coalesce(sum(state = 'exhausted'), 0) as exhausted,
    coalesce(sum(case when state = 'satisfied'
                      then max(:max_rollouts - rollouts, 0) end), 0) as saved,
    coalesce(sum(case when state = 'pending'
                      then max(:max_rollouts - rollouts, 0) end), 0) as unspent_pending
from ({states})
"""

# Each prompt's state, by the same rules PROMPT_STATES_SQL counts with (for
# `rsr browse`, which shows it beside a prompt).
EACH_PROMPT_STATE_SQL = """
select id,
    case when satisfied and not incomplete then 'satisfied'
         when not satisfied and not within_budget and not incomplete then 'exhausted'
         else 'pending' end as state
from ({states})
"""
PROMPT_IDS_WHERE = "prompts.id in (select value from json_each(:prompt_ids))"

# The latest run that sampled: whether it finished.
LAST_SAMPLE_RUN_SQL = """
select id, command, status from runs where command in ('sample', 'run')
order by id desc limit 1
"""

# Does any prompt's metadata have this field (JSON null counts as having it)?
FIELD_PRESENT_SQL = "select 1 from prompts where json_type(metadata, :path) is not null limit 1"
FIELD_NAMES_SQL = """
select distinct key from prompts, json_each(prompts.metadata)
where json_valid(prompts.metadata) order by key limit 30
"""

TOTALS_SQL = """
select coalesce(sum(rollouts), 0) as draws_spent, coalesce(sum(valid), 0) as valid,
       coalesce(sum(truncated), 0) as truncated, coalesce(sum(errored), 0) as errored,
       coalesce(sum(empty), 0) as empty
from progress
"""

PASS_RATE_SQL = """
select coalesce(sum(passed), 0) as passed, coalesce(sum(failed), 0) as failed,
       coalesce(sum(unparsed), 0) as undecided
from verdicts where verifier = :verifier
"""

BY_FIELD_SQL = """
select json_extract(prompts.metadata, :path) as value, count(*) as prompts,
       coalesce(sum(v.passed), 0) as passed, coalesce(sum(v.failed), 0) as failed
from prompts left join verdicts v on v.prompt_id = prompts.id and v.verifier = :verifier
group by 1 order by 1
"""

# --by arm: each arm's rollouts and verdicts (passes and fails of valid rollouts).
BY_ARM_SQL = """
select r.arm as value, count(distinct r.prompt_id) as prompts, count(*) as rollouts,
       coalesce(sum(r.valid), 0) as valid, coalesce(sum(r.truncated = 1), 0) as truncated,
       coalesce(sum(r.error is not null), 0) as errored,
       coalesce(sum(r.completion_tokens), 0) as completion_tokens,
       coalesce(sum(s.passed is 1), 0) as passed, coalesce(sum(s.passed is 0), 0) as failed
from rollouts r
left join scores s on s.rollout_id = r.id and s.verifier = :verifier and r.valid
group by r.arm order by r.arm
"""

# Each arm's pass rate on the prompts every arm has decided verdicts for: which
# arm is better where they can be compared.
BY_ARM_COMMON_SQL = """
with decided as (
    select prompt_id, arm, passed, failed from arm_verdicts
    where verifier = :verifier and passed + failed > 0
),
common as (
    select prompt_id from decided group by prompt_id
    having count(distinct arm) = (select count(distinct arm) from rollouts)
)
select arm as value, count(*) as prompts, sum(passed) as passed, sum(failed) as failed
from decided where prompt_id in (select prompt_id from common)
group by arm order by arm
"""

# The arm the latest sampling run drew from, by its steps.
RUN_ARM_SQL = """
select steps.arm from steps where steps.run_id = (
    select id from runs where command in ('sample', 'run') order by id desc limit 1)
limit 1
"""
ONE_ARM_SQL = "select min(arm), count(distinct arm) from rollouts"
# What the arm whose states are shown has drawn (its budget is per arm).
ARM_SPENT_SQL = "select coalesce(sum(rollouts), 0) from arm_progress where arm = :arm"

BUCKETS = ("0", "(0, 0.25]", "(0.25, 0.5]", "(0.5, 0.75]", "(0.75, 1)", "1")
BUCKETS_SQL = """
select case
        when passed + failed = 0 then 'no verdicts'
        when passed = 0 then '0'
        when failed = 0 then '1'
        when 4 * passed <= passed + failed then '(0, 0.25]'
        when 2 * passed <= passed + failed then '(0.25, 0.5]'
        when 4 * passed <= 3 * (passed + failed) then '(0.5, 0.75]'
        else '(0.75, 1)'
    end as bucket, count(*) as prompts
from (
    select coalesce(v.passed, 0) as passed, coalesce(v.failed, 0) as failed
    from prompts left join verdicts v on v.prompt_id = prompts.id and v.verifier = :verifier
)
group by bucket
"""

DRAWS_SQL = """
select coalesce(v.passed, 0) + coalesce(v.failed, 0) + coalesce(pp.truncated, 0)
       + coalesce(pp.empty, 0) as n,
       coalesce(v.passed, 0) as c, count(*) as prompts
from prompt_progress pp
left join verdicts v on v.prompt_id = pp.prompt_id and v.verifier = :verifier
group by n, c
"""

TOKENS_SQL = """
select scores.passed, rollouts.completion_tokens, count(*) as rollouts
from rollouts join scores on scores.rollout_id = rollouts.id and scores.verifier = :verifier
where rollouts.valid
  and rollouts.completion_tokens is not null and scores.passed is not null
group by scores.passed, rollouts.completion_tokens
"""

RUNS_SQL = """
select runs.id, runs.command, runs.status, runs.started_at, runs.finished_at,
       t.rollouts, t.completion_tokens, {engine_stats} as engine_stats,
       round((julianday(coalesce(runs.finished_at, t.last_at)) - julianday(runs.started_at))
             * 86400, 3) as seconds
from runs join (
    select run_id, count(*) as rollouts, coalesce(sum(completion_tokens), 0) as completion_tokens,
           max(created_at) as last_at
    from rollouts where run_id is not null group by run_id
) t on t.run_id = runs.id
order by runs.id
"""


def _runs_sql(db):
    "RUNS_SQL for this ledger: one opened read-only from before m006 has no engine_stats."
    columns = {row[1] for row in db.execute("pragma table_info(runs)")}
    return RUNS_SQL.format(engine_stats="runs.engine_stats" if "engine_stats" in columns else "null")


def _sampling_section(config):
    section = config.get("sampling") if isinstance(config.get("sampling"), dict) else config
    verifier = config.get("verifier")
    if isinstance(verifier, dict):
        verifier = verifier.get("name")
    return section, verifier if isinstance(verifier, str) else None


def sample_settings(db, target=None, max_rollouts=None, max_steps=None) -> dict:
    """The target, budget and verifier: the options given, else the latest
    sampling run's, else sample's defaults (verifier None)."""
    settings = {**DEFAULTS, "verifier": None}
    for (config,) in db.execute(SAMPLE_CONFIGS_SQL):
        section, verifier = _sampling_section(json.loads(config))
        if any(section.get(key) is not None for key in DEFAULTS):
            settings.update({k: section[k] for k in DEFAULTS if section.get(k) is not None})
            settings["verifier"] = verifier
            break
    given = {"target": target, "max_rollouts": max_rollouts, "max_steps": max_steps}
    settings.update({k: v for k, v in given.items() if v is not None})
    if settings["arm"] is None:
        settings["arm"] = run_arm(db)
    return settings


def run_arm(db) -> str:
    """The arm the latest sampling run drew from (by its steps), else the
    ledger's only arm, else the default one."""
    row = db.execute(RUN_ARM_SQL).fetchone()
    if row is not None:
        return row[0]
    name, count = db.execute(ONE_ARM_SQL).fetchone()
    return name if count == 1 else early_stop.DEFAULT_ARM


def pick_verifier(db, verifier, sampled_with=None):
    """The verifier the stats are about: the one given, the only one, the one the
    latest sampling run used, or None for a ledger without scores."""
    names = [row[0] for row in db.execute(VERIFIERS_SQL)]
    if verifier is not None:
        if verifier not in names:
            raise ConfigError(
                f"No scores from verifier {verifier!r} "
                f"(verifiers: {', '.join(names) or 'none yet'})"
            )
        return verifier
    if len(names) > 1 and sampled_with in names:
        return sampled_with
    if len(names) > 1:
        raise ConfigError(
            f"This ledger has scores from several verifiers ({', '.join(names)}); "
            "choose one with --verifier"
        )
    return names[0] if names else None


def pass_at_k(n, c, k) -> float:
    "Unbiased pass@k for n draws with c passes: 1 - C(n-c, k) / C(n, k)."
    if n - c < k:
        return 1.0
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))


def percentiles(histogram) -> dict:
    "p50/p90/p99/max (nearest rank) and count from {value: count}."
    total = sum(histogram.values())
    if not total:
        return {"count": 0, "p50": None, "p90": None, "p99": None, "max": None}
    values = sorted(histogram)
    out = {"count": total}
    for name, p in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99)):
        rank, seen = max(1, math.ceil(p * total)), 0
        for value in values:
            seen += histogram[value]
            if seen >= rank:
                out[name] = value
                break
    out["max"] = values[-1]
    return out


def _rate(part, whole):
    return round(part / whole, 4) if whole else None


def ledger_stats(
    db, verifier=None, by=None, target=None, max_rollouts=None, max_steps=None, histograms=None
):
    """Every statistic as one JSON-ready dict.

    histograms, if given a dict, receives {"passed"|"failed": {tokens: rollouts}}
    for plotting.
    """
    settings = sample_settings(db, target, max_rollouts, max_steps)
    parsed = early_stop.parse_target(settings["target"], settings["max_rollouts"])
    verifier = pick_verifier(db, verifier, settings.pop("verifier"))
    params = early_stop.state_params(
        parsed, verifier, settings["max_rollouts"], settings["max_steps"], arm=settings["arm"]
    )
    states = early_stop.states_sql(parsed, dedupe=settings["dedupe"], pool=settings["pool"])
    counts = dict(next(db.query(PROMPT_STATES_SQL.format(states=states), params)))
    counts.update(next(db.query(TOTALS_SQL)))
    total, spent = counts["total"], counts["draws_spent"]
    out = {"verifier": verifier, **settings, "target": parsed.label}
    out["prompts"] = {
        "total": total,
        "satisfied": counts["satisfied"],
        "exhausted": counts["exhausted"],
        "pending": total - counts["satisfied"] - counts["exhausted"],
    }
    verdicts = dict(next(db.query(PASS_RATE_SQL, params)))
    out["pass_rate"] = {
        **verdicts,
        "rate": _rate(verdicts["passed"], verdicts["passed"] + verdicts["failed"]),
    }
    if by == "arm":
        out["pass_rate_by"] = by_arm(db, params)
    elif by:
        _check_field(db, by)
        out["pass_rate_by"] = {
            "field": by,
            "values": [
                {**row, "rate": _rate(row["passed"], row["passed"] + row["failed"])}
                for row in db.query(BY_FIELD_SQL, {**params, "path": "$." + json.dumps(by)})
            ],
        }
    buckets = {row["bucket"]: row["prompts"] for row in db.query(BUCKETS_SQL, params)}
    out["pass_rate_buckets"] = {b: buckets.get(b, 0) for b in BUCKETS + ("no verdicts",)}
    out["pass_at_k"] = _pass_at_k(list(db.query(DRAWS_SQL, params)))
    out["completion_tokens"] = _tokens(db, params, histograms if histograms is not None else {})
    out["rollouts"] = {
        "total": spent,
        "valid": counts["valid"],
        "truncated": counts["truncated"],
        "errored": counts["errored"],
        "empty": counts["empty"],
        "truncation_rate": _rate(counts["truncated"], spent),
        "error_rate": _rate(counts["errored"], spent),
        "empty_rate": _rate(counts["empty"], spent),
    }
    budget = total * settings["max_rollouts"]
    arm_spent = db.execute(ARM_SPENT_SQL, params).fetchone()[0]
    # Saved is what satisfied prompts did not need. A pending prompt's unspent
    # budget is not saved: the run may still spend it.
    out["arms"] = db.execute("select count(distinct arm) from arm_progress").fetchone()[0]
    out["draws"] = {
        "spent": arm_spent,
        "budget_without_early_stop": budget,
        "saved": counts["saved"],
        "saved_fraction": _rate(counts["saved"], budget),
        "unspent_pending": counts["unspent_pending"],
    }
    out["cost"] = costs.cost_stats(db, verifier, parsed.kind, parsed.k, by)
    labels = label_stats(db)
    if labels is not None:
        out["labels"] = labels
    last = db.execute(LAST_SAMPLE_RUN_SQL).fetchone()
    out["last_sample_run"] = (
        {"id": last[0], "command": last[1], "status": last[2]} if last else None
    )
    out["finished"] = out["prompts"]["pending"] == 0 and (last is None or last[2] == "finished")
    out["runs"] = [
        {
            **run,
            "engine_stats": json.loads(run["engine_stats"]) if run["engine_stats"] else None,
            "tokens_per_second": (
                round(run["completion_tokens"] / run["seconds"], 2) if run["seconds"] else None
            ),
        }
        for run in db.query(_runs_sql(db))
    ]
    return out


def by_arm(db, params) -> dict:
    """Per arm: prompts, rollouts, valid, truncated, errored, tokens, passes and
    fails, and the pass rate on the prompts every arm has verdicts for."""
    common = {row["value"]: row for row in db.query(BY_ARM_COMMON_SQL, params)}
    values = []
    for row in db.query(BY_ARM_SQL, params):
        shared = common.get(row["value"])
        values.append({
            **row,
            "rate": _rate(row["passed"], row["passed"] + row["failed"]),
            "truncation_rate": _rate(row["truncated"], row["rollouts"]),
            "common_prompts": shared["prompts"] if shared else 0,
            "common_rate": (_rate(shared["passed"], shared["passed"] + shared["failed"])
                            if shared else None),
        })
    return {"field": "arm", "values": values}


def prompt_states(db, prompt_ids, verifier=None) -> dict:
    """{prompt id: "satisfied" | "exhausted" | "pending"} under the target and
    budget ledger_stats uses (the latest sampling run's, else the defaults)."""
    settings = sample_settings(db)
    parsed = early_stop.parse_target(settings["target"], settings["max_rollouts"])
    verifier = pick_verifier(db, verifier, settings["verifier"])
    params = early_stop.state_params(
        parsed, verifier, settings["max_rollouts"], settings["max_steps"], arm=settings["arm"]
    )
    states = early_stop.prompt_state_sql(parsed, where=PROMPT_IDS_WHERE, dedupe=settings["dedupe"],
                                         pool=settings["pool"])
    params["prompt_ids"] = json.dumps(list(prompt_ids))
    rows = db.query(EACH_PROMPT_STATE_SQL.format(states=states), params)
    return {row["id"]: row["state"] for row in rows}


def _check_field(db, field):
    "Refuse a --by field that no prompt's metadata has, naming the fields there are."
    path = "$." + json.dumps(field)
    if db.execute(FIELD_PRESENT_SQL, {"path": path}).fetchone():
        return
    names = [row[0] for row in db.execute(FIELD_NAMES_SQL)]
    raise ConfigError(
        f"--by {field!r}: no prompt's metadata has that field "
        f"(fields: {', '.join(names) if names else 'none'})"
    )


def _pass_at_k(groups):
    max_n = max((g["n"] for g in groups), default=0)
    out, k = [], 1
    while k <= max_n:
        used = [g for g in groups if g["n"] >= k]
        prompts = sum(g["prompts"] for g in used)
        value = sum(pass_at_k(g["n"], g["c"], k) * g["prompts"] for g in used) / prompts
        out.append({"k": k, "pass_at_k": round(value, 4), "prompts": prompts})
        k *= 2
    return out


def _tokens(db, params, histograms):
    histograms.update({"passed": {}, "failed": {}})
    if params["verifier"] is not None:
        for row in db.query(TOKENS_SQL, params):
            key = "passed" if row["passed"] else "failed"
            histograms[key][row["completion_tokens"]] = row["rollouts"]
    return {key: percentiles(h) for key, h in histograms.items()}


def format_text(stats) -> str:
    "The stats as a few readable lines."
    p, pr, r, d = stats["prompts"], stats["pass_rate"], stats["rollouts"], stats["draws"]
    lines = [
        f"Target {stats['target']} (max_rollouts {stats['max_rollouts']}, max_steps "
        f"{stats['max_steps']}), verifier {stats['verifier'] or 'none (no scores yet)'}",
        f"Prompts: {p['total']:,} total, {p['satisfied']:,} satisfied, {p['exhausted']:,} "
        f"exhausted, {p['pending']:,} pending",
        f"Pass rate: {_pct(pr['rate'])} ({pr['passed']:,} passed, {pr['failed']:,} failed, "
        f"{pr['undecided']:,} undecided)",
        "Per-prompt pass rates: "
        + ", ".join(f"{b}: {n:,}" for b, n in stats["pass_rate_buckets"].items()),
        "pass@k: "
        + (", ".join(f"@{x['k']} {x['pass_at_k']:.3f}" for x in stats["pass_at_k"]) or "no draws"),
    ]
    for row in stats.get("pass_rate_by", {}).get("values", []):
        line = (f"  {stats['pass_rate_by']['field']}={row['value']}: {_pct(row['rate'])} "
                f"({row['prompts']:,} prompts")
        if "rollouts" in row:
            line += (f", {row['rollouts']:,} rollouts, truncated {_pct(row['truncation_rate'])}; "
                     f"on the {row['common_prompts']:,} prompts every arm has verdicts for: "
                     f"{_pct(row['common_rate'])}")
        lines.append(line + ")")
    for key, t in stats["completion_tokens"].items():
        if not t["count"]:
            lines.append(f"Tokens ({key}): no rollouts")
            continue
        lines.append(
            f"Tokens ({key}): p50 {t['p50']}, p90 {t['p90']}, p99 {t['p99']}, "
            f"max {t['max']} over {t['count']:,} rollouts"
        )
    lines.append(
        f"Rollouts: {r['total']:,}, truncated {_pct(r['truncation_rate'])}, "
        f"errored {_pct(r['error_rate'])}, empty {_pct(r['empty_rate'])}"
    )
    lines.append(
        f"Draws{' (arm ' + stats['arm'] + ')' if stats.get('arms', 0) > 1 else ''}: "
        f"{d['spent']:,} of {d['budget_without_early_stop']:,} without early "
        f"stop (saved {_pct(d['saved_fraction'])} by satisfied prompts)"
    )
    lines.extend(costs.format_cost(stats["cost"]))
    if stats.get("labels"):
        lab = stats["labels"]
        line = (f"Labels: {lab['labelled']:,} of {lab['without_gold']:,} prompts without gold "
                f"labelled by majority ({_pct(lab['coverage'])})")
        if lab["checked"]:
            line += (f"; where gold exists the majority equals it on {lab['agree']:,} of "
                     f"{lab['checked']:,} ({_pct(lab['agreement'])})")
        lines.append(line)
    unfinished = _unfinished(stats)
    if unfinished:
        lines.append(unfinished)
    for run in stats["runs"]:
        timing = (
            f"{run['seconds']} s, {run['tokens_per_second']} tokens/s"
            if run["seconds"] and run["tokens_per_second"] is not None
            else "time not recorded"
        )
        status = "" if run["status"] == "finished" else f" ({run['status']})"
        engine = run.get("engine_stats") or {}
        occupancy = (
            f"; engine occupancy {engine['occupancy']} of {engine['capacity']} sequences"
            if engine.get("occupancy") is not None else ""
        )
        lines.append(
            f"Run #{run['id']} {run['command']}{status}: {run['rollouts']:,} rollouts in {timing}"
            + occupancy
        )
    return "\n".join(lines)


def _unfinished(stats):
    "A line saying the sampling is not done, or None when it is."
    last, pending = stats.get("last_sample_run"), stats["prompts"]["pending"]
    if stats.get("finished", True):
        return None
    parts = []
    if last is not None and last["status"] != "finished":
        parts.append(f"the last sampling run (#{last['id']} {last['command']}) is {last['status']}")
    if pending:
        parts.append(
            f"{pending:,} prompts still pending, with {stats['draws']['unspent_pending']:,} "
            "draws of budget left (not counted as saved)"
        )
    return "Unfinished: " + "; ".join(parts) + "; re-run to resume"


def _pct(value):
    return "n/a" if value is None else f"{100 * value:.1f}%"


def write_plots(stats, histograms, folder):
    "Write stats.json and PNG plots (needs matplotlib: pip install 'rsr[plots]')."
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ConfigError("--plots needs matplotlib: pip install 'rsr[plots]'") from None
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "stats.json").write_text(json.dumps(stats, indent=2))
    written = [folder / "stats.json"]

    fig, ax = plt.subplots(figsize=(7, 4))
    buckets = stats["pass_rate_buckets"]
    ax.bar(list(buckets), list(buckets.values()))
    ax.set(title="Per-prompt pass rate", xlabel="pass rate", ylabel="prompts")
    ax.tick_params(axis="x", labelrotation=30)
    written.append(_save(fig, folder / "pass_rate_histogram.png"))

    fig, ax = plt.subplots(figsize=(7, 4))
    for key, histogram in histograms.items():
        if histogram:
            values, weights = zip(*histogram.items())
            ax.hist(values, weights=weights, bins=40, alpha=0.6, label=key)
    ax.set(title="Completion tokens per rollout", xlabel="tokens", ylabel="rollouts")
    ax.legend()
    written.append(_save(fig, folder / "length_histogram.png"))

    fig, ax = plt.subplots(figsize=(7, 4))
    points = stats["pass_at_k"]
    ax.plot([p["k"] for p in points], [p["pass_at_k"] for p in points], marker="o")
    ax.set(
        title="Passes vs draws (pass@k)",
        xlabel="draws per prompt (k)",
        ylabel="pass@k",
        xscale="log",
        ylim=(0, 1),
    )
    written.append(_save(fig, folder / "passes_vs_draws.png"))
    return written


def _save(fig, path):
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path

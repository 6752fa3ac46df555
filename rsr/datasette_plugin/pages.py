"""What `rsr browse`'s own pages show, computed by the code the commands run.

- the run summary on the database page: `rsr stats`'s ledger_stats(), with its
  per-prompt pass-rate histogram and pass@k curve drawn as inline SVG
- a prompt's page: its messages, gold answer and state, every rollout with
  every verifier's verdict, and the rollouts each export format picks, chosen
  by the formatters `rsr export` uses with the options given in the URL
- the DPO preview: the first pairs `rsr export --format dpo` writes with those
  options

Each function takes a sqlite-utils Database over Datasette's read-only
connection. A URL option that `rsr export` would refuse, or a ledger the stats
cannot be computed for, comes back as an "error" line for the page to show.
"""

import json
import sqlite3
from dataclasses import replace
from itertools import islice

from ..db import migrations
from ..errors import RsrError
from ..export import make_options
from ..formatters import BestOfN, Dpo, Sft
from ..selection import PAIR_STRATEGIES, PICK_ORDER, VERIFIERS_SQL
from ..stats import ledger_stats, prompt_states
from . import svg

PROMPT_SQL = "select id, messages, metadata, source, created_at from prompts where id = :prompt_id"
PROMPT_ROLLOUTS_SQL = """
select id, sample_index, step, run_id, model, response, reasoning, finish_reason, truncated,
       error, prompt_tokens, completion_tokens, latency_ms
from rollouts where prompt_id = :prompt_id
order by sample_index
"""
PROMPT_SCORES_SQL = """
select scores.rollout_id, scores.verifier, scores.score, scores.passed, scores.extracted,
       scores.details, scores.error
from scores join rollouts on rollouts.id = scores.rollout_id
where rollouts.prompt_id = :prompt_id
order by scores.verifier
"""
# The newest runs, for the summary (all of them are in the runs table).
RUNS_SQL = """
select * from (
    select id, command, status, started_at, finished_at, summary from runs
    order by id desc limit 50
) order by id
"""

# The options a page takes from its URL, by their `rsr export` names, with the
# type each is read as. Empty values are left out (a form's blank fields).
URL_OPTIONS = {
    "verifier": str,
    "pass-threshold": float,
    "pairs": tuple(PAIR_STRATEGIES),
    "min-margin": float,
    "max-pairs-per-prompt": int,
    "per-prompt": int,
    "pick": tuple(PICK_ORDER),
    "seed": int,
    "dedupe": bool,
    "pass-rate-min": float,
    "pass-rate-max": float,
}
PREVIEW_PAIRS = 50


class UrlOptionError(RsrError):
    "A URL option `rsr export` would refuse."


def export_options_from_query(query) -> dict:
    """The export options in a URL query ({name: value}), keyed as make_options
    wants them (underscored); raises UrlOptionError naming a bad one."""
    options = {}
    for name, kind in URL_OPTIONS.items():
        raw = query.get(name, query.get(name.replace("-", "_")))
        if raw is None or str(raw).strip() == "":
            continue
        raw = str(raw).strip()
        key = name.replace("-", "_")
        if kind is bool:
            options[key] = raw.lower() not in ("0", "false", "no", "off")
        elif isinstance(kind, tuple):
            if raw not in kind:
                raise UrlOptionError(f"{name}={raw!r}: must be one of {', '.join(kind)}")
            options[key] = raw
        else:
            try:
                options[key] = kind(raw)
            except ValueError:
                raise UrlOptionError(f"{name}={raw!r}: not a number") from None
    if options.get("max_pairs_per_prompt", 1) < 1 or options.get("per_prompt", 1) < 1:
        raise UrlOptionError("max-pairs-per-prompt and per-prompt must be at least 1")
    return options


def query_string(options) -> str:
    "The URL query for export options (underscored keys), as the forms write it."
    from urllib.parse import urlencode

    return urlencode({k.replace("_", "-"): ("1" if v is True else v) for k, v in options.items()
                      if v is not None and v is not False})


def verifier_names(db) -> list:
    return [row[0] for row in db.execute(VERIFIERS_SQL)]


OLD_LEDGER = (
    "This ledger was written by an older rsr ({error}): the first command that writes to it "
    "(rsr load, sample or verify) upgrades it; the tables below are all there"
)


def behind(db) -> bool:
    """True for a ledger that lacks some of this rsr's migrations: browsing
    opens it read-only, so it is read as an older rsr left it."""
    if "_sqlite_migrations" not in db.table_names():
        return True
    known = {m.name for m in migrations._migrations}
    return bool(known - {m.name for m in migrations.applied(db)})


def summary(db, verifier=None) -> dict:
    "The run summary: ledger_stats() and its two pictures, or an error line."
    views = set(db.view_names())
    try:
        stats = ledger_stats(db, verifier)
    except RsrError as ex:
        return {"error": str(ex), "verifiers": verifier_names(db),
                "runs": list(db.query(RUNS_SQL)), "views": views}
    except sqlite3.OperationalError as ex:
        if not behind(db):
            raise
        return {"error": OLD_LEDGER.format(error=ex), "verifiers": [], "runs": [], "views": views}
    timing = {run["id"]: run for run in stats["runs"]}
    runs = [
        {**run, "rollouts": timing.get(run["id"], {}).get("rollouts"),
         "tokens_per_second": timing.get(run["id"], {}).get("tokens_per_second")}
        for run in db.query(RUNS_SQL)
    ]
    return {
        "stats": stats,
        "views": views,
        "verifiers": verifier_names(db),
        "runs": runs,
        "histogram": svg.bar_chart(
            stats["pass_rate_buckets"], "Per-prompt pass rate", "pass rate", "prompts"
        ),
        "yield_curve": svg.line_chart(
            [(p["k"], p["pass_at_k"]) for p in stats["pass_at_k"]],
            "Passes vs draws (pass@k)", "draws per prompt (k)", "pass@k",
        ),
    }


def _pairs(db, export_options, limit=None):
    """The dpo rows export writes, each beside the ids and scores of its two
    rollouts: rows() with metadata gives those, and the row is shown as written
    without --include-metadata."""
    options = replace(export_options, include_metadata=True)
    rows = Dpo().rows(db, options)
    try:
        for row in islice(rows, limit):
            meta = row.pop("metadata")
            yield {
                "prompt_id": meta["prompt_id"],
                "chosen": meta["chosen_rollout_id"],
                "rejected": meta["rejected_rollout_id"],
                "chosen_score": meta["chosen_score"],
                "rejected_score": meta["rejected_score"],
                "chosen_text": row["chosen"][0]["content"],
                "rejected_text": row["rejected"][0]["content"],
                "row": json.dumps(row, ensure_ascii=False, indent=1),
            }
    finally:
        rows.close()


def _picks(db, prompt_id, options):
    "Which rollouts sft, best-of-n and dpo take from this prompt, as rsr export would."
    export_options = make_options(db, options)
    export_options.selection.prompt_id = prompt_id
    return {
        "verifier": export_options.selection.verifier,
        "sft": [row["rollout_id"] for row in Sft().select(db, export_options)],
        "best_of_n": [row["rollout_id"] for row in BestOfN().select(db, export_options)],
        "pairs": list(_pairs(db, export_options)),
    }


def prompt_page(db, prompt_id, query) -> dict:
    """Everything a prompt's page shows: the prompt, its state, its rollouts
    with their scores, and the export picks under the URL's options."""
    prompt = next(db.query(PROMPT_SQL, {"prompt_id": prompt_id}), None)
    if prompt is None:
        return None
    metadata = json.loads(prompt["metadata"])
    scores = {}
    for score in db.query(PROMPT_SCORES_SQL, {"prompt_id": prompt_id}):
        scores.setdefault(score["rollout_id"], []).append(score)
    rollouts = [
        {**r, "scores": scores.get(r["id"], [])}
        for r in db.query(PROMPT_ROLLOUTS_SQL, {"prompt_id": prompt_id})
    ]
    page = {
        "prompt": prompt,
        "messages": json.loads(prompt["messages"]),
        "answer": metadata.get("answer") if isinstance(metadata, dict) else None,
        "metadata": metadata,
        "rollouts": rollouts,
        "verifiers": verifier_names(db),
        "options": {},
        "picks": None,
        "error": None,
        "state": None,
    }
    try:
        page["options"] = export_options_from_query(query)
        page["state"] = prompt_states(db, [prompt_id], page["options"].get("verifier")).get(
            prompt_id
        )
        if page["verifiers"]:
            page["picks"] = _picks(db, prompt_id, page["options"])
    except RsrError as ex:
        page["error"] = str(ex)
    except sqlite3.OperationalError as ex:
        if not behind(db):
            raise
        page["error"] = OLD_LEDGER.format(error=ex)
    page["query"] = query_string(page["options"])
    return page


def dpo_preview(db, query) -> dict:
    "The first pairs `rsr export --format dpo` writes with the URL's options."
    page = {"options": {}, "pairs": [], "more": False, "error": None,
            "verifiers": verifier_names(db)}
    try:
        page["options"] = export_options_from_query(query)
        export_options = make_options(db, page["options"])
        page["verifier"] = export_options.selection.verifier
        page["pairs"] = list(_pairs(db, export_options, PREVIEW_PAIRS + 1))
    except RsrError as ex:
        page["error"] = str(ex)
    page["more"] = len(page["pairs"]) > PREVIEW_PAIRS
    page["pairs"] = page["pairs"][:PREVIEW_PAIRS]
    page["query"] = query_string(page["options"])
    return page

"""`rsr run`: load, sample, verify inline, export and summarise, from one recipe.

Every step is the same library call the separate commands make, so a recipe
run and the equivalent chain of commands produce the same ledger. Re-running
continues where the ledger stands.
"""

import json
from pathlib import Path

from .db import open_db
from .errors import RsrError
from .loading import load_prompts
from .pipeline import make_settings, run_sampling, summary_line, with_defaults
from .recipes import arm_configs


def stored_form(recipe):
    "The recipe as the runs table keeps it."
    return recipe


def run_recipe(recipe, db_path, on_progress=None, on_step=None, on_sampled=None):
    """Run a resolved recipe against the ledger at db_path.

    Returns {"load": LoadResult, "sample": SampleReport, "outputs": [(path, rows)]}.
    on_step(message) is told what each stage did; on_sampled() is called when
    sampling is over (before the exports).
    """
    # A target the budget can never meet is refused before anything is loaded.
    arms = arm_configs(recipe)
    for _, config in arms:
        make_settings(with_defaults(config))
    Path(db_path).parent.mkdir(parents=True, exist_ok=True)
    db = open_db(db_path)
    result = {}
    data = recipe["data"]
    missing = [f for f in data["files"] if not Path(f).exists()]
    if missing and db.execute("select count(*) from prompts").fetchone()[0]:
        # Resuming a ledger whose input files have moved: its prompts are in it.
        if on_step:
            on_step(f"Input files not found ({', '.join(missing)}); using the prompts in the ledger")
    elif data["files"]:
        result["load"] = load_prompts(db, data["files"], data["transform"], data["on_duplicate"],
                                      data["skip_invalid"], {"files": data["files"]})
        if on_step:
            loaded = result["load"]
            on_step(f"Loaded {loaded.added:,} new prompts ({loaded.unchanged:,} already present)")
    result["arms"] = []
    for name, config in arms:
        _, report = run_sampling(db, db_path, config, command="run", on_progress=on_progress,
                                 record=stored_form(recipe))
        result["arms"].append((name, report))
        if on_step and name is not None and len(arms) > 1:
            on_step(f"Arm {name}: {summary_line(report)}")
    result["sample"] = report
    if on_sampled is not None:
        on_sampled()
    result["outputs"] = write_outputs(db_path, recipe, on_step)
    return result


SCORED_SQL = "select count(*) from scores where verifier = ?"


def scored_name(verifier_config):
    """The name the recipe's verifier writes its scores under: the configured
    variant's (`code:timeout=3`), not the bare name, when it has options."""
    from .verifiers import get_verifier

    if not verifier_config["name"]:
        return None
    return get_verifier(verifier_config["name"], **(verifier_config.get("options") or {})).name


def write_outputs(db_path, recipe, on_step=None):
    "Write the recipe's export files and stats; returns [(path, rows)]."
    from .export import explain_empty, export, get_formatter, make_options
    from .stats import ledger_stats

    outputs = recipe["outputs"]
    folder = Path(outputs["dir"])
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as ex:
        raise RsrError(f"Cannot create the output folder {folder}: {ex.strerror or ex}") from ex
    db = open_db(db_path, readonly=True)
    verifier = scored_name(recipe["verifier"])
    written = []
    scored = db.execute(SCORED_SQL, [verifier]).fetchone()[0] if verifier else 0
    exports = outputs["exports"] if scored else []
    if outputs["exports"] and not scored and on_step:
        on_step(f"No rollouts scored by {verifier or 'a verifier'} yet: no training files written")
    for spec in exports:
        path = folder / spec["file"]
        options = dict(spec.get("options") or {})
        if verifier and "verifier" not in options:
            options["verifier"] = verifier
        formatter = get_formatter(spec["format"])
        export_options = make_options(db, options, formatter)
        count = export(db, formatter, export_options, path)
        written.append((str(path), count))
        if on_step:
            on_step(f"Exported {count:,} {spec['format']} rows to {path}")
            if count == 0:
                on_step(explain_empty(db, spec["format"], export_options)["message"])
    if outputs.get("stats"):
        sampling = recipe["sampling"]
        stats = ledger_stats(db, verifier=verifier if scored else None, target=sampling["target"],
                             max_rollouts=sampling["max_rollouts"], max_steps=sampling["max_steps"])
        path = folder / outputs["stats"]
        try:
            path.write_text(json.dumps(stats, indent=2) + "\n")
        except OSError as ex:
            raise RsrError(f"Cannot write {path}: {ex.strerror or ex}") from ex
        written.append((str(path), None))
        if on_step:
            on_step(f"Wrote statistics to {path}")
    return written

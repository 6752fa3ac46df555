"""Writing export rows: JSONL to a file or stdout, and LLaMA-Factory's entry.

The rows come from a formatter (rsr/formatters.py); this module opens the
output, writes one JSON object per line and counts them. The ledger is opened
read-only by the caller, so an export can run while a sampler writes.
"""

import json
import os
import stat
import sys
from pathlib import Path

from . import plugins
from .errors import ConfigError, RsrError
from .formatters import ExportOptions
from .options import validate
from .selection import Selection, resolve_verifier


def get_formatter(name):
    "The registered formatter called name."
    return plugins.pick(plugins.get_formatters(), name, "export format", "rsr export --help")


def write_jsonl(rows, out) -> int:
    "Write rows as JSON lines to an open text file; returns how many."
    count = 0
    for row in rows:
        out.write(json.dumps(row, ensure_ascii=False))
        out.write("\n")
        count += 1
    return count


def export(db, formatter, options, output=None) -> int:
    """Write the formatter's rows for this ledger to output (a path) or stdout.

    A file is written beside its final name and renamed at the end, so a failed
    export never leaves a half-written training file behind.
    """
    return write_rows(formatter.rows(db, options), output)


def write_rows(rows, output=None) -> int:
    """Write rows as JSONL to output (a path) or stdout; returns how many. A file
    is written beside its final name and renamed at the end."""
    if output is None or str(output) == "-":
        return write_jsonl(rows, sys.stdout)
    path = Path(output)
    check_replaceable(path)
    partial = path.with_name(path.name + ".partial")
    try:
        with open(partial, "w", encoding="utf-8") as out:
            count = write_jsonl(rows, out)
        partial.replace(path)
    except OSError as ex:
        # A full disk, a missing or read-only folder: the user's to fix.
        raise RsrError(f"Cannot write {path}: {ex.strerror or ex}") from ex
    finally:
        partial.unlink(missing_ok=True)
    return count


def check_replaceable(path):
    """RsrError unless path is missing or a file its owner may write.

    The export replaces the file by a rename, which the folder's permissions
    allow even over a read-only file (and root may write anything): the mode
    bits are checked here so that a file made read-only stays as it is, as
    with any other tool."""
    if path.is_dir():
        raise RsrError(f"Cannot write {path}: it is a folder; give a file name with -o")
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return
    except OSError as ex:
        raise RsrError(f"Cannot write {path}: {ex.strerror or ex}") from ex
    if not mode & 0o222 or not os.access(path, os.W_OK):
        raise RsrError(
            f"Cannot write {path}: it is read-only (mode {stat.S_IMODE(mode):o}); "
            "make it writable (chmod u+w) or choose another -o")


def dataset_info(formatter, output) -> dict:
    "LLaMA-Factory's dataset_info.json entry for an exported file."
    if output is None or str(output) == "-":
        raise ConfigError("--print-dataset-info needs -o FILE: the entry names the file")
    entry = formatter.dataset_info(Path(output).name)
    if entry is None:
        raise ConfigError(
            f"LLaMA-Factory cannot read --format {formatter.name} rows; "
            "use --format dpo-sharegpt for its preference format"
        )
    return {Path(output).stem: entry}


# Export options by their command-line names (underscored), with their defaults.
SELECTION_OPTIONS = (
    "verifier",
    "pass_threshold",
    "dedupe",
    "pass_rate_min",
    "pass_rate_max",
    "where",
    "pick",
    "seed",
    "arms",
    "chosen_arms",
    "rejected_arms",
)
# Options that name arms: one name, or a list of them.
ARM_OPTIONS = ("arms", "chosen_arms", "rejected_arms")
FORMAT_OPTIONS = (
    "per_prompt",
    "pairs",
    "max_pairs_per_prompt",
    "min_margin",
    "k",
    "reasoning",
    "include_metadata",
)


def make_options(db, options, formatter=None) -> ExportOptions:
    """ExportOptions from a dict keyed like the command-line options (e.g. a recipe's).

    Keys beyond the common ones are the formatter's own options, which it
    declares (`formatter.Options`, rsr.options) and finds checked in
    ExportOptions.extra; `format_options` holds more of them (--format-option)."""
    options = dict(options)
    own = dict(options.pop("format_options", None) or {})
    own.update({k: options.pop(k) for k in list(options)
                if k not in SELECTION_OPTIONS and k not in FORMAT_OPTIONS})
    declared = getattr(formatter, "Options", None)
    if own and declared is None:
        raise ConfigError(f"Unknown export option(s): {', '.join(sorted(own))}")
    extra = validate(declared, own, f"The {formatter.name} format") if declared else {}
    chosen = {k: v for k, v in options.items() if v is not None}
    for key in ARM_OPTIONS:
        if isinstance(chosen.get(key), str):
            chosen[key] = (chosen[key],)
        if key in chosen:
            chosen[key] = tuple(chosen[key]) or None
    selection = Selection(
        resolve_verifier(db, chosen.pop("verifier", None)),
        **{k: chosen.pop(k) for k in SELECTION_OPTIONS[1:] if k in chosen},
    )
    return ExportOptions(selection, **chosen, extra=extra)


def export_with_options(db, format_name, output, options) -> int:
    "Export one format to output (a path, or None for stdout) with options as a dict."
    formatter = get_formatter(format_name)
    return export(db, formatter, make_options(db, options, formatter), output)


# Why an export can come out empty: per prompt, from the counters.
EMPTY_REASONS_SQL = """
select count(*) as prompts,
    coalesce(sum(coalesce(pr.valid, 0) = 0), 0) as no_valid,
    coalesce(sum(coalesce(v.passed, 0) = 0), 0) as no_pass,
    coalesce(sum(coalesce(v.failed, 0) = 0), 0) as no_fail,
    coalesce(sum(coalesce(v.passed, 0) > 0 and coalesce(v.failed, 0) > 0), 0) as pass_and_fail,
    coalesce(sum(coalesce(pr.truncated, 0)), 0) as truncated
from prompts
left join progress pr on pr.prompt_id = prompts.id
left join verdicts v on v.prompt_id = prompts.id and v.verifier = :verifier
"""

NEEDS = {
    "sft": "a passing rollout", "multi-sft": "a passing rollout",
    "dpo": "a pass and a fail", "dpo-sharegpt": "a pass and a fail",
    "best-of-n": "a valid scored rollout", "top-k": "a valid scored rollout",
}


def explain_empty(db, format_name, options) -> dict:
    """Why an export wrote no rows: how many prompts lack a pass, a fail or a
    valid rollout, and which option would change that, as {counts..., "message"}."""
    selection = options.selection
    sql = EMPTY_REASONS_SQL
    if selection.where:
        # The user's own SQL on prompts, as the export ran it (read-only ledger).
        sql += f"where ({selection.where})"
    counts = dict(next(db.query(sql, {"verifier": selection.verifier})))
    n = counts["prompts"]
    parts = [
        f"{counts['no_valid']:,} have no valid rollout",
        f"{counts['no_pass']:,} have no pass",
        f"{counts['no_fail']:,} have no fail",
    ]
    needs = NEEDS.get(format_name, "a scored rollout")
    head = (f"No {format_name} rows: each needs {needs} (verifier {selection.verifier}); "
            f"of {n:,} prompts{' --where selects' if selection.where else ''}, "
            + ", ".join(parts))
    hints = []
    dpo = format_name.startswith("dpo")
    if dpo and options.pairs == "pass-fail" and counts["pass_and_fail"] == 0:
        hints.append("--pairs best-worst pairs rollouts by score instead of pass/fail")
    if selection.pass_threshold is None and (dpo or format_name in ("sft", "multi-sft")):
        hints.append("--pass-threshold T counts a score >= T as a pass")
    if counts["no_valid"] and counts["truncated"]:
        hints.append(f"{counts['truncated']:,} rollouts were truncated: sample with a higher "
                     "--max-tokens")
    hints.append("sampling more (--max-rollouts, --target "
                 f"{'dpo' if dpo else 'sft'}) gives each prompt more chances")
    filters = [name for name, value in (
        ("--pass-rate-min", selection.pass_rate_min),
        ("--pass-rate-max", selection.pass_rate_max), ("--min-margin", options.min_margin))
        if value is not None]
    if filters:
        hints.insert(0, f"the filter{'s' if len(filters) > 1 else ''} {', '.join(filters)} "
                        "may exclude the rest")
    counts["message"] = head + ". To change that: " + "; ".join(hints) + "."
    return counts

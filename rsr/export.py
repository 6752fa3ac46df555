"""Writing export rows: JSONL to a file or stdout, and LLaMA-Factory's entry.

The rows come from a formatter (rsr/formatters.py); this module opens the
output, writes one JSON object per line and counts them. The ledger is opened
read-only by the caller, so an export can run while a sampler writes.
"""

import json
import sys
from pathlib import Path

from dataclasses import fields

from . import plugins
from .errors import ConfigError
from .formatters import ExportOptions
from .selection import Selection


def get_formatter(name):
    "The registered formatter called name."
    return plugins.pick(plugins.get_formatters(), name, "export format", "rsr export --help")


def build_options(verifier, **options) -> ExportOptions:
    "ExportOptions from the command line's options (Selection's fields go to it)."
    selection_fields = {f.name for f in fields(Selection)}
    selection = Selection(
        verifier=verifier, **{k: v for k, v in options.items() if k in selection_fields}
    )
    rest = {k: v for k, v in options.items() if k not in selection_fields}
    return ExportOptions(selection=selection, **rest)


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
    rows = formatter.rows(db, options)
    if output is None or str(output) == "-":
        return write_jsonl(rows, sys.stdout)
    path = Path(output)
    partial = path.with_name(path.name + ".partial")
    try:
        with open(partial, "w", encoding="utf-8") as out:
            count = write_jsonl(rows, out)
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)
    return count


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

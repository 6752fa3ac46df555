import dataclasses

import click

from rsr import open_db
from rsr.loading import load_prompts

from . import cli, db_argument, echo_err, echo_json, json_option, progress_display, silent_option


@cli.command()
@db_argument
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--transform", metavar="PATH.py:FUNC", help="Map each raw record to {id, messages, metadata}, or None to skip it")
@click.option(
    "--on-duplicate",
    type=click.Choice(["skip", "replace", "error"]),
    default="skip",
    show_default=True,
    help="What to do with a prompt id that is already loaded",
)
@click.option("--skip-invalid", is_flag=True, help="Skip bad records and count them instead of failing")
@silent_option
@json_option
def load(db_path, files, transform, on_duplicate, skip_invalid, silent, json_):
    """Load prompts from JSONL, JSON or Parquet files into a ledger

    Records may be chat-shaped ({"id", "messages", "metadata"}) or flat
    ({"question" or "prompt" or "problem", "answer", ...}). Loading the same
    file twice adds nothing. A bad record fails the whole load and leaves the
    ledger unchanged.

    \b
        rsr load run.db gsm8k.jsonl
        rsr load run.db data.jsonl.gz --transform my.py:to_prompt --skip-invalid
    """
    config = {"files": list(files), "transform": transform, "on_duplicate": on_duplicate,
              "skip_invalid": skip_invalid}
    bar = progress_display("Loading", "B", silent=silent, scale=True)
    try:
        with open_db(db_path) as db:
            result = load_prompts(
                db, files, transform, on_duplicate, skip_invalid, config,
                on_progress=None if bar is None else (lambda n, done, total: bar.update(
                    done, total, f"{n:,} records", f"Loading: {n:,} records read")))
    finally:
        if bar is not None:
            bar.close()
    for error in result.errors:
        echo_err(f"skipped: {error}")
    parts = [f"Loaded {result.added:,} new prompts", f"{result.unchanged:,} already present"]
    if result.replaced:
        parts.append(f"{result.replaced:,} replaced")
    if result.skipped_by_transform:
        parts.append(f"{result.skipped_by_transform:,} skipped by the transform")
    if result.invalid:
        parts.append(f"{result.invalid:,} invalid skipped")
    echo_err(", ".join(parts))
    if json_:
        echo_json(dataclasses.asdict(result))

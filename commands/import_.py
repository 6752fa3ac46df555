import dataclasses

import click

from rsr import open_db
from rsr.importing import import_rollouts

from . import cli, db_argument, echo_err, echo_json, json_option


@cli.command(name="import")
@db_argument
@click.argument("file", type=click.Path(dir_okay=False))
@click.option(
    "--verifier-name",
    default="imported",
    show_default=True,
    help="Verifier name for scores given in the file",
)
@click.option(
    "--skip-invalid", is_flag=True, help="Skip bad records and count them instead of failing"
)
@json_option
def import_(db_path, file, verifier_name, skip_invalid, json_):
    """Import rollouts generated elsewhere (rsr, open-instruct or flat JSONL)

    Records are rsr rollout rows ({"id", "messages", "rollouts": [{"response",
    "score"}]}), open-instruct generation output, or flat rows ({"prompt_id" or
    "messages", "response", "finish_reason", "score"}). A bad record fails the
    whole import and leaves the ledger unchanged; importing a file twice adds
    nothing.

    \b
        rsr import run.db completions.jsonl
        rsr import run.db rm_scored.jsonl --verifier-name reward-model
    """
    config = {"file": file, "verifier_name": verifier_name, "skip_invalid": skip_invalid}
    with open_db(db_path) as db:
        result = import_rollouts(db, file, verifier_name, skip_invalid, config)
    for error in result.errors:
        echo_err(f"skipped: {error}")
    echo_err(
        f"Imported {result.rollouts_added:,} rollouts with {result.scores_added:,} scores "
        f"({result.prompts_added:,} new prompts, {result.already_imported:,} already imported"
        + (f", {result.invalid:,} invalid skipped)" if result.invalid else ")")
    )
    if json_:
        echo_json(dataclasses.asdict(result))

import dataclasses

import click

from rsr import open_db
from rsr.importing import import_rollouts, score_imported

from . import cli, db_argument, echo_err, echo_json, json_option, verifier_option


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
@click.option("verifier_run", "--verifier", metavar="NAME",
              help="Then score the new rollouts with this verifier (as rsr verify does)")
@verifier_option
@json_option
def import_(db_path, file, verifier_name, skip_invalid, verifier_run, verifier_options, json_):
    """Import rollouts generated elsewhere (rsr, open-instruct or flat JSONL)

    Records are rsr rollout rows ({"id", "messages", "rollouts": [{"response",
    "score"}]}), open-instruct generation output, or flat rows ({"prompt_id" or
    "messages", "response", "finish_reason", "score"}), or an OpenAI / vLLM batch
    output file for requests from `rsr export --format batch-requests` (each
    result stored under the sample index its custom_id names; failed requests
    as error rows). A bad record fails the whole import and leaves the ledger
    unchanged; importing a file twice adds nothing.

    \b
        rsr import run.db completions.jsonl
        rsr import run.db rm_scored.jsonl --verifier-name reward-model
        rsr import run.db batch_output.jsonl --verifier math
    """
    config = {"file": file, "verifier_name": verifier_name, "skip_invalid": skip_invalid}
    with open_db(db_path) as db:
        result = import_rollouts(db, file, verifier_name, skip_invalid, config)
        scored = (score_imported(db, {"name": verifier_run, "options": verifier_options})
                  if verifier_run else None)
    for error in result.errors:
        echo_err(f"skipped: {error}")
    echo_err(
        f"Imported {result.rollouts_added:,} rollouts with {result.scores_added:,} scores "
        f"({result.prompts_added:,} new prompts, {result.already_imported:,} already imported"
        + (f", {result.error_rows:,} failed requests" if result.error_rows else "")
        + (f", {result.invalid:,} invalid skipped)" if result.invalid else ")")
    )
    if scored is not None:
        echo_err(f"Verified with {verifier_run}: {scored.summary()}")
    if json_:
        echo_json({**dataclasses.asdict(result),
                   **({"verified": dataclasses.asdict(scored)} if scored else {})})

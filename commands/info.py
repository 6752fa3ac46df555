import click

from rsr import open_db
from rsr.info import ledger_info

from . import cli, echo_json, existing_db_argument, json_option


@cli.command()
@existing_db_argument
@json_option
def info(db_path, json_):
    """Show what a ledger holds: counts, schema version and recent runs

    \b
        rsr info run.db
        rsr info run.db --json | jq .counts
    """
    data = ledger_info(open_db(db_path, readonly=True))
    if json_:
        echo_json(data)
        return
    counts = data["counts"]
    click.echo(f"Schema version: {data['schema_version']}")
    for key, value in counts.items():
        click.echo(f"{key:>10}: {value:,}")
    for verifier in data["verifiers"]:
        click.echo(
            f"verifier {verifier['verifier']}: {verifier['scored']:,} scored, "
            f"{verifier['passed']:,} passed, {verifier['failed']:,} failed, "
            f"{verifier['undecided']:,} undecided"
        )
    if data["runs"]:
        click.echo("Recent runs:")
    for run in data["runs"]:
        click.echo(
            f"  #{run['id']} {run['command']} {run['status']} {run['started_at']}"
            + (f" - {run['summary']}" if run["summary"] else "")
        )

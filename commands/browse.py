import click

from rsr.browse import database_url, serve

from . import cli, echo_err, existing_db_argument


@cli.command()
@existing_db_argument
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to bind (0.0.0.0 exposes it to the network)",
)
@click.option(
    "-p",
    "--port",
    type=click.IntRange(1, 65535),
    default=8001,
    show_default=True,
    help="Port to serve on",
)
def browse(db_path, host, port):
    """Browse a ledger in Datasette: the run summary, each prompt's rollouts side by side

    A prompt's page shows which rollouts export takes from it; its URL takes
    export's options (?pairs=best-worst&min-margin=0.2).

    \b
        rsr browse run.db
        rsr browse run.db --port 8080
    """
    serve(db_path, host, port,
          on_start=lambda: echo_err(
              f"Serving {db_path} at {database_url(db_path, host, port)} (Ctrl-C to stop)"))

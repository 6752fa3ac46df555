import click

from rsr.browse import serve

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
    """Browse a ledger in Datasette, with descriptions and canned queries

    \b
        rsr browse run.db
        rsr browse run.db --port 8080
    """
    serve(db_path, host, port,
          on_start=lambda: echo_err(f"Serving {db_path} at http://{host}:{port}/ (Ctrl-C to stop)"))

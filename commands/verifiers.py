"""`rsr verifiers`: list the verifiers rsr knows, with one-line descriptions."""

import json

import click

from rsr.verifiers import list_verifiers

from . import cli


@cli.command(name="verifiers")
@click.option("--json", "json_", is_flag=True, help="Print a JSON list instead of text")
def verifiers_list(json_):
    """List the registered verifiers with one-line descriptions

    A user's own function needs no registration: --verifier path.py:function.

    \b
        rsr verifiers
        rsr verifiers --json | jq '.[].name'
    """
    found = list_verifiers()
    if json_:
        click.echo(json.dumps([{"name": n, "description": d} for n, d in found], indent=2))
        return
    width = max((len(name) for name, _ in found), default=0)
    for name, description in found:
        click.echo(f"{name:<{width}}  {description}")

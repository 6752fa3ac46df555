import json

import click

from rsr import plugins as rsr_plugins

from . import cli


@cli.command(name="plugins")
def plugins_list():
    """List the plugins rsr has loaded, with the hooks each implements

    \b
        rsr plugins
    """
    click.echo(json.dumps(rsr_plugins.plugin_list(), indent=2))

"""The `rsr` command-line interface: a click group whose subcommands live one per
module in this package. Commands parse options, call the rsr library and echo;
library errors (RsrError) become clean messages here, in one place."""

import importlib
import json
import logging
import pkgutil
import sqlite3
import sys

import click

from rsr import __version__, options, runs
from rsr import plugins as registries
from rsr.db import describe_sqlite_error
from rsr.errors import RsrError
from rsr.progress import Display, SampleDisplay

# Where a command keeps its ledger's path for error messages (ctx.meta is shared
# by the group's context and the subcommand's).
LEDGER_KEY = "rsr.ledger"

# The exit code of a run a cost cap stopped (everything that arrived is
# written; a re-run with a higher cap continues): not an error's 1, not a
# signal's 130.
CAPPED_EXIT_CODE = 3


class RsrGroup(click.Group):
    """Shows RsrError as a one-line message instead of a traceback, and so too
    the SQLite errors that come from the disk or the file rather than from rsr
    (a full disk, a read-only or damaged ledger)."""

    def parse_args(self, ctx, args):
        # Every run this invocation records keeps its command line (redacted).
        ctx.meta["rsr.command_line"] = runs.COMMAND_LINE.set(["rsr", *args])
        return super().parse_args(ctx, args)

    def invoke(self, ctx):
        try:
            return self._invoke(ctx)
        finally:
            token = ctx.meta.pop("rsr.command_line", None)
            if token is not None:
                runs.COMMAND_LINE.reset(token)

    def _invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except RsrError as ex:
            raise click.ClickException(str(ex)) from ex
        except sqlite3.DatabaseError as ex:
            message = describe_sqlite_error(ex, ctx.meta.get(LEDGER_KEY))
            if message is None:
                raise
            raise click.ClickException(message) from ex


@click.group(cls=RsrGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="rsr")
@click.option("-v", "--verbose", count=True, help="Log more detail to stderr (-vv for debug)")
def cli(verbose):
    """rsr: rejection sampling and best-of-N data generation, with every prompt,
    rollout and score in one SQLite ledger.

    \b
        rsr load run.db prompts.jsonl
        rsr sample run.db --verifier math --target sft
        rsr export run.db --format sft -o train.jsonl
    """
    level = {0: logging.WARNING, 1: logging.INFO}.get(verbose, logging.DEBUG)
    logging.basicConfig(level=level, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")


def remember_ledger(ctx, param, value):
    "Keep the ledger's path where RsrGroup can name it in an error."
    if value is not None:
        ctx.meta[LEDGER_KEY] = value
    return value


db_argument = click.argument("db_path", metavar="RUN.db", type=click.Path(dir_okay=False),
                             callback=remember_ledger)
# A ledger that must exist already: open_db() refuses a missing one with a
# line that says how to create it (click's exists=True would not).
existing_db_argument = click.argument(
    "db_path", metavar="RUN.db", type=click.Path(dir_okay=False), callback=remember_ledger,
)
silent_option = click.option("--silent", is_flag=True, help="Show no progress, only errors")
json_option = click.option("json_", "--json", is_flag=True,
                           help="Print one JSON object with the counts on stdout")


def key_values(ctx, param, values):
    """KEY=VALUE pairs as keyword arguments: values are JSON where they parse
    (0.5, true, 3), else text; dashes in keys become underscores."""
    options = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{item!r} must look like KEY=VALUE")
        try:
            options[key.strip().replace("-", "_")] = json.loads(value)
        except json.JSONDecodeError:
            options[key.strip().replace("-", "_")] = value
    return options


# One spelling in sample and verify, as a recipe's verifier.options.
verifier_option = click.option(
    "verifier_options", "--verifier-option", multiple=True, callback=key_values,
    metavar="KEY=VALUE",
    help="A verifier option, e.g. partial=true, model=NAME, base_url=URL (repeatable)")


class RegistryChoice(click.Choice):
    "A choice among a registry's names, read when used (plugins registered later count)."

    def __init__(self, names):
        self.names = names
        self.case_sensitive = True

    @property
    def choices(self):
        return tuple(sorted(self.names()))


def declared_flags(kind, classes):
    """click options for every option these plugins (samplers or executors)
    declare (rsr.options). A flag several plugins declare is one flag; its help
    names them. Values arrive as keyword arguments KIND__OPTION."""
    owners, first = {}, {}
    for cls in classes:
        for flag in options.flags(cls.Options):
            owners.setdefault(flag.flag, []).append(cls.name)
            first.setdefault(flag.flag, flag)
    made = []
    for spelling, flag in sorted(first.items()):
        dest = f"{kind}__{flag.name}"
        help_text = flag.help
        if help_text.split(":")[0] not in owners[spelling]:
            help_text = f"{', '.join(owners[spelling])}: {help_text}"
        if flag.kind is bool:
            made.append(click.Option([f"{spelling}/--no-{spelling[2:]}", dest], default=None,
                                     help=help_text))
        elif flag.kind is list:
            made.append(click.Option([spelling, dest], multiple=True, help=help_text,
                                     metavar="VALUE"))
        elif isinstance(flag.kind, tuple):
            made.append(click.Option([spelling, dest], type=click.Choice(flag.kind), help=help_text))
        else:
            made.append(click.Option([spelling, dest], type=flag.kind, help=help_text))
    return made


class DeclaredOptionsCommand(click.Command):
    """A command that also takes every option the registered plugins declare,
    read from the registries when it runs: a plugin's options reach it with no
    change to the command. declared is [(kind, function returning classes)].
    A declared flag that would shadow one of the command's own is left to
    recipes."""

    def __init__(self, *args, declared=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.declared = declared

    def get_params(self, ctx):
        params = super().get_params(ctx)
        taken = {opt for param in params for opt in param.opts + param.secondary_opts}
        extra = []
        for kind, classes in self.declared:
            for option in declared_flags(kind, classes()):
                if not taken.intersection(option.opts):
                    taken.update(option.opts)
                    extra.append(option)
        # After the command's own options, before --silent, --json and --help.
        tail = [p for p in params if p.name in ("silent", "json_") or "--help" in p.opts]
        return [p for p in params if p not in tail] + extra + tail


def declared_values(kind, values):
    "The options a user set among the KIND__OPTION keyword arguments (unset ones left out)."
    prefix = f"{kind}__"
    return {key[len(prefix):]: value for key, value in values.items()
            if key.startswith(prefix) and value is not None and value != ()}


def sample_display(silent):
    "The progress display of a sampling run on stderr, or None with --silent."
    return None if silent else SampleDisplay()


def progress_display(label, unit, total=None, silent=False, scale=False):
    "A progress display on stderr (stdout is for data), or None with --silent."
    return None if silent else Display(label, unit, total=total, scale=scale)


def echo_json(data):
    "The one JSON object a --json command prints on stdout."
    click.echo(json.dumps(data, indent=2, default=str))


def echo_err(message):
    "A line for the user on stderr."
    click.echo(message, err=True)


def _load_commands():
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")
    # Then the commands plugins add (register_commands hook).
    registries.load_plugins()
    registries.pm.hook.register_commands(cli=cli)


_load_commands()

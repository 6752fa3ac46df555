"""The plugin hooks: one per kind of thing a plugin can add.

A plugin is a module (or an installed package with an `rsr` entry point) with
functions marked `@hookimpl`, for example::

    from rsr import hookimpl

    @hookimpl
    def register_verifiers(register):
        register(MyVerifier())
"""

import pluggy

hookspec = pluggy.HookspecMarker("rsr")
hookimpl = pluggy.HookimplMarker("rsr")


@hookspec
def register_samplers(register):
    "Call register(SamplerClass) for each sampler class this plugin provides."


@hookspec
def register_verifiers(register):
    "Call register(verifier) for each verifier object this plugin provides."


@hookspec
def register_formatters(register):
    "Call register(formatter) for each export format this plugin provides."


@hookspec
def register_commands(cli):
    """Add commands to the `rsr` click group: `@cli.command()` on functions
    defined inside this hook (as in llm and sqlite-utils)."""

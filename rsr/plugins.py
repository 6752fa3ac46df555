"""The plugin manager and the registries built from it.

Built-in samplers, verifiers and formatters are plain plugin modules registered
at start-up, on the same path as third-party packages that declare an `rsr`
entry point. Set RSR_LOAD_PLUGINS to a comma-separated list of entry-point names
to load only those ("" loads none: tests use this).
"""

import importlib
import os
import sys

import pluggy

from . import hookspecs
from .errors import ConfigError

DEFAULT_PLUGINS = (
    "rsr.samplers.openai",
    "rsr.samplers.openai_batch",
    "rsr.samplers.vllm",
    "rsr.samplers.vllm_async",
    "rsr.samplers.local",
    "rsr.verifiers.builtin",
    "rsr.formatters",
    "rsr.batches",
)

pm = pluggy.PluginManager("rsr")
pm.add_hookspecs(hookspecs)

_loaded = False


def load_plugins():
    "Register the built-in plugins and installed entry points, once."
    global _loaded
    if _loaded:
        return
    _loaded = True
    wanted = os.environ.get("RSR_LOAD_PLUGINS")
    if wanted is None:
        pm.load_setuptools_entrypoints("rsr")
    elif wanted.strip():
        names = {name.strip() for name in wanted.split(",") if name.strip()}
        from importlib.metadata import entry_points

        for ep in entry_points(group="rsr"):
            if ep.name in names and not pm.get_plugin(ep.name):
                pm.register(ep.load(), name=ep.name)
    for module_name in DEFAULT_PLUGINS:
        if module_name in sys.modules and pm.is_registered(sys.modules[module_name]):
            continue
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as ex:
            if ex.name != module_name:
                raise
            continue  # a built-in not written yet
        if not pm.is_registered(module):
            pm.register(module, name=module_name)


def _collect(hook_name, key):
    load_plugins()
    found = {}

    def register(thing):
        name = key(thing)
        if name in found:
            raise ConfigError(f"Two plugins register the name {name!r}")
        found[name] = thing

    getattr(pm.hook, hook_name)(register=register)
    return found


def get_samplers():
    "{name: sampler class} for every registered sampler."
    return _collect("register_samplers", lambda cls: cls.name)


def get_verifiers():
    "{name: verifier} for every registered verifier."
    return _collect("register_verifiers", lambda verifier: verifier.name)


def get_formatters():
    "{name: formatter} for every registered export format."
    return _collect("register_formatters", lambda formatter: formatter.name)


def pick(registry, name, kind, list_command):
    "The registry entry called name, or a ConfigError that says how to list them."
    try:
        return registry[name]
    except KeyError:
        raise ConfigError(
            f"No {kind} named {name!r}; run '{list_command}' to list them"
        ) from None


def plugin_list():
    "[{name, hooks}] for every registered plugin, for `rsr plugins`."
    load_plugins()
    out = []
    for plugin in pm.get_plugins():
        out.append(
            {
                "name": pm.get_name(plugin),
                "hooks": sorted(h.name for h in pm.get_hookcallers(plugin)),
            }
        )
    return sorted(out, key=lambda p: p["name"])

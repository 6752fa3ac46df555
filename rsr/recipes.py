"""Recipes: one YAML file that describes a whole run, for `rsr run`.

A recipe has the sections `data` (input files, transform), `sampler`,
`sampling`, `verifier`, `executor` and `outputs`, validated against the
dataclasses below and rsr/config.py's (the one declaration of every setting
and its default) with OmegaConf (unknown keys and wrong types are errors that name the key).
Command-line overrides are OmegaConf dot-lists (`sampling.temperature=0.9`).
The resolved configuration is stored in the `runs` table; `rsr run --db RUN.db`
without a recipe continues from it.
"""

import dataclasses
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from .config import ExecutorSection, SamplerSection, SamplingSection, VerifierSection
from .errors import ConfigError

log = logging.getLogger(__name__)


@dataclass
class DataSection:
    files: list[str] = field(default_factory=list)
    transform: Optional[str] = None
    on_duplicate: str = "skip"
    skip_invalid: bool = False


@dataclass
class ArmSpec:
    """One arm of a recipe: its name and what it changes in the sampler and
    sampling sections (e.g. another model, another temperature)."""

    name: str = ""
    sampler: dict[str, Any] = field(default_factory=dict)
    sampling: dict[str, Any] = field(default_factory=dict)


@dataclass
class ExportSpec:
    format: str = "sft"
    file: str = "sft.jsonl"
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class OutputsSection:
    dir: str = "out"
    exports: list[ExportSpec] = field(default_factory=list)
    stats: Optional[str] = "stats.json"


@dataclass
class Recipe:
    name: str = "run"
    description: str = ""
    db: Optional[str] = None
    # The recipe file this came from (absolute), so that a resumed run can
    # read secrets the ledger never keeps (an inline api_key) from it again.
    recipe_file: Optional[str] = None
    data: DataSection = field(default_factory=DataSection)
    sampler: SamplerSection = field(default_factory=SamplerSection)
    sampling: SamplingSection = field(default_factory=SamplingSection)
    verifier: VerifierSection = field(default_factory=VerifierSection)
    # The executor's name and its own options (it declares and checks them).
    executor: dict[str, Any] = field(default_factory=lambda: dataclasses.asdict(ExecutorSection()))
    outputs: OutputsSection = field(default_factory=OutputsSection)
    # Several sampling configurations in one ledger, sampled in this order
    # (none: one arm, named after the model).
    arms: list[ArmSpec] = field(default_factory=list)


# What may change when a run is resumed: how to reach the engine and how hard
# to push it, never what is sampled or how it is judged.
OPERATIONAL_KEYS = {
    "sampler.base_url", "sampler.api_key", "sampler.timeout", "sampler.transport",
    "sampler.concurrency", "sampler.batch_prompts", "sampler.max_retries",
    "sampler.retry_base_delay", "sampler.engine",
    "sampling.max_rollouts", "sampling.max_steps", "sampling.limit", "sampling.where",
    "verifier.workers", "verifier.timeout", "outputs", "data", "db", "name", "description",
    "executor", "recipe_file",
}


def _omegaconf():
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    return OmegaConf, OmegaConfBaseException


def load_recipe(path=None, overrides=(), base=None) -> dict:
    """The resolved recipe as a plain dict: defaults, then base (a stored config),
    then the file at path, then the dot-list overrides."""
    import yaml
    from omegaconf import DictConfig

    OmegaConf, OmegaConfError = _omegaconf()
    where = "the stored configuration"
    try:
        config = OmegaConf.structured(Recipe)
        if base is not None:
            config = OmegaConf.merge(config, base)
        if path is not None:
            where = str(path)
            if not Path(path).is_file():
                raise ConfigError(f"Recipe not found: {path}")
            loaded = OmegaConf.load(path)
            if not isinstance(loaded, DictConfig):
                raise ConfigError(
                    f"{path}: a recipe is a mapping of sections (data, sampler, sampling, "
                    f"verifier, outputs), not a {type(loaded).__name__.replace('Config', '').lower()}"
                )
            config = OmegaConf.merge(config, loaded)
        if overrides:
            where = "the command-line overrides"
            config = OmegaConf.merge(config, OmegaConf.from_dotlist(list(overrides)))
        resolved = OmegaConf.to_container(config, resolve=True)
    except OmegaConfError as ex:
        raise ConfigError(f"{where}: {_describe(ex)}") from None
    except yaml.YAMLError as ex:
        mark = getattr(ex, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{where}: not valid YAML: {getattr(ex, 'problem', None) or ex}{at}") from None
    except (OSError, ValueError) as ex:
        raise ConfigError(f"{where}: {ex}") from None
    if path is not None:
        # Data paths are relative to the recipe file; store them absolute so a
        # resumed run (which has no recipe file) finds the same files.
        folder = Path(path).resolve().parent
        resolved["recipe_file"] = str(Path(path).resolve())
        data = resolved["data"]
        data["files"] = [str(folder / f) for f in data["files"]]
        if data["transform"]:
            data["transform"] = str(folder / data["transform"])
    return resolved


def _describe(ex):
    key = getattr(ex, "full_key", None)
    message = str(ex).splitlines()[0]
    return f"key '{key}': {message}" if key else message


def flatten(config, prefix=""):
    "{'a.b': value} for every leaf of a nested dict."
    out = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


def incompatible_changes(stored, new):
    "The keys whose change would mix incompatible data into one ledger."
    old_flat, new_flat = flatten(stored), flatten(new)
    changed = []
    for key in sorted(set(old_flat) | set(new_flat)):
        if any(key == k or key.startswith(k + ".") for k in OPERATIONAL_KEYS):
            continue
        if old_flat.get(key) != new_flat.get(key):
            changed.append((key, old_flat.get(key), new_flat.get(key)))
    return changed


def sampling_config(recipe):
    "The recipe's sampler, sampling, verifier and executor sections, as rsr.pipeline takes them."
    return {key: recipe[key] for key in ("sampler", "sampling", "verifier", "executor")}


def arm_configs(recipe):
    """[(arm name or None, sampling config)]: one per arm of the recipe, each
    the recipe's sections with the arm's changes, or the recipe's own config."""
    base = sampling_config(recipe)
    if not recipe.get("arms"):
        return [(None, base)]
    names = [arm["name"] for arm in recipe["arms"]]
    if not all(name.strip() for name in names):
        raise ConfigError("arms: each arm needs a name (arms: [{name: NAME, sampler: {...}}])")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ConfigError(f"arms: the name {repeated[0]!r} is given twice; each arm needs its own")
    return [
        (arm["name"], {
            **base,
            "sampler": {**base["sampler"], **arm["sampler"]},
            "sampling": {**base["sampling"], **arm["sampling"], "arm": arm["name"]},
        })
        for arm in recipe["arms"]
    ]


STORED_CONFIG_SQL = """
select config from runs where command = 'run' order by id desc limit 1
"""


def stored_recipe(db, resume=False):
    """The configuration of the latest `rsr run` on this ledger, or None.

    Secrets were redacted when stored. To resume (resume=True), an inline
    api_key is read from the recipe file again; failing that the client falls
    back on OPENAI_API_KEY, and with neither a warning says no key is sent."""
    import json

    from .runs import REDACTED

    row = db.execute(STORED_CONFIG_SQL).fetchone()
    if row is None:
        return None
    config = json.loads(row[0])
    sampler = config.get("sampler", {})
    if sampler.get("api_key") == REDACTED:
        sampler["api_key"] = _recipe_api_key(config.get("recipe_file")) if resume else None
        if resume and sampler["api_key"] is None and not os.environ.get("OPENAI_API_KEY"):
            log.warning(
                "The stored run sent an api_key, which the ledger never keeps, and %s: set "
                "OPENAI_API_KEY or pass sampler.api_key=... to send one (none is sent now)",
                f"its recipe {config['recipe_file']} has none now" if config.get("recipe_file")
                else "its recipe file is not recorded")
    return config


def _recipe_api_key(recipe_file):
    "sampler.api_key of the recipe file (resolved), or None if it is gone or has none."
    if not recipe_file or not Path(recipe_file).is_file():
        return None
    try:
        return load_recipe(recipe_file)["sampler"]["api_key"]
    except ConfigError:
        return None


def default_db_path(recipe):
    "Where a recipe's ledger lives unless --db says otherwise: beside its outputs."
    return recipe.get("db") or str(Path(recipe["outputs"]["dir"]) / "run.db")


def prepare(recipe_path, db_path, overrides, allow_config_change):
    """Resolve what `rsr run` will do: (recipe dict, db path).

    Without a recipe file the ledger's stored configuration is used. A change
    that would mix incompatible data into an existing ledger is refused unless
    allow_config_change.
    """
    from .db import open_db

    if recipe_path is None and db_path is None:
        raise ConfigError("Give a recipe file, or --db RUN.db to resume a run stored in a ledger")
    stored = None
    if db_path is not None and Path(db_path).exists():
        resume = recipe_path is None and not any(o.startswith("sampler.api_key=") for o in overrides)
        stored = stored_recipe(open_db(db_path, readonly=True), resume=resume)
    if recipe_path is None and stored is None:
        raise ConfigError(f"{db_path} holds no `rsr run` configuration to resume; give a recipe file")
    recipe = load_recipe(recipe_path, overrides, base=stored if recipe_path is None else None)
    db_path = db_path or default_db_path(recipe)
    if stored is None and Path(db_path).exists():
        stored = stored_recipe(open_db(db_path, readonly=True))
    if stored is not None and not allow_config_change:
        changes = incompatible_changes(load_recipe(None, (), base=stored), recipe)
        if changes:
            listed = "; ".join(f"{key}: {old!r} -> {new!r}" for key, old, new in changes)
            raise ConfigError(
                f"{db_path} was sampled with different settings ({listed}). Mixing them would "
                "make one ledger hold incomparable data: use a new --db, or pass "
                "--allow-config-change if you mean it"
            )
    return recipe, db_path

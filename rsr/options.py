"""Options that a sampler or an executor declares for itself.

A plugin lists its options as a pydantic model (as llm's models do): one field
per option, with its type, constraints, default and a description. rsr
validates a configuration's values against the model before it builds the
plugin, `rsr sample` turns every declared field into a flag of its own
(`tensor_parallel_size` becomes `--tensor-parallel-size`), and a recipe sets
the same names under `sampler.engine` (a sampler's) or `executor` (an
executor's). The core never lists another plugin's options.

    class MySampler(Sampler):
        name = "mine"

        class Options(SamplerOptions):
            beam_width: Optional[int] = Field(None, ge=1, description="Beams per prompt")
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Literal, Optional, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, ValidationError

from .errors import ConfigError


class PluginOptions(BaseModel):
    """A plugin's options: unknown names are refused. A field's
    json_schema_extra may set "flag" (the command-line spelling, or None for a
    recipe-only option)."""

    model_config = ConfigDict(extra="forbid")


class OpenOptions(PluginOptions):
    "Options that also pass any undeclared name through (an engine's own arguments)."

    model_config = ConfigDict(extra="allow")


@dataclass(frozen=True)
class Flag:
    "One declared option as a command-line flag."

    name: str
    flag: str
    help: str
    # bool, int, float, str, a tuple of choices, or list (a repeatable option).
    kind: Any
    default: Any = None


def flag_of(model: type[PluginOptions], name: str) -> Optional[str]:
    "The command-line spelling of an option (None: recipe only)."
    extra = model.model_fields[name].json_schema_extra or {}
    if isinstance(extra, dict) and "flag" in extra:
        return extra["flag"]  # type: ignore[return-value]
    return "--" + name.replace("_", "-")


def flags(model: type[PluginOptions]) -> list[Flag]:
    "The declared options that have a command-line flag."
    out = []
    for name, info in model.model_fields.items():
        flag = flag_of(model, name)
        if flag is None:
            continue
        out.append(Flag(name, flag, info.description or "", _kind(info.annotation), info.default))
    return out


def _kind(annotation):
    "bool, int, float, str, a tuple of choices or list, from a field's annotation."
    if get_origin(annotation) is Union:
        annotation = next(a for a in get_args(annotation) if a is not type(None))
    if get_origin(annotation) is Literal:
        return tuple(get_args(annotation))
    if get_origin(annotation) is list or annotation is list:
        return list
    return annotation if annotation in (bool, int, float) else str


def validate(model: type[PluginOptions], values: dict, owner: str) -> dict:
    """The options a user gave, checked against the plugin's model: only the
    names given (the plugin's own defaults apply to the rest), coerced to their
    types. A wrong name or value is a ConfigError naming option and flag."""
    try:
        parsed = model(**values)
    except ValidationError as ex:
        error = ex.errors()[0]
        name = ".".join(str(part) for part in error["loc"]) or "?"
        if error["type"] == "extra_forbidden":
            known = ", ".join(sorted(model.model_fields)) or "none"
            raise ConfigError(f"{owner} has no option {name!r} (its options: {known})") from None
        flag = flag_of(model, name) if name in model.model_fields else None
        shown = f"{name} ({flag})" if flag else name
        raise ConfigError(
            f"{owner} option {shown}: {error['msg'].lower()}, not {error.get('input')!r}"
        ) from None
    return parsed.model_dump(exclude_unset=True)


def declares(model: type[PluginOptions], name: str) -> bool:
    "True when the model declares this option (or passes any name through)."
    return name in model.model_fields


def check_owner(values: dict, chosen: Any, classes: Iterable[Any], kind: str) -> None:
    """Refuse options that the chosen plugin does not declare but another one
    of its kind does, saying which: 'num-workers: only with --executor ray'."""
    foreign = sorted(k for k in values if not declares(chosen.Options, k))
    owners = {cls.name: cls for cls in classes if cls is not chosen
              and any(declares(cls.Options, k) for k in foreign)}
    if foreign and len(owners) == 1:
        owner = next(iter(owners.values()))
        names = ", ".join((flag_of(owner.Options, k) or k).lstrip("-") for k in foreign)
        raise ConfigError(f"{names}: only with --{kind} {owner.name}")

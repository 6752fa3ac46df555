"""Building the configured parts of a job: the sampler and the scorer.

Both read a resolved configuration (rsr.config) and ask the registries
(rsr.plugins) for the classes; what a sampler accepts is what it declares
(`Sampler.endpoint`, `Sampler.Options`), never a list kept here.
"""

from __future__ import annotations

from typing import Any

from . import plugins
from .client import check_base_url
from .config import SAMPLER
from .errors import ConfigError
from .options import check_owner, validate
from .samplers import ENDPOINT_SETTINGS, Sampler
from .verifiers import get_verifier
from .verifiers.cascade import cascade_name
from .verifiers.scorer import Scorer


def sampler_class(name: str) -> type[Sampler]:
    "The registered sampler class of that name (a ConfigError naming the choices if none)."
    return plugins.pick(plugins.get_samplers(), name, "sampler", "rsr plugins")


def endpoint_samplers() -> list[str]:
    "Names of the registered samplers that take an endpoint."
    return sorted(name for name, cls in plugins.get_samplers().items() if cls.endpoint)


def sampler_kwargs(cls: type[Sampler], sampler_config: dict[str, Any]) -> dict[str, Any]:
    """The constructor arguments of a sampler: the model, the endpoint settings
    if it takes an endpoint, and its own options, validated."""
    kwargs: dict[str, Any] = {}
    if sampler_config.get("model") is not None:
        kwargs["model"] = sampler_config["model"]
    if sampler_config.get("base_url") is not None:
        # An empty or malformed URL is reported as such, whichever sampler was picked.
        check_base_url(sampler_config["base_url"])
    for key in ENDPOINT_SETTINGS:
        value = sampler_config.get(key)
        if cls.endpoint:
            if value is not None:
                kwargs[key] = value
        # A request timeout means nothing to an in-process engine: left aside.
        elif key != "timeout" and value is not None and value != getattr(SAMPLER, key):
            takers = " or ".join(endpoint_samplers()) or "a sampler with an endpoint"
            raise ConfigError(f"--{key.replace('_', '-')} is for the {takers} sampler, not {cls.name}")
    options = dict(sampler_config.get("engine") or {})
    check_owner(options, cls, plugins.get_samplers().values(), "sampler")
    kwargs.update(validate(cls.Options, options, f"The {cls.name} sampler"))
    return kwargs


def sampler_concurrency(sampler_config: dict[str, Any], step_size: int) -> int:
    """Steps one sampler keeps in flight: `concurrency` as set, or, left at its
    default, what the sampler says its engine holds (Sampler.preferred_concurrency)."""
    configured = sampler_config.get("concurrency") or SAMPLER.concurrency
    if configured != SAMPLER.concurrency:
        return configured
    cls = sampler_class(sampler_config["name"])
    return cls.preferred_concurrency(dict(sampler_config.get("engine") or {}), step_size) or configured


def make_sampler(sampler_config: dict[str, Any]) -> Sampler:
    "Instantiate the configured sampler from the registry."
    cls = sampler_class(sampler_config["name"])
    return cls(**sampler_kwargs(cls, sampler_config))


def make_scorer(verifier_config: dict[str, Any]) -> Scorer | None:
    "The Scorer for the configured verifier (or cascade), or None when there is none."
    cascade = list(verifier_config.get("cascade") or [])
    if cascade:
        if verifier_config.get("name"):
            raise ConfigError("Use --verifier or --cascade, not both")
        return Scorer(get_verifier(cascade_name(cascade), **(verifier_config.get("options") or {})),
                      workers=verifier_config.get("workers") or 0,
                      timeout=verifier_config.get("timeout"))
    if not verifier_config.get("name"):
        return None
    verifier = get_verifier(verifier_config["name"], **(verifier_config.get("options") or {}))
    return Scorer(verifier, workers=verifier_config.get("workers") or 0,
                  timeout=verifier_config.get("timeout"))

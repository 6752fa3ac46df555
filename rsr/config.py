"""The settings of a sampling job, declared once: sections, defaults, validation.

A job's configuration is a plain dict of four sections (what the `runs` table
stores and a recipe's YAML holds)::

    sampler:  which engine, how to reach it and how hard to push it
    sampling: target, budget and sampling parameters
    verifier: which verifier scores rollouts as they arrive
    executor: where requests are served (in this process, or Ray actors)

Each section is a dataclass below. Its field defaults are the only defaults in
rsr: `rsr sample`'s options show them, recipes (rsr/recipes.py) are validated
against the same dataclasses, `rsr stats` falls back on them, and
`resolve()` fills a partial dict with them. A sampler's or an executor's own
options (`sampler.engine`, the executor's fields beyond its name) are declared
by that sampler or executor (rsr.options), never here.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Optional

from .errors import ConfigError


@dataclass
class SamplerSection:
    "The engine: which sampler, the model, its endpoint, and how hard to push it."

    name: str = "local"
    model: Optional[str] = None
    # For samplers that talk to a server (Sampler.endpoint): where and how.
    base_url: Optional[str] = None
    api_key: Optional[str] = None
    timeout: float = 600.0
    transport: str = "aiohttp"
    # Requests in flight (API samplers), prompts per engine call (batch samplers).
    concurrency: int = 32
    batch_prompts: int = 256
    max_retries: int = 6
    retry_base_delay: float = 0.5
    # The sampler's own options, as it declares them (Sampler.Options).
    engine: dict[str, Any] = field(default_factory=dict)


@dataclass
class SamplingSection:
    "What to sample: target, budget per prompt, which prompts, sampling parameters."

    target: str = "sft"
    # The arm (one sampling configuration) this run samples: budgets and, unless
    # pool, targets count per arm. None: the model's name.
    arm: Optional[str] = None
    pool: bool = False
    max_rollouts: int = 16
    step_size: int = 4
    max_steps: int = 8
    early_stop: bool = True
    limit: Optional[int] = None
    where: Optional[str] = None
    dedupe: bool = False
    seed: Optional[int] = None
    temperature: float = 0.7
    top_p: Optional[float] = None
    max_tokens: int = 1024
    extra_params: dict[str, Any] = field(default_factory=dict)
    # How the budget is shared: uniform (max_rollouts each) or proportional
    # (the same total, more to prompts with a low pass rate; rsr/early_stop.py).
    budget: str = "uniform"
    # proportional: no more draws for a prompt with no pass in this many rollouts.
    hopeless: Optional[int] = None
    # Prices of this arm, in currency per million input (prompt) and output
    # (completion) tokens, and per GPU-hour of a run's time (self-hosted
    # engines); a prices file maps arm or model names to them (rsr/costs.py).
    price_in: Optional[float] = None
    price_out: Optional[float] = None
    price_gpu_hour: Optional[float] = None
    prices: Optional[str] = None
    # Cost caps: the ledger's total (what earlier runs spent counts), and a
    # prompt's own token cost in this arm.
    max_cost: Optional[float] = None
    max_cost_per_prompt: Optional[float] = None


@dataclass
class VerifierSection:
    "The verifier that scores rollouts as they arrive (none: score later with rsr verify)."

    name: Optional[str] = None
    options: dict[str, Any] = field(default_factory=dict)
    # Several verifiers in order (math, then judge): each later one scores only
    # what the ones before left undecided; the verdict is stored as
    # "cascade:math>judge" (rsr/verifiers/cascade.py). Instead of name.
    cascade: list[str] = field(default_factory=list)
    workers: int = 0
    # Seconds one check may take in a worker process.
    timeout: float = 10.0


@dataclass
class ExecutorSection:
    """Where requests are served. The section's other keys are the executor's
    own options, which it declares (rsr.executors); in-process has none."""

    name: str = "in-process"


@dataclass
class JobConfig:
    "A whole sampling job: the four sections."

    sampler: SamplerSection = field(default_factory=SamplerSection)
    sampling: SamplingSection = field(default_factory=SamplingSection)
    verifier: VerifierSection = field(default_factory=VerifierSection)
    executor: ExecutorSection = field(default_factory=ExecutorSection)


# The sampler a job uses when it names an endpoint (--base-url) but no sampler.
ENDPOINT_SAMPLER = "openai"

SECTIONS = {f.name: f.type for f in dataclasses.fields(JobConfig)}

# The defaults, as instances to read single values from (SAMPLING.max_rollouts).
SAMPLER = SamplerSection()
SAMPLING = SamplingSection()
VERIFIER = VerifierSection()
EXECUTOR = ExecutorSection()


def defaults() -> dict[str, dict[str, Any]]:
    "Every section's defaults, as the plain dict a configuration is."
    return dataclasses.asdict(JobConfig())


def resolve(config: dict) -> dict[str, dict[str, Any]]:
    """A copy of config with every missing setting filled from the defaults.

    An unknown section or setting is a ConfigError that names it; the
    executor's own options are left for the executor to check
    (rsr.pipeline.with_defaults)."""
    merged = {}
    unknown_sections = set(config) - set(SECTIONS)
    if unknown_sections:
        raise ConfigError(f"Unknown section(s): {', '.join(sorted(unknown_sections))}")
    for section, values in defaults().items():
        given = dict(config.get(section) or {})
        unknown = set(given) - set(values)
        if unknown and section != "executor":
            raise ConfigError(f"Unknown {section} setting(s): {', '.join(sorted(unknown))}")
        merged[section] = {**values, **given}
    return merged

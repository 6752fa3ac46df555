"""Samplers: given a prompt's messages, n and sampling params, return completions.

A sampler is a small class registered through the `register_samplers` hook. It
implements either

- `async complete(request) -> list[Completion]` (API samplers: many requests in
  flight), or
- `complete_batch(requests) -> list[list[Completion]]` with `batch = True`
  (in-process engines that batch internally, such as vLLM),

and may return fewer completions than asked (a server that ignores `n`); the
sampling loop asks again for the rest. Retries, concurrency, early stop, writes
and progress live once, in rsr/sampling/.

A sampler describes itself, so the core never asks for it by name:

- `endpoint = True` when it talks to a server: it then takes `base_url`,
  `api_key`, `timeout` and `transport` (`--base-url`, `--api-key`, ...);
- `Options`, a pydantic model of its own options (rsr.options): each is a flag
  of `rsr sample` and a key under a recipe's `sampler.engine`, validated before
  the sampler is built, and passed to its constructor as keyword arguments;
- `resources(options)`: what one Ray worker running it needs (GPUs), and
  `worker_options(options, num_cpus)`: how it should use the CPUs a worker has;
- `preferred_concurrency(options, step_size)`: the steps in flight its engine
  can hold (an in-process engine fed one step at a time), used when
  `concurrency` is left at its default.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..options import PluginOptions
from ..reasoning import split_reasoning

# The settings an endpoint sampler takes (from the sampler section).
ENDPOINT_SETTINGS = ("base_url", "api_key", "timeout", "transport")

# What an empty answer may hold: the characters schema.sql's trim() removes
# (char(32, 9, 10, 11, 12, 13)) when it tells valid rollouts from empty ones.
WHITESPACE = " \t\n\v\f\r"


@dataclass
class SampleRequest:
    "Ask for n completions of one prompt."

    prompt_id: str
    messages: list
    n: int
    # The request's seed (for engines that take one seed for all n), and one
    # seed per completion (for engines that sample them one by one): each is
    # fixed by its rollout's sample index, so a resumed run draws the same.
    seed: int | None = None
    params: dict = field(default_factory=dict)
    seeds: list | None = None
    # The prompt's metadata (gold answer), for a sampler that scores what it
    # samples where it samples it (Ray workers verifying on their nodes, say).
    metadata: dict | None = None

    def seed_for(self, i):
        "The seed of the i-th completion of this request."
        if self.seeds is not None:
            return self.seeds[i]
        return None if self.seed is None else self.seed + i


@dataclass
class Completion:
    "One completion as the engine returned it."

    response: str | None
    reasoning: str | None = None
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    latency_ms: int | None = None
    seed: int | None = None
    error: str | None = None
    # A Verdict from the run's verifier, when the sampler scored it where it
    # sampled it (see SampleRequest.metadata); the sampling loop scores only
    # completions without one.
    verdict: object = None

    @property
    def truncated(self):
        "True when the engine stopped at the token limit."
        return self.finish_reason == "length"

    @property
    def empty(self):
        "True for an answer with no text (whitespace only, reasoning aside)."
        return self.error is None and not self.truncated and not (self.response or "").strip(WHITESPACE)

    @property
    def valid(self):
        "True when the completion can be scored: an answer, not truncated, no error."
        return self.error is None and not self.truncated and not self.empty


def make_completion(text, reasoning=None, **fields):
    "A Completion with any <think> block in text moved to reasoning."
    thought, final = split_reasoning(text)
    if thought is not None:
        reasoning = "\n\n".join(part for part in (reasoning, thought) if part)
    return Completion(response=final, reasoning=reasoning or None, **fields)


class SamplerOptions(PluginOptions):
    "A sampler's own options (none by default); see rsr.options."


class Sampler:
    "Base class for samplers; see the module docstring."

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    batch: ClassVar[bool] = False
    # True when the sampler's work is requests issued from the event loop (an
    # HTTP client): the loop's one core is then the limit, and an inline
    # verifier is better run in a helper process (rsr.verifiers.offload).
    loop_bound: ClassVar[bool] = False
    # True when it talks to a server and takes ENDPOINT_SETTINGS.
    endpoint: ClassVar[bool] = False
    Options: ClassVar[type[PluginOptions]] = SamplerOptions

    def __init__(self, model: str | None = None, **options: Any) -> None:
        self.model = model
        self.options = options

    async def complete(self, request: SampleRequest) -> list[Completion]:
        raise NotImplementedError

    def complete_batch(self, requests: list[SampleRequest]) -> list[list[Completion]]:
        raise NotImplementedError

    def close(self) -> None:
        "Release connections, engines and memory."

    def describe(self) -> dict[str, Any]:
        "Settings worth recording in each rollout's provenance (no secrets)."
        return {"sampler": self.name, "model": self.model}

    @classmethod
    def resources(cls, options: dict[str, Any]) -> dict[str, float]:
        "What one Ray worker running this sampler with these options needs."
        return {"num_gpus": 0}

    @classmethod
    def preferred_concurrency(cls, options: dict[str, Any], step_size: int) -> int | None:
        """The steps in flight that keep this sampler's engine busy with these
        options, used when `concurrency` is left at its default (None: the default)."""
        return None

    @classmethod
    def worker_options(cls, options: dict[str, Any], num_cpus: float) -> dict[str, Any]:
        "The options a Ray worker with num_cpus CPUs builds this sampler with."
        return options

"""A scoring cascade: several verifiers in order, each later one run only on
what the ones before left undecided.

A cheap rule-based check (`math`) decides most answers; an expensive one (an
LLM `judge`) is asked only where the first could not decide: its verdict is
undecided (passed is None), or a fail in which it read no answer at all
(extracted is None, as `math` says of "no answer found"). The
cascade's verdict is the first decided one (or the last stage's undecided
verdict), stored under its own name, `cascade:math>judge`, so targets, early
stop and export read it like any verifier's. Its details record every stage
that ran (`stages`) and which one decided (`decided_by`): how many calls
each stage took is a count over them (rsr stats).
"""

from __future__ import annotations

import asyncio
from typing import Any, Iterable, Sequence

from .base import Item, Messages, Metadata, Verdict, Verifier, safe_call

PREFIX = "cascade:"


def cascade_name(stages: Sequence[str]) -> str:
    "The verifier name a cascade's verdicts are stored under."
    return PREFIX + ">".join(stages)


def stage_names(name: str) -> list[str]:
    "The stages of a cascade's name (cascade:math>judge -> [math, judge])."
    return name[len(PREFIX):].split(">") if name.startswith(PREFIX) else []


def open_question(verdict: Verdict) -> bool:
    "True when a stage left the rollout for the next: undecided, or failed reading no answer."
    return verdict.passed is None or (not verdict.passed and verdict.extracted is None)


def build(names: Sequence[str], options: dict[str, Any], get: Any) -> "CascadeVerifier":
    """A cascade of the verifiers named, each made by get(name, **options); an
    option STAGE.KEY=VALUE (judge.base_url=URL) configures that stage only."""
    from ..errors import ConfigError

    names = list(names)
    if len(names) < 2 or len(set(names)) != len(names):
        raise ConfigError(f"A cascade needs two or more different verifiers (got {names})")
    per_stage: dict[str, dict[str, Any]] = {name: {} for name in names}
    for key, value in options.items():
        stage, dot, option = key.partition(".")
        if not dot or stage not in per_stage:
            raise ConfigError(f"Verifier option {key!r}: a cascade's options name their stage, "
                              f"e.g. {names[-1]}.{key} (stages: {', '.join(names)})")
        per_stage[stage][option] = value
    return CascadeVerifier([get(name, **per_stage[name]) for name in names])


def _stage_record(name: str, verdict: Verdict) -> dict[str, Any]:
    record = {"verifier": name, "passed": verdict.passed, "score": verdict.score,
              "error": verdict.error}
    if isinstance(verdict.details.get("usage"), dict):  # a judge's tokens
        record["usage"] = verdict.details["usage"]
    return record


class CascadeVerifier(Verifier):
    "Verifiers in order: each later one scores only what the earlier left undecided."

    description = "Verifiers in order, later ones only where earlier ones are undecided"

    def __init__(self, stages: Sequence[Verifier]) -> None:
        self.stages = list(stages)
        self.name = cascade_name([stage.name for stage in self.stages])
        self.is_async = any(stage.is_async or stage.batched for stage in self.stages)
        self.inline = all(stage.inline for stage in self.stages) and not self.is_async
        self.needs_prompt = any(stage.needs_prompt for stage in self.stages)

    def prepare(self) -> None:
        for stage in self.stages:
            stage.prepare()

    @staticmethod
    def combine(names: list[str], verdicts: list[Verdict]) -> Verdict:
        "The cascade's verdict from the stages that ran, in order."
        last = verdicts[-1]
        decided = last if not open_question(last) else None
        details = {"decided_by": names[len(verdicts) - 1] if decided else None,
                   "stages": [_stage_record(n, v) for n, v in zip(names, verdicts)],
                   **{k: v for k, v in last.details.items() if k not in ("stages", "decided_by")}}
        return Verdict(last.passed, last.score, last.extracted, details, last.error)

    def check(self, answer: str, metadata: Metadata, *, prompt: Messages | None = None) -> Verdict:
        names, verdicts = [s.name for s in self.stages], []
        for stage in self.stages:
            verdicts.append(safe_call(stage, answer, metadata, prompt))
            if not open_question(verdicts[-1]):
                break
        return self.combine(names, verdicts)

    def _run(self, items: list, runs: list) -> list[Verdict]:
        names = [s.name for s in self.stages]
        return [self.combine(names, stage_verdicts) for stage_verdicts in runs]

    def check_many(self, items: Iterable[Item]) -> list[Verdict]:
        items = list(items)
        runs: list[list[Verdict]] = [[] for _ in items]
        todo = list(range(len(items)))
        for stage in self.stages:
            if not todo:
                break
            for i, verdict in zip(todo, stage.check_many([items[i] for i in todo])):
                runs[i].append(verdict)
            todo = [i for i in todo if open_question(runs[i][-1])]
        return self._run(items, runs)

    async def acheck_many(self, items: Iterable[Item]) -> list[Verdict]:
        items = list(items)
        runs: list[list[Verdict]] = [[] for _ in items]
        todo = list(range(len(items)))
        for stage in self.stages:
            if not todo:
                break
            batch = [items[i] for i in todo]
            if stage.is_async:
                verdicts = await stage.acheck_many(batch)
            else:
                verdicts = await asyncio.to_thread(stage.check_many, batch)
            for i, verdict in zip(todo, verdicts):
                runs[i].append(verdict)
            todo = [i for i in todo if open_question(runs[i][-1])]
        return self._run(items, runs)

    def close(self) -> None:
        for stage in self.stages:
            close = getattr(stage, "close", None)
            if close is not None:
                close()

"""The verifier interface: Verdict, the Verifier base class and the helpers
every verifier shares (safe calls, undecided verdicts, variant names)."""


from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Iterable

from ..errors import ConfigError
from ..reasoning import final_answer

# A prompt's metadata (metadata.answer is the gold answer), its chat messages,
# and one item a verifier scores: (response, metadata, messages).
Metadata = dict[str, Any]
Messages = list[dict[str, Any]]
Item = tuple[Any, Metadata, Any]


@dataclass
class Verdict:
    """What a verifier decided about one response.

    passed is None when the verifier could not decide (unparsable judge reply,
    timeout, error): such a verdict is neither a pass nor a fail.
    """

    passed: bool | None
    score: float | None
    extracted: str | None = None
    details: dict = field(default_factory=dict)
    error: str | None = None

    def astuple(self) -> tuple:
        "A plain tuple, cheap to send between processes."
        return (self.passed, self.score, self.extracted, self.details, self.error)


def undecided(error: str, **details: Any) -> Verdict:
    "A verdict that is neither pass nor fail, with the reason recorded."
    return Verdict(None, None, None, details, error)


class Verifier:
    """Base class: subclasses set name and description and implement check().

    __call__ strips reasoning first, so check() only ever sees the final answer.
    check_many() scores a list of (response, metadata, prompt) items; verifiers
    with a batched backend (a reward model) override it, and async ones (the
    judge) set is_async and implement acheck_many().
    """

    name: str = ""
    description: str = ""
    # True when check() is fast and pure enough to run on the event loop, with
    # no risk of hanging (so it needs no worker process for a hard timeout).
    inline = True
    # True when the verifier awaits a network backend (acheck_many) instead of
    # computing in-process: it never runs in worker processes.
    is_async = False
    # True when check_many() batches on a backend that lives in this process
    # (a model on a GPU): it never runs in worker processes either.
    batched = False
    # False when check() never reads the prompt: worker processes are then
    # not sent the prompt's messages.
    needs_prompt = True

    def __call__(self, response: str | None, metadata: Metadata | None = None, *,
                 prompt: Messages | None = None) -> Verdict:
        answer = final_answer(response or "")
        return self.check(answer, metadata or {}, prompt=prompt)

    def check(self, answer: str, metadata: Metadata, *, prompt: Messages | None = None) -> Verdict:
        raise NotImplementedError

    # True when the verifier can read an answer without gold and compare two of
    # them (vote_answer, same_answer): what rsr label --majority needs.
    can_vote = False

    def vote_answer(self, answer: str, metadata: Metadata, *,
                    prompt: Messages | None = None) -> str | None:
        "The answer a final answer votes for (no gold needed), or None when it names none."
        raise ConfigError(
            f"Verifier {self.name!r} cannot vote: it reads no answer without gold "
            "(majority labels work with math, mcq, mcq-multi and exact)"
        )

    def same_answer(self, first: str, second: str) -> bool:
        "Whether two voted answers are one vote (the verifier's own equivalence)."
        return first == second

    def prepare(self) -> None:
        """Called once before scoring starts; raises an RsrError when the verifier
        cannot run here (the code verifier without a sandbox)."""

    def check_many(self, items: Iterable[Item]) -> list[Verdict]:
        "Verdicts for [(response, metadata, prompt)], a verifier bug recorded as an error."
        return [safe_call(self, *item) for item in items]

    async def acheck_many(self, items: Iterable[Item]) -> list[Verdict]:
        "Async verdicts; the default computes them in a thread."
        import asyncio

        return await asyncio.to_thread(self.check_many, list(items))

    def configure(self, **options: Any) -> Verifier:
        "A configured copy; verifiers that take options override this."
        raise ConfigError(
            f"Verifier {self.name!r} takes no options (got {', '.join(sorted(options))})"
        )

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


def safe_call(verifier: Verifier, response: str | None, metadata: Metadata,
              prompt: Messages | None = None) -> Verdict:
    "verifier(response, metadata), with any exception recorded as an undecided verdict."
    try:
        return verifier(response, metadata, prompt=prompt)
    except Exception as ex:  # a verifier bug must be recorded, not end the run
        return undecided(f"{type(ex).__name__}: {ex}", reason="verifier raised")


def variant_name(base: str, options: dict[str, Any], ignore: Iterable[str] = ()) -> str:
    """The deterministic name of a configured verifier: base:key=value,...

    Options in ignore (endpoints, keys, concurrency) do not change verdicts and
    are left out; long values are shortened to a hash so names stay readable.
    """
    parts = []
    for key in sorted(options):
        value = options[key]
        if key in ignore or value is None or value is False:
            continue
        if value is True:
            parts.append(key)
            continue
        text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
        if len(text) > 40 or any(c in text for c in ",=\n"):
            text = "sha1-" + hashlib.sha1(text.encode()).hexdigest()[:10]
        parts.append(f"{key}={text}")
    return base + (":" + ",".join(parts) if parts else "")

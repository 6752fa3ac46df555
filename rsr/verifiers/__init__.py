"""Verifiers: pure functions of (response, prompt metadata) to a Verdict.

The same verifiers grade rollouts in `rsr sample` and `rsr verify` and serve as
reward functions in RL trainers (verl, TRL GRPO, open-instruct)::

    from rsr.verifiers import get_verifier
    verdict = get_verifier("math")(r"so the answer is \\boxed{\\frac12}", {"answer": "0.5"})
    verdict.passed, verdict.score, verdict.extracted, verdict.details

    from rsr.verifiers import verify_batch
    verdicts = verify_batch("math", responses, [{"answer": a} for a in golds], workers=2)

Every verifier reads the final answer only: `__call__` strips the reasoning
(`<think>` blocks and the like) before `check()` sees the text. `passed` is None
when the verifier could not decide (a timeout, an unparsable judge reply); such
a verdict is neither a pass nor a fail.
"""

import hashlib
import json
from dataclasses import dataclass, field

from ..errors import ConfigError
from ..reasoning import final_answer


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

    def astuple(self):
        "A plain tuple, cheap to send between processes."
        return (self.passed, self.score, self.extracted, self.details, self.error)


def undecided(error, **details) -> Verdict:
    "A verdict that is neither pass nor fail, with the reason recorded."
    return Verdict(None, None, None, details, error)


class Verifier:
    """Base class: subclasses set name and description and implement check().

    __call__ strips reasoning first, so check() only ever sees the final answer.
    check_many() scores a list of (response, metadata, prompt) items; verifiers
    with a batched backend (a reward model) override it, and async ones (the
    judge) set is_async and implement acheck_many().
    """

    name = ""
    description = ""
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

    def __call__(self, response, metadata=None, *, prompt=None) -> Verdict:
        answer = final_answer(response or "")
        return self.check(answer, metadata or {}, prompt=prompt)

    def check(self, answer, metadata, *, prompt=None) -> Verdict:
        raise NotImplementedError

    # True when the verifier can read an answer without gold and compare two of
    # them (vote_answer, same_answer): what rsr label --majority needs.
    can_vote = False

    def vote_answer(self, answer, metadata, *, prompt=None) -> str | None:
        "The answer a final answer votes for (no gold needed), or None when it names none."
        raise ConfigError(
            f"Verifier {self.name!r} cannot vote: it reads no answer without gold "
            "(majority labels work with math, mcq, mcq-multi and exact)"
        )

    def same_answer(self, first, second) -> bool:
        "Whether two voted answers are one vote (the verifier's own equivalence)."
        return first == second

    def prepare(self):
        """Called once before scoring starts; raises an RsrError when the verifier
        cannot run here (the code verifier without a sandbox)."""

    def check_many(self, items) -> list:
        "Verdicts for [(response, metadata, prompt)], a verifier bug recorded as an error."
        return [safe_call(self, *item) for item in items]

    async def acheck_many(self, items) -> list:
        "Async verdicts; the default computes them in a thread."
        import asyncio

        return await asyncio.to_thread(self.check_many, items)

    def configure(self, **options):
        "A configured copy; verifiers that take options override this."
        raise ConfigError(
            f"Verifier {self.name!r} takes no options (got {', '.join(sorted(options))})"
        )

    def __repr__(self):
        return f"<{type(self).__name__} {self.name!r}>"


def safe_call(verifier, response, metadata, prompt=None) -> Verdict:
    "verifier(response, metadata), with any exception recorded as an undecided verdict."
    try:
        return verifier(response, metadata, prompt=prompt)
    except Exception as ex:  # a verifier bug must be recorded, not end the run
        return undecided(f"{type(ex).__name__}: {ex}", reason="verifier raised")


def variant_name(base, options, ignore=()):
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


def is_user_spec(name):
    "True for a user's own `path.py:function`."
    return ":" in name and name.rsplit(":", 1)[0].endswith(".py")


def get_verifier(name, **options) -> Verifier:
    "The registered verifier called name (options configure it), or a user's path.py:func."
    from .. import plugins

    if is_user_spec(name):
        from .user import UserFunctionVerifier

        verifier = UserFunctionVerifier(name)
    else:
        verifier = plugins.pick(plugins.get_verifiers(), name, "verifier", "rsr verifiers")
    options = {key: value for key, value in options.items() if value is not None}
    if options:
        verifier = verifier.configure(**options)
    return verifier


def list_verifiers():
    "[(name, description)] for every registered verifier, sorted by name."
    from .. import plugins

    return sorted((name, v.description) for name, v in plugins.get_verifiers().items())


def verify_batch(verifier, responses, metadatas, prompts=None, *, workers=0, timeout=None,
                 **options) -> list:
    """Verdicts for many responses at once.

    verifier is a Verifier or a name for get_verifier (options configure it);
    metadatas is one dict per response (or one dict for all); workers > 0 checks
    in that many processes, each check under a hard timeout in seconds.
    """
    from ..verification import Scorer

    if isinstance(verifier, str):
        verifier = get_verifier(verifier, **options)
    if isinstance(metadatas, dict):
        metadatas = [metadatas] * len(responses)
    prompts = prompts if prompts is not None else [None] * len(responses)
    if not len(responses) == len(metadatas) == len(prompts):
        raise ConfigError("verify_batch needs as many metadatas (and prompts) as responses")
    scorer = Scorer(verifier, workers=workers, timeout=timeout)
    try:
        return scorer.score(list(zip(responses, metadatas, prompts)))
    finally:
        scorer.close()


def reward_function(verifier, answer_field="answer", *, workers=0, timeout=None, **options):
    """A reward function in the shape TRL's GRPOTrainer calls:
    reward(completions, **columns) -> [float], with the gold answer read from the
    dataset column answer_field. Undecided verdicts score 0.0."""
    if isinstance(verifier, str):
        verifier = get_verifier(verifier, **options)

    def reward(completions, **columns):
        texts = [
            c[-1]["content"] if isinstance(c, list) else c  # conversational completions
            for c in completions
        ]
        golds = columns.get(answer_field) or [None] * len(texts)
        metadatas = [{"answer": gold} for gold in golds]
        verdicts = verify_batch(verifier, texts, metadatas, workers=workers, timeout=timeout)
        return [float(v.score) if v.score is not None else 0.0 for v in verdicts]

    reward.__name__ = f"rsr_{verifier.name}".replace("-", "_").replace(":", "_")
    return reward


__all__ = [
    "Verdict", "Verifier", "get_verifier", "list_verifiers", "verify_batch",
    "reward_function", "undecided", "variant_name",
]

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

from ..errors import ConfigError
from ..config import VERIFIER
from .base import Verdict, Verifier, safe_call, undecided, variant_name
from .scorer import Scorer


def is_user_spec(name):
    "True for a user's own `path.py:function`."
    return ":" in name and name.rsplit(":", 1)[0].endswith(".py")


def get_verifier(name, **options) -> Verifier:
    """The registered verifier called name (options configure it), a user's
    path.py:func, or a cascade, cascade:a>b (options STAGE.KEY configure a stage)."""
    from .. import plugins
    from . import cascade

    if name.startswith(cascade.PREFIX):
        return cascade.build(cascade.stage_names(name), options, get_verifier)

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


def verify_batch(verifier, responses, metadatas, prompts=None, *, workers=VERIFIER.workers,
                 timeout=None,
                 **options) -> list:
    """Verdicts for many responses at once.

    verifier is a Verifier or a name for get_verifier (options configure it);
    metadatas is one dict per response (or one dict for all); workers > 0 checks
    in that many processes, each check under a hard timeout in seconds.
    """
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


def reward_function(verifier, answer_field="answer", *, workers=VERIFIER.workers, timeout=None,
                    **options):
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
    "Scorer", "Verdict", "Verifier", "safe_call", "get_verifier", "list_verifiers", "verify_batch",
    "reward_function", "undecided", "variant_name",
]

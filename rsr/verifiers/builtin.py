"""The built-in verifiers, registered as a plugin: exact, mcq, mcq-multi, math,
code, judge and reward-model."""

import re

from ..hookspecs import hookimpl
from .base import Verdict, Verifier
from .code import CodeVerifier
from .judge import JudgeVerifier
from .maths import MathVerifier
from .mcq import MultipleChoice, MultipleChoiceMulti
from .reward_model import RewardModelVerifier


def _normalize(text):
    return re.sub(r"\s+", " ", str(text)).strip().rstrip(".").lower()


class ExactMatch(Verifier):
    "Passes when the final answer, whitespace and case folded, equals metadata.answer."

    name = "exact"
    description = "Final answer equals the gold answer after whitespace/case folding"

    def check(self, answer, metadata, *, prompt=None):
        gold = metadata.get("answer")
        if gold is None:
            return Verdict(None, None, answer, {"reason": "no gold answer"}, "no gold answer")
        passed = _normalize(answer) == _normalize(gold)
        return Verdict(passed, float(passed), answer, {"gold": str(gold)})

    can_vote = True

    def vote_answer(self, answer, metadata, *, prompt=None):
        return _normalize(answer) or None


@hookimpl
def register_verifiers(register):
    register(ExactMatch())
    register(MultipleChoice())
    register(MultipleChoiceMulti())
    register(MathVerifier())
    register(CodeVerifier())
    register(JudgeVerifier())
    register(RewardModelVerifier())

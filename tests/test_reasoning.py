"""Splitting reasoning from the final answer, for every format reasoning models emit."""

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from verifier_gen.maths import KINDS, SURFACES, fill
from verifier_gen.wrappers import CUT_WRAPPERS, WRAPPERS

from rsr.reasoning import final_answer, split_reasoning
from rsr.verifiers import get_verifier

FINAL = "So the answer is $\\boxed{12}$.\nAnswer: 12"
THOUGHT = "Let me try 7.\nAnswer: 7 maybe. The answer is \\boxed{7}?"


@pytest.mark.parametrize("name,wrap", WRAPPERS, ids=[w[0] for w in WRAPPERS])
def test_split_reasoning_every_wrapper(name, wrap):
    reasoning, final = split_reasoning(wrap(FINAL, THOUGHT))
    assert final.endswith(FINAL) and "7" not in final
    if name in ("none", "reasoning_content", "think-empty"):
        assert reasoning is None
    else:
        assert "The answer is \\boxed{7}?" in reasoning


@pytest.mark.parametrize("name,cut", CUT_WRAPPERS, ids=[w[0] for w in CUT_WRAPPERS])
def test_split_reasoning_cut_inside_reasoning_has_empty_final(name, cut):
    reasoning, final = split_reasoning(cut(THOUGHT))
    assert final == ""
    assert "\\boxed{7}" in reasoning


@pytest.mark.parametrize("text,expected", [
    ("Plain answer: 12", (None, "Plain answer: 12")),
    ("", (None, "")),
    ("Before <think>cut off here", ("cut off here", "Before")),
    ("<think>a</think>b<think>c</think>d", ("a\n\nc", "bd")),
    ("Reasoning: the answer is 5 here", (None, "Reasoning: the answer is 5 here")),
    ("Thinking: try 3.\nAnswering that, 4.\nFinal answer: 5", ("try 3.\nAnswering that, 4.", "Final answer: 5")),
    ("The analysis shows assistantfinal is a word", (None, "The analysis shows assistantfinal is a word")),
    ("<|channel|>analysis<|message|>x<|end|><|start|>assistant<|channel|>commentary<|message|>y<|end|>"
     "<|start|>assistant<|channel|>final<|message|>z", ("x\n\ny", "z")),
    ("<answer>4</answer>", (None, "4")),
])
def test_split_reasoning_edges(text, expected):
    assert split_reasoning(text) == expected


def test_split_reasoning_none():
    assert split_reasoning(None) == (None, None)
    assert final_answer("<think>x</think> y") == "y"


# ------------------------------------------------------------ properties

MATH = get_verifier("math")
kinds = st.sampled_from(KINDS)
surfaces = st.sampled_from([s for s in SURFACES if s[1] != "json"])


@st.composite
def answered(draw):
    "(final text, gold, expected) for a right rendering or a near miss of some gold."
    kind, gold, renderings, misses = draw(kinds)
    right = draw(st.booleans())
    rendering = draw(st.sampled_from(renderings if right else misses))
    other = draw(st.sampled_from(misses if right else renderings))
    name, mode, template = draw(surfaces)
    text = fill(template, mode, rendering, other)
    assume(text is not None)  # prose renderings have no place inside LaTeX
    return text, gold, right, other


SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(answered())
def test_any_gold_in_any_surface_form_gets_the_right_verdict(case):
    text, gold, right, _ = case
    assert MATH(text, {"answer": gold}).passed is right


@SETTINGS
@given(answered(), st.sampled_from(WRAPPERS))
def test_any_wrapper_leaves_the_math_verdict_unchanged(case, wrapper):
    text, gold, _, other = case
    alone = MATH(text, {"answer": gold})
    wrapped = MATH(wrapper[1](text, f"Perhaps \\boxed{{{other}}}. The answer is {other}."), {"answer": gold})
    assert (wrapped.passed, wrapped.extracted) == (alone.passed, alone.extracted)


@SETTINGS
@given(answered(), st.sampled_from(CUT_WRAPPERS))
def test_an_answer_only_inside_reasoning_never_counts(case, cut):
    text, gold, right, other = case
    assert MATH(cut[1](text), {"answer": gold}).passed is not True
    # A closed reasoning block holding the right answer and a wrong final one.
    if right:
        wrong_final = fill("The final answer is {a}.", "text", other, "0")
        for _, wrap in WRAPPERS[2:]:
            assert MATH(wrap(wrong_final, text), {"answer": gold}).passed is False

"""The verifier corpus: hand-written (response, gold, expected) cases for every
trap the verifiers must handle, and the MATH-500 reference solutions."""

import json
from pathlib import Path

import pytest
from helpers import data_file

from rsr.verifiers import get_verifier
from rsr.verifiers.maths import compare

CORPUS = Path(__file__).parent / "verifier_corpus"


def load(name):
    return [json.loads(line) for line in (CORPUS / name).read_text().splitlines()]


def case_id(case):
    return case["trap"]


def run_case(verifier, case):
    metadata = {"answer": case["gold"], **case.get("metadata", {})}
    prompt = [{"role": "user", "content": case["prompt"]}] if case.get("prompt") else None
    return verifier(case["response"], metadata, prompt=prompt)


def test_corpus_size_and_coverage():
    cases = {name: load(f"{name}.jsonl") for name in ("mcq", "mcq_multi", "math")}
    assert sum(len(c) for c in cases.values()) >= 300
    for name, found in cases.items():
        expected = {c["expected"] for c in found}
        assert {True, False} <= expected, f"{name} needs passing and failing cases"


@pytest.mark.parametrize("case", load("mcq.jsonl"), ids=case_id)
def test_corpus_mcq(case):
    verdict = run_case(get_verifier("mcq"), case)
    assert verdict.passed is case["expected"], (verdict.extracted, verdict.details)


@pytest.mark.parametrize("case", load("mcq_multi.jsonl"), ids=case_id)
def test_corpus_mcq_multi(case):
    verdict = run_case(get_verifier("mcq-multi"), case)
    assert verdict.passed is case["expected"], (verdict.extracted, verdict.details)
    partial = run_case(get_verifier("mcq-multi", partial=True), case)
    assert partial.passed is case["expected"]
    if case["partial_score"] is None:  # undecided: no score at all
        assert partial.score is None
    else:
        assert partial.score == pytest.approx(case["partial_score"])


@pytest.mark.parametrize("case", load("math.jsonl"), ids=case_id)
def test_corpus_math(case):
    verdict = run_case(get_verifier("math"), case)
    assert verdict.passed is case["expected"], (verdict.extracted, verdict.details, verdict.error)
    if case["expected"] is None:
        assert verdict.error, "an undecided math verdict records why"


def math500():
    return [json.loads(line) for line in data_file("math500.jsonl").read_text().splitlines()]


def test_math500_reference_solutions_verify_against_their_gold():
    rows = math500()
    verifier = get_verifier("math")
    failed = [r["id"] for r in rows if verifier(r["metadata"]["solution"], r["metadata"]).passed is not True]
    assert len(rows) == 500
    assert failed == []


def test_math500_shifted_gold_verifies_as_wrong():
    rows = math500()
    verifier = get_verifier("math")
    shifted = same_value = 0
    for row, following in zip(rows, rows[1:] + rows[:1]):
        gold, other = row["metadata"]["answer"], following["metadata"]["answer"]
        if compare(gold, other)[0]:
            same_value += 1  # neighbours that share an answer (7 and 7, 5 and x=5)
            continue
        verdict = verifier(row["metadata"]["solution"], {"answer": other})
        assert verdict.passed is False, (row["id"], gold, other, verdict.details)
        shifted += 1
    assert shifted >= 490 and same_value <= 10

"""The `math` verifier on generated, held-out and real answers, and beside math-verify.

Generated cases come from tests/verifier_gen/maths.py (answer kinds x surface
forms x reasoning wrappers x languages, near misses, undecided forms); the
held-out file was written from how models answer, before the verifier was
changed to read it; math_real.jsonl holds answers of the embedded model.
"""

import ast
import collections
import json
from pathlib import Path

import pytest
from helpers import data_file
from verifier_gen import math_report
from verifier_gen.maths import KINDS, SURFACES, cases
from verifier_gen.wrappers import CUT_WRAPPERS, WRAPPERS

from rsr.reasoning import ANSWER_MARKERS, REASONING_MARKERS
from rsr.verifiers import get_verifier, safe_call

CORPUS = Path(__file__).parent / "verifier_corpus"
RSR = Path(__file__).parent.parent / "rsr"


def load(name):
    path = CORPUS / name
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def verdict(case):
    return safe_call(get_verifier("math"), case["response"], {"answer": case["gold"]})


@pytest.fixture(scope="module")
def generated():
    return cases()


@pytest.fixture(scope="module")
def generated_verdicts(generated):
    return [verdict(case) for case in generated]


def test_generated_math_corpus_covers_kinds_surfaces_wrappers(generated):
    assert len(generated) >= 1800
    kinds = collections.Counter(c["kind"] for c in generated)
    assert set(kinds) == {k[0] for k in KINDS} and len(kinds) >= 20
    assert min(kinds.values()) >= 30
    assert {c["surface"] for c in generated} >= {s[0] for s in SURFACES}
    wrappers = collections.Counter(c["wrapper"] for c in generated)
    assert set(wrappers) >= {w[0] for w in WRAPPERS} | {w[0] for w in CUT_WRAPPERS}
    assert {c["expected"] for c in generated} == {True, False, None}
    assert sum(c["expected"] is False for c in generated) >= 600  # near misses


def test_generated_math_accuracy(generated, generated_verdicts):
    wrong = collections.Counter()
    examples = []
    for case, got in zip(generated, generated_verdicts):
        if got.passed is not case["expected"]:
            wrong[case["kind"]] += 1
            examples.append((case["trap"], case["expected"], got.passed, got.extracted))
    total = collections.Counter(c["kind"] for c in generated)
    assert sum(wrong.values()) <= 0.005 * len(generated), examples[:20]
    for kind, count in total.items():
        assert wrong[kind] <= 0.01 * count + 1, (kind, [e for e in examples if e[0].startswith(kind)][:10])


def test_undecided_math_verdicts_say_why(generated, generated_verdicts):
    for case, got in zip(generated, generated_verdicts):
        if case["expected"] is None and got.passed is None:
            assert got.error and got.details["reason"] == got.error


@pytest.mark.parametrize("case", load("math_heldout.jsonl"), ids=lambda c: c["trap"])
def test_heldout_math(case):
    got = verdict(case)
    assert got.passed is case["expected"], (got.extracted, got.details, got.error)


@pytest.mark.parametrize("case", load("math_real.jsonl"), ids=lambda c: c["trap"])
def test_real_math(case):
    got = verdict(case)
    assert got.passed is case["expected"], (got.extracted, got.details, got.error)


def code_strings():
    "Every string literal in rsr/ that is not a docstring: where a special case would live."
    found = []
    for path in RSR.rglob("*.py"):
        tree = ast.parse(path.read_text())
        docstrings = {
            id(node.body[0].value) for node in ast.walk(tree)
            if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef))
            and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)
        }
        found += [n.value for n in ast.walk(tree)
                  if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docstrings]
    return "\n".join(found)


def test_no_case_string_appears_in_rsr(generated):
    source = code_strings()
    assert "\\boxed" in source  # the literals are really read
    strings = set()
    for case in generated + load("math.jsonl") + load("math_heldout.jsonl") + load("math_real.jsonl"):
        strings.add(case["response"])
        strings.update(line.strip() for line in case["response"].splitlines())
        strings.add(case["gold"])
    markers = {m for pair in REASONING_MARKERS + ANSWER_MARKERS for m in pair}
    found = [s for s in strings if len(s) >= 16 and s in source and s not in markers]
    assert found == []


# ------------------------------------------------------------ math-verify


def test_math_rsr_at_least_math_verify_on_every_kind():
    pytest.importorskip("math_verify")
    table = math_report.accuracy()
    assert len(table) >= 25
    behind = {key: counts for key, counts in table.items() if counts[1] < counts[2]}
    assert behind == {}
    cases, right, _ = table[("all", "")]
    assert right >= 0.995 * cases


def test_math500_golds_rerendered_verify():
    rows = [json.loads(line) for line in data_file("math500.jsonl").read_text().splitlines()]
    verifier = get_verifier("math")
    failed = []
    for i, row in enumerate(rows):
        gold = row["metadata"]["answer"]
        name, wrap = WRAPPERS[i % len(WRAPPERS)]
        for text in (f"The final answer is ${gold}$.", f"So the answer is $\\boxed{{{gold}}}$.\n\nCheck: 1 + 1 = 2."):
            got = verifier(wrap(text, "Maybe \\boxed{0}."), {"answer": gold})
            if got.passed is not True:
                failed.append((row["id"], name, gold, got.extracted, got.details.get("reason")))
    assert failed == []


PATHOLOGICAL = {
    "huge exponent": ("\\boxed{2^{99999999}}", None),
    "exponent tower": ("The answer is $10^{10^{10}}$.", None),
    "factorial of an expression": ("\\boxed{(10^{6})!}", None),
    "50,000 digits": ("\\boxed{" + "9" * 50_000 + "}", None),
    "deep braces": ("\\boxed{" + "{" * 3000 + "1" + "}" * 3000 + "}", None),
    "deep fractions": ("\\boxed{" + "\\frac{1}{" * 200 + "2" + "}" * 200 + "}", None),
    "50,000 characters of prose": ("We try 3. " * 5000 + "So the answer is 12.", True),
    "50,000 spaces": (" " * 50_000 + "12", True),
    "long heading": ("## Answer" + " " * 50_000 + "12", True),
    "10,000 unclosed boxes": ("\\boxed{" * 10_000, False),
    "unclosed think, 50,000 characters": ("<think>" + "12 " * 16_000, None),
    "nested think tags": ("<think>" * 3000 + "7" + "</think>" * 3000 + "Answer: 12", True),
}


def test_pathological_math_inputs_end_with_a_recorded_reason():
    texts = [text for text, _ in PATHOLOGICAL.values()]
    from rsr.verifiers import verify_batch

    verdicts = verify_batch("math", texts, {"answer": "12"}, workers=1, timeout=10)
    for (name, (_, expected)), got in zip(PATHOLOGICAL.items(), verdicts):
        assert got.passed is expected, (name, got.extracted, got.error)
        if expected is None:
            assert got.error and got.details.get("reason"), name


def test_math_accuracy_table_in_the_docs_is_current():
    pytest.importorskip("math_verify")
    page = (RSR.parent / "docs" / "verifiers.md").read_text()
    start = page.index("from verifier_gen.math_report import accuracy_table")
    start = page.index("]]] -->\n", start) + len("]]] -->\n")
    rendered = page[start : page.index("<!-- [[[end]]] -->", start)]
    assert rendered == math_report.accuracy_table(), "docs/verifiers.md is stale: run cog -r docs/verifiers.md"

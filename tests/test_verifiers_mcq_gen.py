"""mcq and mcq-multi against generated cases, the held-out and real-output files,
and properties: any gold in any surface form is read right, a reasoning wrapper
never changes a verdict, and an answer only inside the reasoning never counts."""

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_verifiers_corpus import run_case
from verifier_gen import mcq as gen
from verifier_gen.mcq_report import accuracy_table
from verifier_gen.wrappers import CUT_WRAPPERS, WRAPPERS

from rsr.verifiers import get_verifier

CORPUS = Path(__file__).parent / "verifier_corpus"
RSR = Path(__file__).parent.parent / "rsr"
GENERATED = gen.cases()
PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def corpus_file(name):
    path = CORPUS / name
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def all_mcq_cases():
    "Every mcq and mcq-multi case: the hand-written files, held-out, real outputs, generated."
    cases = [dict(c, verifier="mcq") for c in corpus_file("mcq.jsonl")]
    cases += [dict(c, verifier="mcq-multi") for c in corpus_file("mcq_multi.jsonl")]
    cases += corpus_file("mcq_heldout.jsonl") + corpus_file("mcq_heldout2.jsonl") + corpus_file("mcq_models.jsonl")
    return cases + corpus_file("mcq_real.jsonl") + GENERATED


def check(case):
    verdict = run_case(get_verifier(case["verifier"]), case)
    assert verdict.passed is case["expected"], (verdict.extracted, verdict.details, verdict.error)
    if case["verifier"] == "mcq-multi" and "partial_score" in case:
        partial = run_case(get_verifier("mcq-multi", partial=True), case)
        if case["partial_score"] is None:
            assert partial.score is None
        else:
            assert partial.score == pytest.approx(case["partial_score"])
    if case["expected"] is None:
        assert verdict.error, "an undecided verdict records why"


def test_generated_cases_cover_every_outcome():
    for name in ("mcq", "mcq-multi"):
        found = [c for c in GENERATED if c["verifier"] == name]
        assert {True, False, None} <= {c["expected"] for c in found}, name
    assert len(GENERATED) >= 1200


@pytest.mark.parametrize("case", GENERATED, ids=[f"{i}-{c['trap'][:60]}" for i, c in enumerate(GENERATED)])
def test_generated(case):
    check(case)


@pytest.mark.parametrize("case", corpus_file("mcq_heldout.jsonl"), ids=lambda c: c["trap"])
def test_heldout(case):
    check(case)


@pytest.mark.parametrize("case", corpus_file("mcq_heldout2.jsonl"), ids=lambda c: c["trap"])
def test_heldout_revisions_and_polarity(case):
    "Self-corrections after an answer, and verdicts after the letters they judge."
    check(case)


@pytest.mark.parametrize("case", corpus_file("mcq_models.jsonl"), ids=lambda c: c["trap"])
def test_model_phrasings(case):
    check(case)


def test_real_outputs():
    "Hand-labelled answers of the embedded model: at least 99.5% right per task."
    for name in ("mcq", "mcq-multi"):
        cases = [c for c in corpus_file("mcq_real.jsonl") if c["verifier"] == name]
        wrong = [c["id"] for c in cases if run_case(get_verifier(name), c).passed is not c["expected"]]
        assert len(wrong) <= 0.005 * len(cases), (name, wrong)


def test_accuracy_table_in_the_docs_is_current():
    "The mcq block of docs/verifiers.md is what cog renders now (the other blocks have their own tests)."
    docs = (RSR.parent / "docs" / "verifiers.md").read_text()
    block = docs.split("from verifier_gen.mcq_report import accuracy_table", 1)[1]
    rendered = block.split("]]] -->\n", 1)[1].split("<!-- [[[end]]] -->", 1)[0]
    assert rendered == accuracy_table(), "docs/verifiers.md is stale: run cog -r docs/verifiers.md"


def test_no_case_is_written_into_the_code():
    source = "\n".join(p.read_text() for p in RSR.rglob("*.py"))
    leaked = {
        line.strip()
        for case in all_mcq_cases()
        for line in case["response"].splitlines()
        if len(line.strip()) >= 16 and " " in line.strip() and line.strip() in source
    }
    assert not leaked


PATHOLOGICAL = {
    "50,000 letters": "A B C D " * 6250,
    "option texts": "Newton Watt " * 4200,
    "table rows": "| A | B |\n" * 5000,
    "labelled lines": "A. Joule\nB. Newton\nC. Watt\nD. Pascal\n" * 1400,
    "answers and negations": "Answer: A. It is not B, so C or D? " * 1400,
    "one long word": "x" * 50_000 + " Answer: B",
}


@pytest.mark.parametrize("name", PATHOLOGICAL)
@pytest.mark.parametrize("verifier", ["mcq", "mcq-multi"])
def test_pathological_inputs_get_a_verdict_with_its_reason(verifier, name):
    "Huge inputs are read (from their tail) and decided; bench/verify_bench.py times them."
    prompt = [{"role": "user", "content": "Unit of force?\nA. Joule\nB. Newton\nC. Watt\nD. Pascal"}]
    verdict = get_verifier(verifier)(PATHOLOGICAL[name], {"answer": "B"}, prompt=prompt)
    assert verdict.details["found_by"] and (verdict.passed is None) == bool(verdict.error)
    if name == "one long word":
        assert verdict.passed is True


# --- properties

OPTION_SET = st.integers(0, len(gen.OPTION_SETS) - 1)
LAYOUT = st.sampled_from([layout for layout in gen.LAYOUTS])


def _case(set_id, layout, response, gold, verifier="mcq", sets=gen.OPTION_SETS):
    question, opts = gen._options(sets[set_id])
    prompt, metadata = gen._prompt(layout, question, opts)
    case = {"verifier": verifier, "response": response, "gold": gold, "metadata": metadata}
    if prompt:
        case["prompt"] = prompt
    return case


def _verdict(case):
    return run_case(get_verifier(case["verifier"]), case)


@PROPERTY
@given(set_id=OPTION_SET, layout=LAYOUT, form=st.sampled_from(gen.SINGLE_FORMS),
       lead=st.sampled_from(gen.LEADS), tail=st.sampled_from(gen.TAILS), data=st.data())
def test_any_gold_in_any_form_is_read(set_id, layout, form, lead, tail, data):
    _, opts = gen._options(gen.OPTION_SETS[set_id])
    letters, texts = [k for k, _ in opts], dict(opts)
    gold = data.draw(st.sampled_from(letters))
    said = data.draw(st.sampled_from(letters))
    wrong = data.draw(st.sampled_from([k for k in letters if k != said]))
    if "{echo}" in lead:
        lead = lead.replace("{echo}", "\n".join(f"{k}. {t}" for k, t in opts)) if "{T}" not in form else ""
    fill = {"W": wrong, "TW": texts[wrong]}
    response = lead.format(**fill) + gen._single(form, said, texts) + tail.format(**fill)
    verdict = _verdict(_case(set_id, layout, response, gold))
    assert verdict.passed is (said == gold), (response, verdict.extracted, verdict.details)


@PROPERTY
@given(set_id=OPTION_SET, layout=LAYOUT, form=st.sampled_from(gen.SINGLE_FORMS + ["No idea, sorry."]),
       wrapper=st.sampled_from(WRAPPERS), reasoning=st.sampled_from(gen.REASONING), data=st.data())
def test_a_reasoning_wrapper_leaves_the_verdict_unchanged(set_id, layout, form, wrapper, reasoning, data):
    _, opts = gen._options(gen.OPTION_SETS[set_id])
    letters, texts = [k for k, _ in opts], dict(opts)
    said, gold, other = (data.draw(st.sampled_from(letters)) for _ in range(3))
    final = gen._single(form, said, texts)
    bare = _verdict(_case(set_id, layout, final, gold))
    wrapped = _verdict(_case(set_id, layout, wrapper[1](final, reasoning.format(W=other)), gold))
    assert (wrapped.passed, wrapped.extracted) == (bare.passed, bare.extracted), wrapper[0]


@PROPERTY
@given(set_id=OPTION_SET, layout=LAYOUT, form=st.sampled_from(gen.SINGLE_FORMS),
       cut=st.sampled_from(CUT_WRAPPERS), wrapper=st.sampled_from(WRAPPERS[2:]), data=st.data())
def test_an_answer_only_in_the_reasoning_never_counts(set_id, layout, form, cut, wrapper, data):
    _, opts = gen._options(gen.OPTION_SETS[set_id])
    letters, texts = [k for k, _ in opts], dict(opts)
    gold = data.draw(st.sampled_from(letters))
    thought = gen._single(form, gold, texts)
    assert _verdict(_case(set_id, layout, cut[1](thought), gold)).passed is None, cut[0]
    response = wrapper[1]("I could not work it out.", thought)
    assert _verdict(_case(set_id, layout, response, gold)).passed is False, wrapper[0]


@PROPERTY
@given(set_id=st.integers(0, len(gen.MULTI_SETS) - 1), layout=LAYOUT,
       form=st.sampled_from(gen.MULTI_FORMS), wrapper=st.sampled_from(WRAPPERS), data=st.data())
def test_any_set_in_any_form_is_read(set_id, layout, form, wrapper, data):
    _, opts = gen._options(gen.MULTI_SETS[set_id])
    letters = [k for k, _ in opts]
    sets = st.lists(st.sampled_from(letters), min_size=1, max_size=len(letters) - 1, unique=True)
    gold, said = sorted(data.draw(sets)), sorted(data.draw(sets))
    fill = gen._multi_fill(said, letters)
    fill["parens"] = gen._parens_and(said)
    response = wrapper[1](form.format(**fill), "Answer: " + ", ".join(letters))
    case = _case(set_id, layout, response, "".join(gold), "mcq-multi", gen.MULTI_SETS)
    verdict = _verdict(case)
    assert verdict.passed is (gold == said), (response, verdict.extracted, verdict.details)
    partial = run_case(get_verifier("mcq-multi", partial=True), case)
    assert partial.score == pytest.approx(len(set(gold) & set(said)) / len(set(gold) | set(said)))

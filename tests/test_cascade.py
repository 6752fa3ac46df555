"""The scoring cascade (--cascade math,judge) against real HTTP servers on
127.0.0.1: a sampler stub, and a judge stub that counts its calls. The judge
is asked only about what math left undecided."""

import json

import pytest
from helpers import write_jsonl
from servers import OpenAIStub

from rsr import open_db
from rsr.verifiers import get_verifier
from rsr.verifiers.base import Verdict
from rsr.verifiers.cascade import CascadeVerifier

# A configured judge names its model; the cascade's name names its stages.
JUDGE = "judge:model=judge-model"
CASCADE = f"cascade:math>{JUDGE}"
ANSWERS = {"boxed": r"so \boxed{4}", "wrong": r"so \boxed{5}", "words": "Hmm, hard to say."}


@pytest.fixture
def ledger(db_path, tmp_path, invoke):
    records = [{"id": name, "question": name, "answer": "4"} for name in ANSWERS]
    invoke("load", db_path, write_jsonl(tmp_path / "prompts.jsonl", records))
    return db_path


def test_judge_is_called_only_on_what_math_left_undecided(ledger, invoke):
    with OpenAIStub(responder=lambda body: ANSWERS[body["messages"][-1]["content"]]) as sampler, \
            OpenAIStub(responder=lambda body: "VERDICT: CORRECT") as judge:
        result = invoke("sample", ledger, "--base-url", sampler.url, "--model", "stub", "--silent",
                        "--cascade", "math,judge", "--max-rollouts", "4", "--step-size", "4",
                        "--verifier-option", "judge.model=judge-model",
                        "--verifier-option", f"judge.base_url={judge.url}")
    assert result.exit_code == 0, result.output
    # 12 rollouts; math reads no answer in the 4 of "words": the judge sees those only.
    assert len(judge.requests) == 4
    assert all("Hmm, hard to say." in r["body"]["messages"][0]["content"] for r in judge.requests)
    db = open_db(ledger)
    rows = db.execute("select r.prompt_id, s.passed, json_extract(s.details, '$.decided_by') "
                      "from scores s join rollouts r on r.id = s.rollout_id "
                      "where s.verifier = ?", [CASCADE]).fetchall()
    assert len(rows) == 12
    assert sorted(set(rows)) == [("boxed", 1, "math"), ("words", 1, JUDGE), ("wrong", 0, "math")]
    # The target reads the cascade's verdict: "words" is satisfied by the judge's pass.
    states = json.loads(invoke("stats", ledger, "--json").stdout)
    assert states["verifier"] == CASCADE
    assert states["prompts"]["satisfied"] == 2
    # The judge stub reports 7 prompt and 5 completion tokens per call.
    assert states["cost"]["cascades"][CASCADE] == [
        {"verifier": "math", "calls": 12, "decided": 8, "prompt_tokens": 0, "completion_tokens": 0},
        {"verifier": JUDGE, "calls": 4, "decided": 4, "prompt_tokens": 28, "completion_tokens": 20}]
    assert "judge:model=judge-model 4 calls (4 decided, 48 tokens)" in invoke("stats", ledger).stdout


def test_cascade_options_must_name_their_stage(ledger, invoke):
    result = invoke("sample", ledger, "--base-url", "http://127.0.0.1:9/v1", "--model", "m",
                    "--silent", "--cascade", "math,judge", "--verifier-option", "model=x")
    assert result.exit_code == 1
    assert "a cascade's options name their stage, e.g. judge.model" in result.stderr


def test_cascade_and_verifier_together_is_refused(ledger, invoke):
    result = invoke("sample", ledger, "--base-url", "http://127.0.0.1:9/v1", "--model", "m",
                    "--silent", "--cascade", "math,exact", "--verifier", "math")
    assert result.exit_code == 1 and "--verifier or --cascade, not both" in result.stderr


class Counting:
    "A stage that records what it was asked and answers as told."

    def __init__(self, name, verdicts):
        self.name, self.verdicts, self.seen = name, verdicts, []
        self.inline, self.is_async, self.batched, self.needs_prompt = True, False, False, False

    def prepare(self):
        pass

    def check_many(self, items):
        self.seen.extend(response for response, _, _ in items)
        return [self.verdicts[response] for response, _, _ in items]


def test_cascade_in_process_passes_on_only_open_questions():
    first = Counting("a", {"x": Verdict(True, 1.0, "x"), "y": Verdict(None, None),
                           "z": Verdict(False, 0.0, None)})
    second = Counting("b", {"y": Verdict(False, 0.0, "no"), "z": Verdict(True, 1.0, "yes")})
    cascade = CascadeVerifier([first, second])
    verdicts = cascade.check_many([("x", {}, None), ("y", {}, None), ("z", {}, None)])
    assert second.seen == ["y", "z"]
    assert [(v.passed, v.details["decided_by"]) for v in verdicts] == [
        (True, "a"), (False, "b"), (True, "b")]
    assert cascade.name == "cascade:a>b"


def test_cascade_of_real_verifiers_reads_final_answers():
    cascade = CascadeVerifier([get_verifier("math"), get_verifier("exact")])
    verdict = cascade("<think>boxed{5}</think>no number here", {"answer": "no number here"})
    assert (verdict.passed, verdict.details["decided_by"]) == (True, "exact")


def test_verify_scores_an_existing_ledger_with_a_cascade(db_path, invoke):
    from helpers import add_prompt, add_rollout

    db = open_db(db_path)
    add_prompt(db, "p", "What is 2+2?", "4")
    for i, text in enumerate([r"\boxed{4}", "Hmm, hard to say.", r"\boxed{5}", "No idea at all."]):
        add_rollout(db, "p", i, text)
    with OpenAIStub(responder=lambda body: "VERDICT: INCORRECT") as judge:
        result = invoke("verify", db_path, "--verifier", "cascade:math>judge", "--silent",
                        "--verifier-option", "judge.model=judge-model",
                        "--verifier-option", f"judge.base_url={judge.url}")
    assert result.exit_code == 0, result.output
    assert len(judge.requests) == 2
    rows = open_db(db_path).execute(
        "select r.sample_index, s.passed, json_extract(s.details, '$.decided_by') from scores s "
        "join rollouts r on r.id = s.rollout_id where s.verifier = ? order by 1", [CASCADE]).fetchall()
    assert rows == [(0, 1, "math"), (1, 0, JUDGE), (2, 0, "math"), (3, 0, JUDGE)]

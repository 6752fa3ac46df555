"""The `judge` verifier against a real HTTP server on 127.0.0.1, and end to end
against python -m llama_cpp.server on the embedded model."""

import json

import pytest
from helpers import add_prompt, add_rollout

from rsr import open_db
from rsr.client import RetryPolicy
from rsr.verification import Scorer
from rsr.verifiers import get_verifier
from rsr.verifiers.judge import REASK_MESSAGE, parse_verdict

FAST_RETRY = RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.05)
PROMPT = [{"role": "user", "content": "What is 2+2?"}]


def judge(url, **options):
    return get_verifier("judge", model="stub-model", base_url=url, retry=FAST_RETRY, **options)


@pytest.mark.parametrize("reply, expected", [
    ("The answer matches.\nVERDICT: CORRECT", True),
    ("Wrong result.\nverdict: incorrect", False),
    ("**VERDICT: CORRECT**", True),
    ("<think>VERDICT: INCORRECT</think>\nVERDICT: CORRECT", True),
    ("VERDICT: CORRECT\nVERDICT: INCORRECT", None),
    ("The answer is correct.", None),
    ("VERDICT: PROBABLY CORRECT", None),
    ("<think>VERDICT: CORRECT</think>", None),
    ("", None),
])
def test_parse_verdict_is_strict(reply, expected):
    assert parse_verdict(reply) is expected


def test_judge_parsable_verdicts(openai_stub):
    openai_stub.responder = lambda body: (
        "VERDICT: CORRECT" if "Answer to grade:\n4" in body["messages"][0]["content"] else "VERDICT: INCORRECT")
    with Scorer(judge(openai_stub.url)) as scorer:
        verdicts = scorer.score([("<think>hmm 5</think>4", {"answer": "4"}, PROMPT),
                                 ("5", {"answer": "4"}, PROMPT)])
    assert [(v.passed, v.score, v.extracted) for v in verdicts] == [
        (True, 1.0, "CORRECT"), (False, 0.0, "INCORRECT")]
    sent = openai_stub.requests[0]["body"]
    assert sent["model"] == "stub-model" and sent["temperature"] == 0.0
    content = " ".join(r["body"]["messages"][0]["content"] for r in openai_stub.requests)
    assert "What is 2+2?" in content and "Reference answer" in content
    assert "hmm" not in content  # the judged response's reasoning is stripped


def test_judge_reasks_an_unparsable_reply(openai_stub):
    openai_stub.script.extend([{"choices": ["I think it is fine."]}, {"choices": ["VERDICT: CORRECT"]}])
    verdict = judge(openai_stub.url)("4", {"answer": "4"}, prompt=PROMPT)
    assert (verdict.passed, verdict.details["asks"]) == (True, 2)
    second = openai_stub.requests[1]["body"]["messages"]
    assert [m["role"] for m in second] == ["user", "assistant", "user"]
    assert second[1]["content"] == "I think it is fine." and second[2]["content"] == REASK_MESSAGE


def test_judge_stores_undecided_after_reasks_run_out(openai_stub, db_path):
    openai_stub.responder = lambda body: "Looks right to me!"
    db = open_db(db_path)
    add_prompt(db, "p", "What is 2+2?", "4")
    rollout = add_rollout(db, "p", 0, "4")
    from rsr.verification import verify_rollouts

    with Scorer(judge(openai_stub.url, reasks=2)) as scorer:
        counts = verify_rollouts(db, scorer)
    assert (counts.passed, counts.failed, counts.undecided) == (0, 0, 1)
    assert len(openai_stub.requests) == 3  # the first ask and two re-asks
    passed, error, details = db.execute(
        "select passed, error, details from scores where rollout_id = ?", [rollout]).fetchone()
    assert passed is None and error == "unparsable judge verdict after 3 asks"
    assert json.loads(details)["replies"] == ["Looks right to me!"] * 3
    assert db.execute("select passed, failed, unparsed from verdicts").fetchone() == (0, 0, 1)


def test_judge_retries_429_with_the_shared_client(openai_stub):
    openai_stub.script.extend([{"status": 429, "headers": {"Retry-After": "0"}},
                               {"status": 503}, {"choices": ["VERDICT: INCORRECT"]}])
    verdict = judge(openai_stub.url)("5", {"answer": "4"}, prompt=PROMPT)
    assert verdict.passed is False
    assert len(openai_stub.requests) == 3


def test_judge_request_that_keeps_failing_is_undecided(openai_stub):
    openai_stub.script.extend([{"status": 429}] * 3)
    verdict = judge(openai_stub.url)("5", {"answer": "4"}, prompt=PROMPT)
    assert verdict.passed is None
    assert verdict.error.startswith("judge request failed: HTTP 429")


def test_judge_user_template_from_a_file(openai_stub, tmp_path):
    template = tmp_path / "judge.txt"
    template.write_text("Q={question} GOLD={answer} A={response}\nEnd with VERDICT: CORRECT or INCORRECT")
    openai_stub.responder = lambda body: "VERDICT: CORRECT"
    verifier = judge(openai_stub.url, template=str(template))
    assert verifier.name.startswith("judge:model=stub-model,template=sha1-")
    assert verifier("4", {"answer": "4"}, prompt=PROMPT).passed is True
    assert openai_stub.requests[0]["body"]["messages"][0]["content"].startswith("Q=What is 2+2? GOLD=4 A=4\n")


def test_judge_concurrency_sends_every_item(openai_stub):
    openai_stub.responder = lambda body: "VERDICT: CORRECT"
    items = [(str(i), {"answer": str(i)}, PROMPT) for i in range(20)]
    with Scorer(judge(openai_stub.url, concurrency=4)) as scorer:
        verdicts = scorer.score(items)
    assert [v.passed for v in verdicts] == [True] * 20
    graded = sorted(r["body"]["messages"][0]["content"].split("Answer to grade:\n")[1].split("\n")[0]
                    for r in openai_stub.requests)
    assert graded == sorted(str(i) for i in range(20))


def test_judge_without_model_says_what_to_pass():
    from rsr.errors import ConfigError

    with pytest.raises(ConfigError, match="model=NAME"):
        get_verifier("judge")("4", {"answer": "4"})


@pytest.mark.slow
def test_judge_end_to_end_with_llama_server(llama_server, db_path, invoke):
    db = open_db(db_path)
    add_prompt(db, "p", "What is 2+2?", "4")
    add_rollout(db, "p", 0, "2+2 is 4.")
    add_rollout(db, "p", 1, "2+2 is 5.")
    options = ["model=smollm2", f"base_url={llama_server}", "reasks=1", "max_tokens=64"]
    result = invoke("verify", db_path, "--verifier", "judge", "--silent",
                    *[arg for option in options for arg in ("--verifier-option", option)])
    assert result.exit_code == 0, result.stderr
    rows = open_db(db_path).execute(
        "select passed, extracted, error, details from scores where verifier = 'judge:max_tokens=64,model=smollm2,reasks=1'"
    ).fetchall()
    assert len(rows) == 2
    for passed, extracted, error, details in rows:
        details = json.loads(details)
        if passed is None:  # a small model may not follow the format: never a pass or fail
            assert error == "unparsable judge verdict after 2 asks" and len(details["replies"]) == 2
        else:
            assert extracted == ("CORRECT" if passed else "INCORRECT")
            assert parse_verdict(details["reply"]) is bool(passed)

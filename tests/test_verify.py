"""`rsr verify` and `rsr verifiers` on real ledgers."""

import json

import pytest
from helpers import add_prompt, add_rollout, add_score

from rsr import open_db

VERDICTS_SQL = "select prompt_id, verifier, passed, failed, unparsed from verdicts order by 1, 2"
SLOW_SQL = "select prompt_id, verifier, passed, failed, unparsed from verifier_progress_slow order by 1, 2"


@pytest.fixture
def ledger(db_path):
    "Two maths prompts: four valid rollouts, one truncated, one errored."
    db = open_db(db_path)
    add_prompt(db, "p1", "2+2?", "4")
    add_prompt(db, "p2", "Half?", r"\frac12")
    ids = {
        "right": add_rollout(db, "p1", 0, r"So \boxed{4}."),
        "wrong": add_rollout(db, "p1", 1, "The answer is 5"),
        "thinks": add_rollout(db, "p1", 2, r"\boxed{5}", reasoning=r"maybe \boxed{4}"),
        "decimal": add_rollout(db, "p2", 0, r"$\boxed{0.5}$"),
        "truncated": add_rollout(db, "p2", 1, r"\boxed{0.5", truncated=1, finish_reason="length"),
        "errored": add_rollout(db, "p2", 2, None, error="HTTP 500"),
    }
    return db_path, ids


def scores(db_path, verifier="math"):
    rows = open_db(db_path).execute(
        "select rollout_id, passed, score, extracted, error from scores where verifier = ? order by 1",
        [verifier]).fetchall()
    return {row[0]: row[1:] for row in rows}


def test_verify_scores_valid_rollouts_and_skips_the_rest(ledger, invoke):
    db_path, ids = ledger
    result = invoke("verify", db_path, "--verifier", "math", "--silent")
    assert (result.exit_code, result.stdout) == (0, "")
    assert result.stderr == (
        "math: 4 scored: 2 passed, 2 failed, 0 undecided (0 errors); "
        "2 truncated, errored or empty rollouts skipped\n"
    )
    found = scores(db_path)
    assert set(found) == {ids["right"], ids["wrong"], ids["thinks"], ids["decimal"]}
    assert found[ids["right"]] == (1, 1.0, "4", None)
    assert found[ids["wrong"]] == (0, 0.0, "5", None)
    assert found[ids["thinks"]][:3] == (0, 0.0, "5")  # the reasoning column is never read
    assert found[ids["decimal"]][:2] == (1, 1.0)
    db = open_db(db_path)
    assert db.execute(VERDICTS_SQL).fetchall() == db.execute(SLOW_SQL).fetchall() == [
        ("p1", "math", 1, 2, 0), ("p2", "math", 1, 0, 0)]
    details = json.loads(db.execute("select details from scores where rollout_id = ?",
                                    [ids["decimal"]]).fetchone()[0])
    assert details == {"gold": r"\frac12", "found_by": "boxed", "reason": "equal rationals"}


def test_verify_resumes_and_leaves_existing_scores(ledger, invoke):
    db_path, ids = ledger
    add_score(open_db(db_path), ids["right"], "math", 0, extracted="kept")
    first = invoke("verify", db_path, "--verifier", "math", "--silent")
    assert first.stderr.startswith("math: 3 scored:")
    assert scores(db_path)[ids["right"]][2] == "kept"
    second = invoke("verify", db_path, "--verifier", "math", "--silent", "--workers", "2")
    assert second.stderr.startswith("math: 0 scored: 0 passed")
    runs = open_db(db_path).execute("select command, status, config from runs order by id").fetchall()
    assert [(r[0], r[1]) for r in runs] == [("verify", "finished"), ("verify", "finished")]
    assert json.loads(runs[1][2])["workers"] == 2


def test_verify_rescore_replaces_scores_and_keeps_counters_right(ledger, invoke):
    db_path, ids = ledger
    add_score(open_db(db_path), ids["right"], "math", 0, extracted="stale")
    result = invoke("verify", db_path, "--verifier", "math", "--rescore", "--silent")
    assert result.stderr.startswith("math: 4 scored: 2 passed, 2 failed")
    assert scores(db_path)[ids["right"]][:3] == (1, 1.0, "4")
    db = open_db(db_path)
    assert db.execute(VERDICTS_SQL).fetchall() == db.execute(SLOW_SQL).fetchall()


def test_verify_small_batches_score_everything(ledger, invoke):
    db_path, _ = ledger
    result = invoke("verify", db_path, "--verifier", "math", "--batch-size", "1", "--silent")
    assert result.stderr.startswith("math: 4 scored:")
    assert len(scores(db_path)) == 4


def test_verify_partial_mcq_multi_has_its_own_name(db_path, invoke):
    db = open_db(db_path)
    add_prompt(db, "q", "Which?\nA. a\nB. b\nC. c\nD. d", "AC")
    rollout = add_rollout(db, "q", 0, "Answer: A, B")
    invoke("verify", db_path, "--verifier", "mcq-multi", "--silent")
    result = invoke("verify", db_path, "--verifier", "mcq-multi", "--verifier-option", "partial=true",
                    "--silent")
    assert result.stderr.startswith("mcq-multi:partial: 1 scored: 0 passed, 1 failed")
    assert scores(db_path, "mcq-multi")[rollout][:3] == (0, 0.0, "AB")
    assert scores(db_path, "mcq-multi:partial")[rollout][:3] == (0, pytest.approx(1 / 3), "AB")


def test_verify_user_function_with_timeout(db_path, invoke, tmp_path):
    checks = tmp_path / "checks.py"
    checks.write_text("def check(answer, metadata):\n"
                      "    if answer == 'hang':\n        return sum(range(10 ** 14)) > 0\n"
                      "    return answer == metadata['answer']\n")
    db = open_db(db_path)
    add_prompt(db, "p", "say 4", "4")
    ok = add_rollout(db, "p", 0, "4")
    hung = add_rollout(db, "p", 1, "hang")
    result = invoke("verify", db_path, "--verifier", f"{checks}:check", "--timeout", "0.5", "--silent")
    assert result.stderr.endswith("2 scored: 1 passed, 0 failed, 1 undecided (1 errors); "
                                  "0 truncated, errored or empty rollouts skipped\n")
    found = scores(db_path, f"{checks}:check")
    assert found[ok][0] == 1
    assert found[hung][0] is None and found[hung][3].startswith("timeout")
    assert open_db(db_path).execute("select unparsed from verdicts").fetchone() == (1,)


def test_verify_records_config_with_secrets_redacted(db_path, invoke):
    open_db(db_path)
    result = invoke("verify", db_path, "--verifier", "judge", "--verifier-option", "model=m",
                    "--verifier-option", "api_key=sk-123",
                    "--silent")
    assert result.exit_code == 0
    config = json.loads(open_db(db_path).execute("select config from runs").fetchone()[0])
    assert config["options"] == {"model": "m", "api_key": "***"}
    assert config["verifier"] == "judge:model=m"


def test_verify_unknown_verifier(db_path, runner):
    from rsr.commands import cli

    open_db(db_path)
    result = runner.invoke(cli, ["verify", db_path, "--verifier", "mahs"])
    assert result.exit_code == 1
    assert result.stderr == "Error: No verifier named 'mahs'; run 'rsr verifiers' to list them\n"


def test_verify_bad_option(db_path, runner):
    from rsr.commands import cli

    open_db(db_path)
    result = runner.invoke(cli, ["verify", db_path, "--verifier", "judge", "--verifier-option", "model"])
    assert result.exit_code == 2
    assert "'model' must look like KEY=VALUE" in result.stderr


def test_verifiers_lists_names_and_descriptions(invoke):
    result = invoke("verifiers")
    lines = result.stdout.splitlines()
    names = [line.split()[0] for line in lines]
    assert names == sorted(names)
    assert {"exact", "judge", "math", "mcq", "mcq-multi", "reward-model"} <= set(names)
    math_line = next(line for line in lines if line.startswith("math "))
    assert "sympy" in math_line
    listed = json.loads(invoke("verifiers", "--json").stdout)
    assert {"name": "mcq", "description": next(line for line in lines if line.startswith("mcq "))[len("mcq"):].strip()} in listed


def test_verify_several_verifiers_in_one_run(ledger, invoke):
    db_path, ids = ledger
    result = invoke("verify", db_path, "--verifier", "math", "--verifier", "exact", "--silent")
    lines = result.stderr.splitlines()
    assert [line.split(":")[0] for line in lines] == ["math", "exact"]
    assert lines[1].startswith("exact: 4 scored: 0 passed, 4 failed")  # no response is literally "4"
    assert len(scores(db_path, "math")) == len(scores(db_path, "exact")) == 4

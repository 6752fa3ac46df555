"""Arms: several models or settings in one ledger, each with its own budget,
pooled targets, exports across arms, stats per arm, and older ledgers upgraded."""

import json
import shutil
import sqlite3

import pytest

from helpers import write_jsonl
from rsr import open_db
from servers import OpenAIStub

FIXTURES = __import__("pathlib").Path(__file__).parent / "fixtures"


def last_user(body):
    return body["messages"][-1]["content"]


def by_model(body):
    "Model a solves the easy prompts; model b never does (and says so differently)."
    if body["model"] == "a":
        return "4" if "easy" in last_user(body) else "5"
    return "b thinks 6"


PROMPTS = [{"id": f"easy-{i}", "question": "easy", "answer": "4"} for i in range(2)] + [
    {"id": f"hard-{i}", "question": "hard", "answer": "4"} for i in range(2)]


@pytest.fixture
def stub():
    with OpenAIStub(responder=by_model) as server:
        yield server


@pytest.fixture
def ledger(tmp_path, invoke):
    db_path = str(tmp_path / "run.db")
    invoke("load", db_path, write_jsonl(tmp_path / "p.jsonl", PROMPTS))
    return db_path


def sample(invoke, db_path, stub, model, *extra):
    result = invoke("sample", db_path, "--base-url", stub.url, "--model", model, "--silent",
                    "--max-rollouts", "2", "--step-size", "2", *extra)
    assert result.exit_code == 0, result.output
    return result


def counts(db_path):
    return dict(((p, a), n) for p, a, n in open_db(db_path).execute(
        "select prompt_id, arm, count(*) from rollouts group by 1, 2"))


def test_each_model_is_an_arm_with_its_own_budget(ledger, stub, invoke):
    sample(invoke, ledger, stub, "a", "--target", "none")
    sample(invoke, ledger, stub, "b", "--target", "none")
    assert counts(ledger) == {(p["id"], arm): 2 for p in PROMPTS for arm in "ab"}
    sent = len(stub.requests)
    # A re-run of either arm finds its budget spent and sends nothing.
    sample(invoke, ledger, stub, "a", "--target", "none")
    sample(invoke, ledger, stub, "b", "--target", "none")
    assert len(stub.requests) == sent == 8
    db = open_db(ledger)
    # Each rollout records its arm and its model; steps say which arm took them,
    # numbered over the prompt's steps of every arm.
    assert db.execute("select count(*) from rollouts where arm != model").fetchone()[0] == 0
    assert db.execute("select prompt_id, step, arm from steps where prompt_id = 'easy-0' "
                      "order by step").fetchall() == [("easy-0", 1, "a"), ("easy-0", 2, "b")]
    runs = [json.loads(c)["sampling"]["arm"] for (c,) in db.execute(
        "select config from runs where command = 'sample' order by id")]
    assert runs == ["a", "b", "a", "b"]


def test_seeds_are_fixed_by_sample_index_in_every_arm(ledger, stub, invoke):
    sample(invoke, ledger, stub, "a", "--target", "none", "--seed", "7")
    sample(invoke, ledger, stub, "b", "--target", "none", "--seed", "7")
    db = open_db(ledger)
    rows = db.execute("select arm, prompt_id, sample_index, seed from rollouts").fetchall()
    by_arm = {arm: {(p, i): s for a, p, i, s in rows if a == arm} for arm in "ab"}
    assert by_arm["a"] == by_arm["b"] and len(by_arm["a"]) == 8
    # (An API request takes one seed for its n completions: one per prompt here.)
    assert len(set(by_arm["a"].values())) == 4
    # One request per step (n=2) carries its first sample index's seed.
    sent = sorted(r["body"]["seed"] for r in stub.requests)
    assert sent == sorted(s for arm in "ab" for (p, i), s in by_arm[arm].items() if i == 0)


def test_a_pooled_target_skips_prompts_another_arm_satisfied(ledger, stub, invoke):
    sample(invoke, ledger, stub, "a", "--target", "sft", "--verifier", "exact")
    before = len(stub.requests)
    sample(invoke, ledger, stub, "b", "--target", "sft", "--verifier", "exact", "--pool")
    asked = {last_user(r["body"]) for r in stub.requests[before:]}
    assert asked == {"hard"}
    assert counts(ledger) == {("easy-0", "a"): 2, ("easy-1", "a"): 2, ("hard-0", "a"): 2,
                              ("hard-1", "a"): 2, ("hard-0", "b"): 2, ("hard-1", "b"): 2}
    # Without --pool, arm b's own target is unmet on every prompt: it samples all.
    other = ledger.replace("run.db", "other.db")
    shutil.copy(ledger, other)
    db = open_db(other)
    db.execute("delete from scores where rollout_id in (select id from rollouts where arm = 'b')")
    db.execute("delete from steps where arm = 'b'")
    db.execute("delete from rollouts where arm = 'b'")
    sample(invoke, other, stub, "b", "--target", "sft", "--verifier", "exact")
    assert {p for (p, a) in counts(other) if a == "b"} == {p["id"] for p in PROMPTS}


def test_dpo_across_arms_takes_each_side_from_its_arm(ledger, stub, invoke):
    sample(invoke, ledger, stub, "a", "--target", "none", "--verifier", "exact")
    sample(invoke, ledger, stub, "b", "--target", "none", "--verifier", "exact")
    result = invoke("export", ledger, "--format", "dpo", "--chosen-arm", "a",
                    "--rejected-arm", "b", "--include-metadata")
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["metadata"]["prompt_id"] for r in rows] == ["easy-0", "easy-1"]
    assert {r["chosen"][0]["content"] for r in rows} == {"4"}
    assert {r["rejected"][0]["content"] for r in rows} == {"b thinks 6"}
    # Within arm a alone no prompt has both a pass and a fail: no pair at all;
    # pooled over both arms (the default) the easy prompts pair a's pass with b's fail.
    assert invoke("export", ledger, "--format", "dpo", "--arm", "a").stdout == ""
    pooled = [json.loads(line) for line in invoke("export", ledger, "--format", "dpo").stdout.splitlines()]
    assert [(r["chosen"][0]["content"], r["rejected"][0]["content"]) for r in pooled] == [
        ("4", "b thinks 6")] * 2
    # --arm filters every format: sft from arm b finds no pass.
    result = invoke("export", ledger, "--format", "sft", "--arm", "b")
    assert result.stdout == ""
    result = invoke("export", ledger, "--format", "sft", "--arm", "a")
    assert [json.loads(line)["messages"][-1]["content"] for line in result.stdout.splitlines()] \
        == ["4", "4"]


def test_stats_by_arm_equal_sql_over_the_ledger(ledger, stub, invoke):
    sample(invoke, ledger, stub, "a", "--target", "none", "--verifier", "exact")
    sample(invoke, ledger, stub, "b", "--target", "none", "--verifier", "exact",
           "--max-rollouts", "3", "--step-size", "3")
    data = json.loads(invoke("stats", ledger, "--by", "arm", "--json").stdout)
    got = {row["value"]: (row["prompts"], row["rollouts"], row["passed"], row["failed"])
           for row in data["pass_rate_by"]["values"]}
    db = sqlite3.connect(ledger)
    expected = {arm: (p, n, passed, failed) for arm, p, n, passed, failed in db.execute(
        """select r.arm, count(distinct r.prompt_id), count(*), sum(s.passed is 1), sum(s.passed is 0)
           from rollouts r left join scores s on s.rollout_id = r.id group by r.arm""")}
    assert got == expected == {"a": (4, 8, 4, 4), "b": (4, 12, 0, 12)}
    rates = {row["value"]: row["common_rate"] for row in data["pass_rate_by"]["values"]}
    assert rates == {"a": 0.5, "b": 0.0}
    text = invoke("stats", ledger, "--by", "arm").stdout
    assert "arm=a: 50.0% (4 prompts, 8 rollouts" in text


def test_a_recipe_with_two_arms(tmp_path, stub, invoke):
    write_jsonl(tmp_path / "p.jsonl", PROMPTS)
    recipe = tmp_path / "arms.yaml"
    recipe.write_text(f"""
data: {{files: [p.jsonl]}}
sampler: {{name: openai, base_url: "{stub.url}", model: a}}
sampling: {{target: sft, max_rollouts: 2, step_size: 2}}
verifier: {{name: exact}}
arms:
  - {{name: strong}}
  - {{name: weak, sampler: {{model: b}}, sampling: {{pool: true}}}}
outputs: {{dir: {tmp_path / 'out'}, stats: null, exports: []}}
""")
    result = invoke("run", str(recipe))
    assert result.exit_code == 0, result.output
    db_path = str(tmp_path / "out" / "run.db")
    assert counts(db_path) == {("easy-0", "strong"): 2, ("easy-1", "strong"): 2,
                               ("hard-0", "strong"): 2, ("hard-1", "strong"): 2,
                               ("hard-0", "weak"): 2, ("hard-1", "weak"): 2}
    models = dict(open_db(db_path).execute("select distinct arm, model from rollouts"))
    assert models == {"strong": "a", "weak": "b"}
    sent = len(stub.requests)
    assert invoke("run", str(recipe)).exit_code == 0
    assert len(stub.requests) == sent
    recipe.write_text(recipe.read_text().replace("name: weak", "name: strong"))
    result = invoke("run", str(recipe), "--db", str(tmp_path / "x.db"))
    assert result.exit_code == 1
    assert "arms: the name 'strong' is given twice" in result.stderr


def test_import_keeps_the_model_as_the_arm(ledger, invoke, tmp_path):
    rows = write_jsonl(tmp_path / "in.jsonl", [
        {"prompt_id": "easy-0", "response": "4", "model": "teacher"},
        {"prompt_id": "easy-0", "response": "5", "model": "student"},
        {"prompt_id": "easy-0", "response": "4", "model": "teacher"}])
    assert invoke("import", ledger, rows).exit_code == 0
    assert open_db(ledger).execute(
        "select arm, sample_index from rollouts order by id").fetchall() == [
        ("teacher", 0), ("student", 0), ("teacher", 1)]


@pytest.mark.parametrize("fixture", ["ledger_v0.db", "ledger_v1.db"])
def test_an_older_ledger_upgrades_with_every_rollout_kept(fixture, tmp_path):
    path = tmp_path / fixture
    shutil.copy(FIXTURES / fixture, path)
    old = sqlite3.connect(path)
    columns = "id, prompt_id, sample_index, step, model, response, reasoning, truncated, error"
    before = old.execute(f"select {columns} from rollouts order by id").fetchall()
    scores = old.execute("select * from scores order by rollout_id, verifier").fetchall()
    old.close()
    db = open_db(path)
    assert db.execute(f"select {columns} from rollouts order by id").fetchall() == before
    assert db.execute("select rollout_id, verifier, score, passed, extracted, details, error, "
                      "created_at from scores order by rollout_id, verifier").fetchall() == scores
    assert {a for (a,) in db.execute("select arm from rollouts")} == {"default"}
    assert db.execute("pragma foreign_key_check").fetchall() == []
    for table in ("arm_progress", "arm_verdicts"):
        slow = db.execute(f"select * from {table}_slow except select * from {table}").fetchall()
        fast = db.execute(f"select * from {table} except select * from {table}_slow").fetchall()
        assert (slow, fast) == ([], [])
    assert db.execute("select count(*) from arm_progress").fetchone()[0] > 0
    # Opening it again changes nothing.
    assert open_db(path).execute(f"select {columns} from rollouts order by id").fetchall() == before

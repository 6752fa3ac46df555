"""Costs and cost caps against a real HTTP server on 127.0.0.1: cost equals
the engine's token counts times the prices (a request pays its prompt once),
--max-cost stops a run cleanly and a higher one resumes it, and
--max-cost-per-prompt ends one prompt's budget."""

import json
import re
import sqlite3

import pytest
from helpers import write_jsonl
from servers import OpenAIStub

from rsr import open_db
from rsr.costs import CostMeter, Prices, load_prices_file
from rsr.errors import ConfigError

PROMPTS = [{"id": f"p{i}", "question": f"hard {i}", "answer": "The answer is 4"} for i in range(6)]

# The stub's usage: 7 prompt tokens per request, 5 completion tokens per choice.
PROMPT_TOKENS, COMPLETION_TOKENS = 7, 5


@pytest.fixture
def ledger(db_path, tmp_path, invoke):
    invoke("load", db_path, write_jsonl(tmp_path / "prompts.jsonl", PROMPTS))
    return db_path


def args(db_path, stub, *extra):
    return ["sample", db_path, "--base-url", stub.url, "--model", "stub", "--silent",
            "--verifier", "exact", "--concurrency", "1", *extra]


def ledger_cost(db_path):
    return open_db(db_path).execute("select sum(cost) from rollout_costs").fetchone()[0]


def test_cost_is_tokens_times_prices_with_the_prompt_paid_once_per_request(ledger, invoke):
    with OpenAIStub(responder=lambda body: "I think 5") as stub:
        result = invoke(*args(ledger, stub, "--max-rollouts", "8", "--step-size", "4",
                              "--price-in", "2", "--price-out", "10"))
    assert result.exit_code == 0, result.output
    requests = len(stub.requests)
    choices = sum(r["body"].get("n", 1) for r in stub.requests)
    assert (requests, choices) == (12, 48)  # 6 prompts x 2 steps of n=4
    expected = (requests * PROMPT_TOKENS * 2 + choices * COMPLETION_TOKENS * 10) / 1e6
    assert ledger_cost(ledger) == pytest.approx(expected)
    db = open_db(ledger)
    # Every rollout stores its request's prompt tokens; one per request pays them.
    assert db.execute("select sum(prompt_tokens), sum(first_of_request) from rollouts").fetchone() == (
        48 * PROMPT_TOKENS, 12)
    assert db.execute("select per_million_in, per_million_out from prices where arm = 'stub'"
                      ).fetchone() == (2.0, 10.0)


def test_a_server_that_ignores_n_pays_the_prompt_per_rollout(ledger, invoke):
    with OpenAIStub(responder=lambda body: "I think 5", honour_n=False) as stub:
        result = invoke(*args(ledger, stub, "--max-rollouts", "4", "--step-size", "4",
                              "--price-in", "1", "--price-out", "0"))
    assert result.exit_code == 0, result.output
    # One request per rollout: each pays its own prompt.
    assert len(stub.requests) == 24
    assert ledger_cost(ledger) == pytest.approx(24 * PROMPT_TOKENS / 1e6)


def test_max_cost_stops_sending_and_a_higher_cap_resumes(ledger, invoke):
    # Each request (n=4) costs 7 * 1 + 20 * 1000 = 20,007 per million: 0.020007.
    prices = ["--price-in", "1", "--price-out", "1000", "--max-rollouts", "8", "--step-size", "4"]
    with OpenAIStub(responder=lambda body: "I think 5") as stub:
        result = invoke(*args(ledger, stub, *prices, "--max-cost", "0.05"))
        assert result.exit_code == 3, result.output
        assert "Capped: the ledger's cost reached" in result.stderr
        assert "re-run with a higher --max-cost" in result.stderr
        first = len(stub.requests)
        # The third request reaches the cap; with one in flight, none is sent after it.
        assert first == 3
        db = open_db(ledger)
        assert db.execute("select status from runs where command = 'sample'").fetchall() == [("capped",)]
        assert db.execute("select count(*) from rollouts").fetchone()[0] == 12
        assert ledger_cost(ledger) == pytest.approx(3 * 0.020007)
        # The same cap again: the ledger's total counts what was spent, nothing is sent.
        again = invoke(*args(ledger, stub, *prices, "--max-cost", "0.05"))
        assert again.exit_code == 3 and len(stub.requests) == first
        # A higher cap continues from where the run stopped.
        more = invoke(*args(ledger, stub, *prices, "--max-cost", "0.1"))
        assert more.exit_code == 3 and len(stub.requests) == 5
        done = invoke(*args(ledger, stub, *prices, "--max-cost", "10"))
    assert done.exit_code == 0, done.output
    assert len(stub.requests) == 12
    db = open_db(ledger)
    assert db.execute("select count(*), count(distinct prompt_id || ':' || sample_index) "
                      "from rollouts").fetchone() == (48, 48)
    assert [r[0] for r in db.execute("select status from runs where command = 'sample' order by id")] == [
        "capped", "capped", "capped", "finished"]


def test_overshoot_is_at_most_the_requests_in_flight(ledger, invoke):
    prices = ["--price-in", "0", "--price-out", "1000", "--max-rollouts", "8", "--step-size", "4"]
    with OpenAIStub(responder=lambda body: "I think 5") as stub:
        # The last --concurrency wins: three requests in flight.
        result = invoke(*args(ledger, stub, *prices, "--max-cost", "0.02", "--concurrency", "3"))
    assert result.exit_code == 3, result.output
    # Each request costs 0.02: the first reaches the cap, the two others in flight may land.
    assert 1 <= len(stub.requests) <= 3
    assert ledger_cost(ledger) == pytest.approx(len(stub.requests) * 0.02)


def test_max_cost_per_prompt_ends_that_prompts_budget(ledger, invoke):
    # Each request costs 0.02; a prompt may spend 0.03: two steps, then no more.
    with OpenAIStub(responder=lambda body: "I think 5") as stub:
        result = invoke(*args(ledger, stub, "--price-out", "1000", "--max-rollouts", "16",
                              "--step-size", "4", "--max-cost-per-prompt", "0.03"))
    assert result.exit_code == 0, result.output
    counts = dict(open_db(ledger).execute(
        "select prompt_id, count(*) from rollouts group by prompt_id").fetchall())
    assert counts == {p["id"]: 8 for p in PROMPTS}


def test_gpu_hours_are_charged_by_the_runs_time(ledger, invoke):
    with OpenAIStub(responder=lambda body: "I think 5") as stub:
        result = invoke(*args(ledger, stub, "--max-rollouts", "4", "--price-gpu-hour", "3600"))
    assert result.exit_code == 0, result.output
    db = open_db(ledger)
    seconds = db.execute("select (julianday(finished_at) - julianday(started_at)) * 86400 "
                         "from runs where command = 'sample'").fetchone()[0]
    # 3600 per hour is 1 per second of the run, shared by its rollouts.
    assert ledger_cost(ledger) == pytest.approx(seconds, rel=1e-6)
    assert db.execute("select count(distinct round(gpu_cost, 9)) from rollout_costs").fetchone()[0] == 1


def test_prices_file_by_arm_and_flag_overrides(ledger, invoke, tmp_path):
    prices = tmp_path / "prices.yml"
    prices.write_text("stub: {in: 3, out: 7}\nother: {gpu_hour: 1}\n")
    with OpenAIStub(responder=lambda body: "I think 5") as stub:
        result = invoke(*args(ledger, stub, "--max-rollouts", "4", "--prices", prices,
                              "--price-in", "5"))
    assert result.exit_code == 0, result.output
    assert open_db(ledger).execute("select per_million_in, per_million_out, per_gpu_hour "
                                   "from prices where arm = 'stub'").fetchone() == (5.0, 7.0, 0.0)


@pytest.mark.parametrize("text, message", [
    ("stub: {in: -1}\n", "stub.in: a price must be a number >= 0"),
    ("stub: {input: 1}\n", "stub: unknown key(s) input"),
    ("- 1\n", "a prices file maps arm or model names"),
    ("stub: {in: [\n", "not valid YAML"),
])
def test_bad_prices_file_is_one_line_naming_it(tmp_path, text, message):
    path = tmp_path / "prices.yml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=re.escape(message)) as info:
        load_prices_file(str(path))
    assert str(path) in str(info.value)


def test_cost_meter_counts_the_prompt_once_per_request():
    from rsr.samplers import Completion

    meter = CostMeter(1.0, Prices(per_million_in=1e6, per_million_out=2e6), max_cost=30)
    meter.add([Completion("a", prompt_tokens=3, completion_tokens=2),
               Completion("b", prompt_tokens=3, completion_tokens=4)])
    assert meter.total == pytest.approx(1 + 3 + 12)
    assert not meter.reached()
    meter.add([Completion("c", prompt_tokens=3, completion_tokens=6)])
    assert meter.reached()


def test_capped_status_is_stored_and_json_says_so(ledger, invoke):
    with OpenAIStub(responder=lambda body: "I think 5") as stub:
        result = invoke(*args(ledger, stub, "--price-out", "1000", "--max-cost", "0.01", "--json"))
    assert result.exit_code == 3
    assert json.loads(result.stdout)["capped"] is True
    summary = sqlite3.connect(ledger).execute("select summary from runs where status = 'capped'").fetchone()
    assert summary[0].startswith("Capped: the ledger's cost reached")


def test_stats_reports_cost_per_passing_rollout_and_exported_row(db_path, tmp_path, invoke):
    records = [{"id": "easy", "question": "easy", "answer": "4", "level": 1},
               {"id": "hard", "question": "hard", "answer": "4", "level": 5}]
    invoke("load", db_path, write_jsonl(tmp_path / "prompts.jsonl", records))
    answer = {"easy": "4", "hard": "5"}
    with OpenAIStub(responder=lambda body: answer[body["messages"][-1]["content"]]) as stub:
        result = invoke(*args(db_path, stub, "--max-rollouts", "8", "--step-size", "4",
                              "--price-in", "1000", "--price-out", "1000"))
    assert result.exit_code == 0, result.output
    # easy: one step (4 passes); hard: two steps, no pass. 3 requests of n=4.
    total = 3 * (7 + 20) * 1000 / 1e6
    data = json.loads(invoke("stats", db_path, "--json", "--by", "level").stdout)
    cost = data["cost"]
    assert cost["total"] == pytest.approx(total)
    assert cost["per_prompt"] == pytest.approx(total / 2)
    assert cost["passing_rollouts"] == 4 and cost["per_passing_rollout"] == pytest.approx(total / 4)
    assert cost["exported_rows"] == 1 and cost["per_exported_row"] == pytest.approx(total)
    by = {row["value"]: row for row in cost["by"]["values"]}
    assert by[1]["cost"] == pytest.approx(total / 3) and by[5]["cost"] == pytest.approx(2 * total / 3)
    assert by[5]["per_passing_rollout"] is None
    arms = json.loads(invoke("stats", db_path, "--json", "--by", "arm").stdout)["cost"]["by"]
    assert arms["values"][0]["value"] == "stub" and arms["values"][0]["passing"] == 4
    text = invoke("stats", db_path).stdout
    assert f"Cost: {total:,.6g} in total" in text


def test_a_recipe_prices_each_arm_and_stats_gives_cost_by_arm(tmp_path, invoke):
    write_jsonl(tmp_path / "p.jsonl", PROMPTS[:2])
    prices = tmp_path / "prices.yml"
    prices.write_text("cheap: {out: 1000}\n")
    with OpenAIStub(responder=lambda body: "I think 5") as stub:
        recipe = tmp_path / "arms.yaml"
        recipe.write_text(f"""
data: {{files: [p.jsonl]}}
sampler: {{name: openai, base_url: "{stub.url}", model: m}}
sampling: {{target: sft, max_rollouts: 4, step_size: 4, prices: {prices}}}
verifier: {{name: exact}}
arms:
  - {{name: cheap}}
  - {{name: dear, sampling: {{price_out: 4000, price_gpu_hour: 0}}}}
outputs: {{dir: {tmp_path / 'out'}, stats: null, exports: []}}
""")
        result = invoke("run", str(recipe))
    assert result.exit_code == 0, result.output
    db_path = tmp_path / "out" / "run.db"
    db = open_db(db_path)
    assert dict(db.execute("select arm, per_million_out from prices")) == {"cheap": 1000.0, "dear": 4000.0}
    # Two prompts, one request of n=4 each per arm: 40 completion tokens per arm.
    by = json.loads(invoke("stats", db_path, "--json", "--by", "arm").stdout)["cost"]["by"]["values"]
    assert {row["value"]: row["cost"] for row in by} == {
        "cheap": pytest.approx(0.04), "dear": pytest.approx(0.16)}

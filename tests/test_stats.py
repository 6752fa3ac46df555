import json
from math import comb

import pytest
from helpers import add_prompt, add_rollout, add_score

from rsr import open_db
from rsr.stats import pass_at_k, percentiles


@pytest.fixture
def ledger(db_path):
    db = open_db(db_path)
    add_prompt(db, "a", subject="algebra")
    add_prompt(db, "b", subject="geometry")
    add_prompt(db, "c", subject="geometry")
    add_prompt(db, "d", subject="algebra")
    # a: 3 passes of 4, tokens 10, 20, 30, 40 (the fail is the 20)
    for i, passed in enumerate([1, 0, 1, 1]):
        add_score(db, add_rollout(db, "a", i, completion_tokens=10 * (i + 1)), "v", passed)
    # b: 2 fails, a truncated rollout, an errored one: 4 rollouts, budget 4 spent
    for i in range(2):
        add_score(db, add_rollout(db, "b", i, completion_tokens=5), "v", 0)
    add_rollout(db, "b", 2, truncated=1, finish_reason="length", completion_tokens=100)
    add_rollout(db, "b", 3, response=None, error="HTTP 500", completion_tokens=None)
    # c: never sampled; d: one pass, one undecided
    add_score(db, add_rollout(db, "d", 0, completion_tokens=7), "v", 1)
    add_score(db, add_rollout(db, "d", 1, completion_tokens=8), "v", None)
    return db_path


def stats_json(invoke, db_path, *args):
    result = invoke("stats", db_path, "--json", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_stats_counts(ledger, invoke):
    data = stats_json(invoke, ledger, "--by", "subject")
    assert (data["target"], data["max_rollouts"], data["max_steps"], data["verifier"]) == (
        "sft",
        16,
        8,
        "v",
    )
    assert data["prompts"] == {"total": 4, "satisfied": 2, "exhausted": 0, "pending": 2}
    assert data["pass_rate"] == {"passed": 4, "failed": 3, "undecided": 1, "rate": 0.5714}
    assert data["pass_rate_by"] == {
        "field": "subject",
        "values": [
            {"value": "algebra", "prompts": 2, "passed": 4, "failed": 1, "rate": 0.8},
            {"value": "geometry", "prompts": 2, "passed": 0, "failed": 2, "rate": 0.0},
        ],
    }
    assert data["pass_rate_buckets"] == {
        "0": 1,
        "(0, 0.25]": 0,
        "(0.25, 0.5]": 0,
        "(0.5, 0.75]": 1,
        "(0.75, 1)": 0,
        "1": 1,
        "no verdicts": 1,
    }
    # draws: a n=4 c=3; b n=3 (the truncated one is a failed draw) c=0; d n=1 c=1
    assert data["pass_at_k"] == [
        {"k": 1, "pass_at_k": round((0.75 + 0 + 1) / 3, 4), "prompts": 3},
        {"k": 2, "pass_at_k": 0.5, "prompts": 2},
        {"k": 4, "pass_at_k": 1.0, "prompts": 1},
    ]
    assert data["completion_tokens"] == {
        "passed": {"count": 4, "p50": 10, "p90": 40, "p99": 40, "max": 40},
        "failed": {"count": 3, "p50": 5, "p90": 20, "p99": 20, "max": 20},
    }
    assert data["rollouts"] == {
        "total": 10,
        "valid": 8,
        "truncated": 1,
        "errored": 1,
        "empty": 0,
        "truncation_rate": 0.1,
        "error_rate": 0.1,
        "empty_rate": 0.0,
    }
    # Saved is what the satisfied prompts a (4 rollouts) and d (2) did not need;
    # the pending b and c may still spend theirs.
    assert data["draws"] == {
        "spent": 10,
        "budget_without_early_stop": 64,
        "saved": 26,
        "saved_fraction": 0.4062,
        "unspent_pending": 28,
    }


def sample_config(target, max_rollouts, max_steps, verifier):
    "The configuration rsr sample records in runs (the parts stats reads)."
    return json.dumps(
        {
            "sampler": {"name": "local"},
            "sampling": {
                "target": target,
                "max_rollouts": max_rollouts,
                "step_size": 4,
                "max_steps": max_steps,
            },
            "verifier": {"name": verifier, "options": {}},
        }
    )


def test_stats_target_budget_and_verifier_from_the_last_sample_run(ledger, invoke):
    db = open_db(ledger)
    db.execute(
        "insert into runs (command, config) values ('sample', ?)",
        [sample_config("sft", 16, 8, "judge")],
    )
    db.execute(
        "insert into runs (command, config) values ('sample', ?)", [sample_config("dpo", 4, 8, "v")]
    )
    # a second verifier: stats follows the one the latest sample run used
    db.execute("insert into scores (rollout_id, verifier, passed) values (1, 'judge', 0)")
    data = stats_json(invoke, ledger)
    assert (data["target"], data["max_rollouts"], data["verifier"]) == ("dpo", 4, "v")
    # dpo needs a pass and a fail: only a; b has spent its 4 rollouts
    assert data["prompts"] == {"total": 4, "satisfied": 1, "exhausted": 1, "pending": 2}
    assert data["draws"]["budget_without_early_stop"] == 16
    # d's two steps of one rollout each spend a max_steps of 2
    db.execute(
        "insert into steps (prompt_id, step, requested, received) values "
        "('d', 1, 1, 1), ('d', 2, 1, 1)"
    )
    data = stats_json(invoke, ledger, "--max-steps", "2")
    assert data["prompts"] == {"total": 4, "satisfied": 1, "exhausted": 2, "pending": 1}
    data = stats_json(invoke, ledger, "--target", "multi-sft:2", "--max-rollouts", "2")
    assert data["prompts"] == {"total": 4, "satisfied": 1, "exhausted": 2, "pending": 1}
    data = stats_json(invoke, ledger, "--target", "best-of-n:2", "--verifier", "judge")
    assert (data["prompts"]["satisfied"], data["pass_rate"]["failed"]) == (3, 1)


def test_stats_runs_time_and_tokens_per_second(db_path, invoke):
    db = open_db(db_path)
    add_prompt(db, "a")
    db.execute(
        "insert into runs (id, command, status, started_at, finished_at) values "
        "(7, 'sample', 'finished', '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:04.000Z')"
    )
    for i in range(3):
        rollout = add_rollout(db, "a", i, completion_tokens=100)
        db.execute("update rollouts set run_id = 7 where id = ?", [rollout])
    run = stats_json(invoke, db_path)["runs"]
    assert [
        (r["id"], r["rollouts"], r["completion_tokens"], r["seconds"], r["tokens_per_second"])
        for r in run
    ] == [(7, 3, 300, 4.0, 75.0)]
    text = invoke("stats", db_path).stdout
    assert "Run #7 sample: 3 rollouts in 4.0 s, 75.0 tokens/s" in text


def test_stats_text_and_plots(ledger, invoke, tmp_path):
    result = invoke("stats", ledger, "--plots", tmp_path / "report")
    assert result.exit_code == 0
    assert result.stdout.splitlines()[:3] == [
        "Target sft (max_rollouts 16, max_steps 8), verifier v",
        "Prompts: 4 total, 2 satisfied, 0 exhausted, 2 pending",
        "Pass rate: 57.1% (4 passed, 3 failed, 1 undecided)",
    ]
    for name in ("pass_rate_histogram.png", "length_histogram.png", "passes_vs_draws.png"):
        assert (tmp_path / "report" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    saved = json.loads((tmp_path / "report" / "stats.json").read_text())
    assert saved["prompts"]["total"] == 4


def test_stats_errors(ledger, invoke):
    open_db(ledger).execute(
        "insert into scores (rollout_id, verifier, passed) values (1, 'judge', 1)"
    )
    result = invoke("stats", ledger)
    assert result.exit_code == 1
    assert "several verifiers (judge, v); choose one with --verifier" in result.stderr
    result = invoke("stats", ledger, "--verifier", "v", "--target", "ppo")
    assert "Unknown target 'ppo': use sft, dpo, multi-sft:K, best-of-n[:N] or none" in result.stderr


def test_stats_empty_ledger(db_path, invoke):
    open_db(db_path)
    data = stats_json(invoke, db_path)
    assert data["prompts"] == {"total": 0, "satisfied": 0, "exhausted": 0, "pending": 0}
    assert (data["verifier"], data["pass_at_k"], data["pass_rate"]["rate"]) == (None, [], None)


@pytest.mark.parametrize("n,c", [(n, c) for n in range(1, 9) for c in range(n + 1)])
def test_pass_at_k_matches_the_combinatorial_definition(n, c):
    for k in range(1, n + 1):
        assert pass_at_k(n, c, k) == pytest.approx(1 - comb(n - c, k) / comb(n, k))


def test_percentiles_nearest_rank():
    assert percentiles({1: 50, 2: 40, 3: 9, 100: 1}) == {
        "count": 100,
        "p50": 1,
        "p90": 2,
        "p99": 3,
        "max": 100,
    }


def test_stats_count_empty_answers_apart(tmp_path, invoke):
    # An empty answer is spent budget and a failed draw, never a pass or a fail.
    db_path = str(tmp_path / "empty.db")
    db = open_db(db_path)
    add_prompt(db, "e")
    add_score(db, add_rollout(db, "e", 0, response="4"), "v", 1)
    for i, text in enumerate(["", " \n\t"], start=1):
        add_score(db, add_rollout(db, "e", i, response=text), "v", 0)
    data = stats_json(invoke, db_path, "--verifier", "v")
    assert data["rollouts"]["empty"] == 2 and data["rollouts"]["valid"] == 1
    assert data["pass_rate"] == {"passed": 1, "failed": 0, "undecided": 0, "rate": 1.0}
    assert data["pass_at_k"][0] == {"k": 1, "pass_at_k": round(1 / 3, 4), "prompts": 1}
    text = invoke("stats", db_path, "--verifier", "v")
    assert "empty 66.7%" in text.stderr + text.stdout


def test_stats_says_when_the_run_is_unfinished(ledger, invoke):
    db = open_db(ledger)
    db.execute("insert into runs (command, status, config) values ('sample', 'interrupted', ?)",
               [sample_config("sft", 16, 8, "v")])
    text = invoke("stats", ledger).stdout
    assert ("Unfinished: the last sampling run (#1 sample) is interrupted; 2 prompts still "
            "pending, with 28 draws of budget left (not counted as saved); re-run to resume") in text
    # Saved counts only the satisfied prompts' unused budget: (16 - 4) + (16 - 2) of 64.
    assert "Draws: 10 of 64 without early stop (saved 40.6% by satisfied prompts)" in text
    data = stats_json(invoke, ledger)
    assert data["finished"] is False
    assert data["last_sample_run"] == {"id": 1, "command": "sample", "status": "interrupted"}


def test_stats_of_a_finished_run_says_nothing_more(db_path, invoke):
    db = open_db(db_path)
    add_prompt(db, "a")
    add_score(db, add_rollout(db, "a", 0), "v", 1)
    db.execute("insert into runs (command, status, config) values ('sample', 'finished', ?)",
               [sample_config("sft", 4, 8, "v")])
    text = invoke("stats", db_path).stdout
    assert "Unfinished" not in text
    assert "Draws: 1 of 4 without early stop (saved 75.0% by satisfied prompts)" in text
    assert stats_json(invoke, db_path)["finished"] is True


@pytest.mark.parametrize("with_rollouts", [False, True])
def test_stats_text_never_shows_none(db_path, invoke, with_rollouts):
    db = open_db(db_path)
    add_prompt(db, "a")
    if with_rollouts:  # rollouts without scores, from a run still going
        add_rollout(db, "a", 0)
        db.execute("insert into runs (id, command, status, started_at) values "
                   "(3, 'sample', 'running', '2026-01-01T00:00:00.000Z')")
        db.execute("update rollouts set run_id = 3, created_at = '2026-01-01T00:00:00.000Z'")
    result = invoke("stats", db_path)
    assert result.exit_code == 0
    assert "None" not in result.stdout, result.stdout
    assert "verifier none (no scores yet)" in result.stdout
    assert "Tokens (passed): no rollouts" in result.stdout


def test_stats_by_a_field_no_prompt_has_is_refused(ledger, invoke):
    result = invoke("stats", ledger, "--by", "subjct")
    assert result.exit_code == 1
    assert result.stderr == ("Error: --by 'subjct': no prompt's metadata has that field "
                             "(fields: answer, subject)\n")
    assert stats_json(invoke, ledger, "--by", "answer")["pass_rate_by"]["field"] == "answer"


@pytest.mark.parametrize("target,max_rollouts", [("sft", 4), ("dpo", 4), ("best-of-n:2", 2)])
def test_each_prompt_state_adds_up_to_the_counts(ledger, target, max_rollouts):
    # rsr browse shows a prompt's state beside it, by the latest sampling run's
    # target and budget, as the summary counts them
    from collections import Counter

    from rsr.stats import ledger_stats, prompt_states

    open_db(ledger).execute(
        "insert into runs (command, config, status) values ('sample', ?, 'finished')",
        [json.dumps({"sampling": {"target": target, "max_rollouts": max_rollouts}})])
    db = open_db(ledger, readonly=True)
    states = prompt_states(db, ["a", "b", "c", "d"], "v")
    counts = ledger_stats(db, "v")["prompts"]
    assert Counter(states.values()) == {k: v for k, v in counts.items() if k != "total" and v}
    assert states["c"] == "pending"  # never sampled
    assert states["b"] == ("exhausted" if target != "best-of-n:2" else "satisfied")

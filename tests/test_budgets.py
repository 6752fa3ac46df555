"""--budget proportional against a real HTTP server whose pass rate differs
per prompt: the total budget is never exceeded, prompts with a low pass rate
get more draws, hopeless ones none past the user's rule."""

import itertools
import json

import pytest
from helpers import write_jsonl
from servers import OpenAIStub

from rsr import open_db
from rsr.early_stop import allocate

# Every how many choices a prompt's answer is right (None: never).
EVERY = {"easy": 1, "medium": 2, "hard": 8, "hopeless": None}


def per_prompt_pass_rate():
    counters = {name: itertools.count(1) for name in EVERY}

    def respond(body):
        name = body["messages"][-1]["content"]
        n, every = next(counters[name]), EVERY[name]
        return "4" if every is not None and n % every == 0 else "5"

    return respond


@pytest.fixture
def ledger(db_path, tmp_path, invoke):
    records = [{"id": name, "question": name, "answer": "4"} for name in EVERY]
    invoke("load", db_path, write_jsonl(tmp_path / "prompts.jsonl", records))
    return db_path


def draws(db_path):
    return dict(open_db(db_path).execute(
        "select prompt_id, count(*) from rollouts group by prompt_id").fetchall())


def run(invoke, db_path, stub, *extra):
    return invoke("sample", db_path, "--base-url", stub.url, "--model", "stub", "--silent",
                  "--verifier", "exact", "--concurrency", "2", "--max-rollouts", "8",
                  "--step-size", "4", *extra)


def test_proportional_gives_low_pass_rates_more_within_the_same_total(ledger, invoke):
    with OpenAIStub(responder=per_prompt_pass_rate()) as stub:
        result = run(invoke, ledger, stub, "--target", "none", "--budget", "proportional",
                     "--hopeless", "8")
    assert result.exit_code == 0, result.output
    got = draws(ledger)
    assert sum(got.values()) == 4 * 8  # the uniform total, all of it spent
    assert got["hard"] > got["medium"] > got["easy"]
    assert got["hard"] > 8  # past what uniform would give one prompt
    assert got["hopeless"] == 8  # no pass in 8: no more draws
    allowances = dict(open_db(ledger).execute("select prompt_id, rollouts from allowances"))
    assert all(got[p] <= allowances.get(p, 4) for p in got)


def test_uniform_gives_every_prompt_the_same(ledger, invoke):
    with OpenAIStub(responder=per_prompt_pass_rate()) as stub:
        result = run(invoke, ledger, stub, "--target", "none")
    assert result.exit_code == 0, result.output
    assert draws(ledger) == {name: 8 for name in EVERY}


def test_proportional_with_early_stop_spends_what_easy_prompts_saved_on_hard_ones(ledger, invoke):
    with OpenAIStub(responder=per_prompt_pass_rate()) as stub:
        result = run(invoke, ledger, stub, "--target", "multi-sft:2", "--budget", "proportional",
                     "--hopeless", "8")
    assert result.exit_code == 0, result.output
    got = draws(ledger)
    assert sum(got.values()) <= 4 * 8
    passes = dict(open_db(ledger).execute(
        "select prompt_id, passed from verdicts where verifier = 'exact'").fetchall())
    # hard passes on every 8th draw: it needs 16 draws for two passes, which
    # uniform's 8 never gives it.
    assert passes.get("hard", 0) == 2 and got["hard"] == 16
    assert got["easy"] == 4 and got["medium"] == 4 and got["hopeless"] == 8


def test_a_resumed_proportional_run_keeps_to_the_total(ledger, invoke):
    with OpenAIStub(responder=per_prompt_pass_rate()) as stub:
        first = run(invoke, ledger, stub, "--target", "none", "--budget", "proportional",
                    "--max-cost", "0.00007", "--price-out", "1")
        assert first.exit_code == 3, first.output
        second = run(invoke, ledger, stub, "--target", "none", "--budget", "proportional")
    assert second.exit_code == 0, second.output
    assert sum(draws(ledger).values()) == 32


def state(id, rollouts, passed, failed, satisfied=0, steps=1):
    return {"id": id, "rollouts": rollouts, "requested": rollouts, "passed": passed,
            "failed": failed, "satisfied": satisfied, "steps": steps, "under_cost_cap": 1}


@pytest.mark.parametrize("total", [8, 9, 12, 20, 100])
def test_allocate_never_exceeds_the_total(total):
    states = [state("a", 4, 4, 0), state("b", 4, 0, 4), state("c", 0, 0, 0, steps=0)]
    granted = allocate(states, total, step_size=4, max_steps=8)
    drawn = {s["id"]: s["rollouts"] for s in states}
    assert sum(max(granted.get(k, 0), drawn[k]) for k in drawn) <= max(total, 8)
    if total > 8:
        assert granted["b"] - 4 >= granted.get("a", 4) - 4


def test_allocate_skips_satisfied_hopeless_and_out_of_steps():
    states = [state("done", 4, 1, 3, satisfied=1), state("lost", 16, 0, 16),
              state("steps", 4, 0, 4, steps=8), state("open", 4, 1, 3)]
    assert allocate(states, 100, step_size=4, max_steps=8, rule=16) == {"open": 8}
    assert json.dumps(allocate(states, 28, step_size=4, max_steps=8, rule=16)) == '{}'


def test_proportional_ends_when_what_it_grants_cannot_be_drawn(ledger, invoke):
    # A per-prompt cost cap stops prompts before their allowance: the rounds
    # give the rest to prompts under the cap, and the run ends.
    with OpenAIStub(responder=per_prompt_pass_rate()) as stub:
        result = run(invoke, ledger, stub, "--target", "none", "--budget", "proportional",
                     "--price-out", "1000", "--max-cost-per-prompt", "0.03")
    assert result.exit_code == 0, result.output
    # A draw costs 0.005 and the cap is checked before each step: hard and
    # hopeless pass it with their second step of 4 (8 draws), medium with its
    # round-two share (6); easy, under the cap at 5, is then the only prompt
    # the rounds give to, a step of 4 (9).
    assert draws(ledger) == {"easy": 9, "medium": 6, "hard": 8, "hopeless": 8}

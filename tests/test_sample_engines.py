"""End-to-end sampling with the embedded model: in-process (`local`) with no
network at all, and behind `python -m llama_cpp.server` (`openai`)."""

import json
import os
import shutil
import subprocess
import sys

import pytest
from helpers import data_file

from rsr import open_db

pytestmark = pytest.mark.slow


def gsm8k_subset(tmp_path, count):
    lines = data_file("gsm8k_test.jsonl").read_text().splitlines()[:count]
    path = tmp_path / "gsm8k.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def invariants(db_path, max_rollouts, step_size, verifier):
    db = open_db(db_path)
    rows = db.execute(
        """select pp.prompt_id, pp.rollouts, pp.valid, pp.truncated, pp.steps,
                  coalesce(v.passed, 0)
           from prompt_progress pp left join verdicts v
           on v.prompt_id = pp.prompt_id and v.verifier = ?""", [verifier]).fetchall()
    for prompt_id, rollouts, valid, truncated, steps, passed in rows:
        assert rollouts <= max_rollouts, prompt_id
        # Satisfied prompts stopped at the step that satisfied them; others
        # used their whole budget.
        assert passed >= 1 or rollouts == max_rollouts, prompt_id
        assert rollouts == steps * step_size or rollouts == max_rollouts
    indexes = db.execute(
        "select prompt_id, group_concat(sample_index) from (select * from rollouts order by sample_index) group by prompt_id"
    ).fetchall()
    for prompt_id, joined in indexes:
        found = [int(i) for i in joined.split(",")]
        assert found == list(range(len(found))), prompt_id
    return rows


def no_network_prefix():
    "A command prefix that runs a program with no network at all, if this machine can."
    unshare = shutil.which("unshare")
    if unshare and subprocess.run([unshare, "-n", "true"], capture_output=True).returncode == 0:
        return [unshare, "-n"]
    if unshare and subprocess.run([unshare, "-rn", "true"], capture_output=True).returncode == 0:
        return [unshare, "-rn"]
    pytest.skip("cannot make a network namespace here")


def test_local_sampler_on_20_gsm8k_prompts_without_network_or_key(tmp_path):
    db_path = str(tmp_path / "run.db")
    prompts = gsm8k_subset(tmp_path, 20)
    env = {k: v for k, v in os.environ.items() if "KEY" not in k and "TOKEN" not in k}
    prefix = no_network_prefix()
    rsr = [sys.executable, "-m", "rsr"]
    subprocess.run(prefix + rsr + ["load", db_path, str(prompts)], check=True, env=env)
    result = subprocess.run(
        prefix + rsr + ["sample", db_path, "--verifier", "exact", "--max-rollouts", "2",
                        "--step-size", "2", "--max-tokens", "40", "--seed", "3", "--silent"],
        capture_output=True, text=True, env=env, timeout=900,
    )
    assert result.returncode == 0, result.stderr
    rows = invariants(db_path, max_rollouts=2, step_size=2, verifier="exact")
    assert len(rows) == 20
    db = open_db(db_path)
    sampled = db.execute(
        "select count(*), sum(truncated), count(distinct response), min(completion_tokens),"
        " max(completion_tokens), count(distinct seed) from rollouts").fetchone()
    count, truncated, distinct, min_tokens, max_tokens, seeds = sampled
    assert count == 40 and seeds == 40
    assert distinct >= 30  # real sampling at temperature 0.7, not a canned answer
    assert 1 <= min_tokens and max_tokens <= 40
    # 40 tokens is short for GSM8K: most answers are cut off, and say so.
    assert truncated >= 20
    assert db.execute("select count(*) from rollouts where truncated = 1 and finish_reason != 'length'").fetchone()[0] == 0
    model = db.execute("select distinct model, sampler from rollouts").fetchall()
    assert model == [("SmolLM2-135M-Instruct.Q4_1.gguf", "local")]
    config = json.loads(db.execute("select config from runs where command = 'sample'").fetchone()[0])
    assert config["sampler"]["name"] == "local"


def test_openai_sampler_against_llama_cpp_server(llama_server, tmp_path, invoke):
    db_path = str(tmp_path / "run.db")
    invoke("load", db_path, gsm8k_subset(tmp_path, 4))
    result = invoke("sample", db_path, "--base-url", llama_server, "--model", "smollm2",
                    "--verifier", "exact", "--max-rollouts", "4", "--step-size", "2",
                    "--max-tokens", "24", "--concurrency", "2", "--silent")
    assert result.exit_code == 0, result.output
    invariants(db_path, max_rollouts=4, step_size=2, verifier="exact")
    db = open_db(db_path)
    count, truncated, tokens = db.execute(
        "select count(*), sum(truncated), sum(completion_tokens) from rollouts").fetchone()
    assert count == 16
    # llama.cpp's server reports finish_reason "length" on truncation.
    assert truncated >= 8
    assert tokens > 0

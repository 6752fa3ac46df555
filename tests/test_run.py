"""rsr run: recipes validate, run end to end, resume from the ledger, and refuse
changes that would mix incompatible data."""

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from helpers import write_jsonl
from servers import OpenAIStub

from rsr import open_db, plugins
from rsr.early_stop import parse_target
from rsr.recipes import load_recipe

ROOT = Path(__file__).resolve().parent.parent
RECIPES = sorted((ROOT / "recipes").glob("*.yaml"))


def test_there_are_recipes():
    names = {p.stem for p in RECIPES}
    assert {"quickstart", "gsm8k-sft", "math500-dpo", "mmlu-sft", "jeebench-multi",
            "chat-best-of-n"} <= names


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_recipe_is_valid(path):
    text = path.read_text()
    assert text.startswith("#"), "a recipe opens with a comment saying why its numbers are what they are"
    recipe = load_recipe(path)
    for name in recipe["data"]["files"]:
        assert Path(name).is_file(), name
    assert recipe["sampler"]["name"] in plugins.get_samplers()
    assert recipe["verifier"]["name"] in plugins.get_verifiers()
    sampling = recipe["sampling"]
    parse_target(sampling["target"], sampling["max_rollouts"])
    assert sampling["step_size"] <= sampling["max_rollouts"]
    formats = plugins.get_formatters()
    assert recipe["outputs"]["exports"]
    for spec in recipe["outputs"]["exports"]:
        assert spec["format"] in formats
    # The offline-vLLM variant each server recipe documents resolves too.
    if recipe["sampler"]["name"] == "openai":
        assert "sampler.name=vllm" in text
        offline = load_recipe(path, ["sampler.name=vllm", "sampler.base_url=null"])
        assert offline["sampler"]["name"] == "vllm" and offline["sampler"]["base_url"] is None


@pytest.mark.parametrize(
    "override,message",
    [
        ("sampling.colour=red", "sampling.colour"),
        ("sampling.max_rollouts=lots", "sampling.max_rollouts"),
    ],
)
def test_bad_overrides_name_the_key(override, message, invoke, tmp_path):
    result = invoke("run", RECIPES[0], override, "--db", tmp_path / "x.db")
    assert result.exit_code == 1
    assert message in result.stderr and "Traceback" not in result.stderr


def stub_recipe(tmp_path, url, **sampling):
    prompts = write_jsonl(tmp_path / "prompts.jsonl", [
        {"id": f"q{i}", "question": f"{'easy' if i % 2 else 'hard'} {i}", "answer": "4"} for i in range(6)])
    recipe = {
        "name": "stub",
        "data": {"files": [prompts.name]},
        "sampler": {"name": "openai", "base_url": url, "model": "stub", "api_key": "${oc.env:STUB_KEY}"},
        "sampling": {"target": "dpo", "max_rollouts": 4, "step_size": 2, "seed": 5, **sampling},
        "verifier": {"name": "math"},
        "outputs": {"dir": str(tmp_path / "out"),
                    "exports": [{"format": "sft", "file": "sft.jsonl"},
                                {"format": "dpo", "file": "dpo.jsonl"}]},
    }
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def responder(body):
    seed = body.get("seed") or 0
    correct = "easy" in body["messages"][-1]["content"] and seed % 3 != 0
    return "The answer is \\boxed{4}." if correct else f"The answer is \\boxed{{{seed % 7 + 5}}}."


def test_run_end_to_end_resume_and_config_changes(tmp_path, invoke, monkeypatch):
    monkeypatch.setenv("STUB_KEY", "sk-recipe-secret-77")
    with OpenAIStub(responder=responder, honour_n=False) as stub:
        recipe = stub_recipe(tmp_path, stub.url)
        result = invoke("run", recipe, "--silent")
        assert result.exit_code == 0, result.output
        db_path = tmp_path / "out" / "run.db"
        assert f"Ledger: {db_path}" in result.stderr
        sft = [json.loads(line) for line in (tmp_path / "out" / "sft.jsonl").read_text().splitlines()]
        dpo = [json.loads(line) for line in (tmp_path / "out" / "dpo.jsonl").read_text().splitlines()]
        assert len(sft) == 3 and all(row["messages"][-1]["content"].endswith("\\boxed{4}.") for row in sft)
        assert dpo and all(r["chosen"][0]["content"] != r["rejected"][0]["content"] for r in dpo)
        stats = json.loads((tmp_path / "out" / "stats.json").read_text())
        assert stats["prompts"]["total"] == 6
        requests = len(stub.requests)

        # Resume from the ledger alone: nothing left to do, nothing requested.
        again = invoke("run", "--db", db_path, "--silent")
        assert again.exit_code == 0, again.output
        assert len(stub.requests) == requests

        # Operational overrides are fine; a larger budget continues the run.
        more = invoke("run", "--db", db_path, "sampler.concurrency=2", "sampling.max_rollouts=6", "--silent")
        assert more.exit_code == 0, more.output
        assert len(stub.requests) > requests

        # Changing what is sampled is refused, unless asked for.
        refused = invoke("run", "--db", db_path, "sampling.temperature=1.2")
        assert refused.exit_code == 1
        assert "sampling.temperature: 0.7 -> 1.2" in refused.stderr
        assert "--allow-config-change" in refused.stderr
        refused = invoke("run", recipe, "--db", db_path, "verifier.name=exact")
        assert refused.exit_code == 1 and "verifier.name: 'math' -> 'exact'" in refused.stderr
        allowed = invoke("run", "--db", db_path, "sampling.temperature=1.2", "--allow-config-change", "--silent")
        assert allowed.exit_code == 0
    db = open_db(db_path)
    configs = [json.loads(c) for (c,) in db.execute("select config from runs where command = 'run'")]
    assert configs[0]["sampling"]["target"] == "dpo" and configs[0]["verifier"]["name"] == "math"
    assert configs[-1]["sampling"]["temperature"] == 1.2
    # The key came from the environment through the recipe, and is nowhere on disk.
    for path in (tmp_path / "out").iterdir():
        assert b"sk-recipe-secret-77" not in path.read_bytes(), path


def test_run_says_why_an_export_is_empty(tmp_path, invoke, monkeypatch):
    monkeypatch.setenv("STUB_KEY", "sk-test")
    with OpenAIStub(responder=lambda body: "The answer is \\boxed{5}.") as stub:
        result = invoke("run", stub_recipe(tmp_path, stub.url, target="sft", max_rollouts=2))
    assert result.exit_code == 0, result.output
    lines = result.stderr.splitlines()
    at = lines.index(f"Exported 0 sft rows to {tmp_path / 'out' / 'sft.jsonl'}")
    assert lines[at + 1].startswith(
        "No sft rows: each needs a passing rollout (verifier math); of 6 prompts, "
        "0 have no valid rollout, 6 have no pass, 0 have no fail. To change that: ")
    assert any(line.startswith("No dpo rows: each needs a pass and a fail") for line in lines)


@pytest.mark.parametrize("sampling,message", [
    ({"target": "dpo", "max_rollouts": 1}, "Target dpo needs at least 2 rollouts per prompt"),
    ({"target": "multi-sft:5", "max_rollouts": 3}, "--max-rollouts is 3"),
    ({"target": "best-of-n:4", "max_steps": 1, "step_size": 2}, "allows only 2"),
])
def test_run_refuses_a_target_it_can_never_meet(tmp_path, invoke, sampling, message, monkeypatch):
    monkeypatch.setenv("STUB_KEY", "sk-test")
    with OpenAIStub(responder=responder) as stub:
        result = invoke("run", stub_recipe(tmp_path, stub.url, **sampling))
    assert result.exit_code == 1
    assert message in result.stderr and "it could never be met" in result.stderr
    assert stub.requests == []
    # Refused before anything was loaded.
    db_path = tmp_path / "out" / "run.db"
    assert not db_path.exists() or open_db(db_path).execute("select count(*) from prompts").fetchone()[0] == 0


@pytest.mark.slow
def test_quickstart_as_written(tmp_path):
    """The README's quickstart on the embedded model: rows in both exports,
    prompts that stopped early and prompts that ran out of budget."""
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "-m", "rsr", "run", str(ROOT / "recipes" / "quickstart.yaml"),
         f"outputs.dir={out}"], capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr
    sft = (out / "sft.jsonl").read_text().splitlines()
    dpo = (out / "dpo.jsonl").read_text().splitlines()
    assert len(sft) >= 5 and len(dpo) >= 3, result.stderr
    stats = json.loads((out / "stats.json").read_text())
    assert stats["prompts"]["satisfied"] >= 5 and stats["prompts"]["exhausted"] >= 1
    assert stats["prompts"]["pending"] == 0 and stats["rollouts"]["truncated"] >= 1
    assert stats["draws"]["saved_fraction"] >= 0.3
    text = subprocess.run([sys.executable, "-m", "rsr", "stats", str(out / "run.db")],
                          capture_output=True, text=True, check=True).stdout
    assert re.search(r"saved \d+\.\d% by satisfied prompts", text) and "Unfinished" not in text


@pytest.mark.slow
def test_quickstart_killed_and_resumed(tmp_path):
    """The quickstart recipe on the embedded model, killed mid-run and resumed
    with `rsr run --db`: a sound ledger and valid training files."""
    db_path = tmp_path / "run.db"
    # The two products: the model never gets them, so they spend all 4 draws.
    overrides = [f"outputs.dir={tmp_path / 'out'}", "sampling.where=id like 'mul-%'",
                 "sampling.max_rollouts=4", "sampling.step_size=2", "sampling.max_tokens=192"]
    command = [sys.executable, "-m", "rsr", "run", str(ROOT / "recipes" / "quickstart.yaml"),
               "--db", str(db_path), "--silent", *overrides]
    process = subprocess.Popen(command, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.5)
        if not db_path.exists():
            continue
        try:
            conn = sqlite3.connect(db_path)
            count = conn.execute("select count(*) from rollouts").fetchone()[0]
            conn.close()
        except sqlite3.Error:
            continue
        if count >= 2:
            break
    killed = process.poll() is None
    if killed:
        os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert killed, "the run finished before it could be interrupted"
    before = open_db(db_path).execute("select count(*) from rollouts").fetchone()[0]
    assert 2 <= before < 8
    resumed = subprocess.run([sys.executable, "-m", "rsr", "run", "--db", str(db_path), "--silent"],
                             capture_output=True, text=True, timeout=900)
    assert resumed.returncode == 0, resumed.stderr
    db = open_db(db_path)
    assert db.execute("select count(*) from prompts").fetchone()[0] == 10
    rows = db.execute("select prompt_id, rollouts from prompt_progress where rollouts > 0").fetchall()
    assert len(rows) == 2 and all(n <= 4 for _, n in rows)
    assert db.execute("select count(*) from steps where received != requested").fetchone()[0] == 0
    out = tmp_path / "out"
    truncated = {r for (r,) in db.execute("select response from rollouts where truncated = 1")}
    for name in ("sft.jsonl", "dpo.jsonl"):
        path = out / name
        if not path.exists():
            continue  # nothing scored as passing: the run says so and writes no file
        for line in path.read_text().splitlines():
            row = json.loads(line)
            if "chosen" in row:
                assert row["chosen"][-1]["content"] != row["rejected"][-1]["content"]
                texts = [row["chosen"][-1]["content"], row["rejected"][-1]["content"]]
            else:
                assert row["messages"][-1]["role"] == "assistant"
                texts = [row["messages"][-1]["content"]]
            assert not truncated & set(texts)
    assert json.loads((out / "stats.json").read_text())["prompts"]["total"] == 10


def test_run_resume_takes_an_inline_api_key_from_the_recipe_again(tmp_path, invoke, monkeypatch,
                                                                  caplog):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    secret = "sk-inline-recipe-key-5150"
    with OpenAIStub(responder=responder, honour_n=False) as stub:
        recipe = stub_recipe(tmp_path, stub.url)
        text = recipe.read_text().replace("${oc.env:STUB_KEY}", secret)
        recipe.write_text(text)
        assert invoke("run", recipe, "--silent").exit_code == 0
        db_path = tmp_path / "out" / "run.db"
        sent = len(stub.requests)
        # Resumed from the ledger alone: the key comes from the recipe file again.
        result = invoke("run", "--db", db_path, "sampling.max_rollouts=6", "--silent")
        assert result.exit_code == 0, result.output
        keys = {r["headers"].get("Authorization") for r in stub.requests[sent:]}
        assert keys == {f"Bearer {secret}"}
        assert "api_key" not in caplog.text
        # The recipe gone and no OPENAI_API_KEY: said in one line, and no key is sent.
        recipe.unlink()
        sent = len(stub.requests)
        result = invoke("run", "--db", db_path, "sampling.max_rollouts=8", "--silent")
        assert result.exit_code == 0, result.output
        assert {r["headers"].get("Authorization") for r in stub.requests[sent:]} == {"Bearer no-key"}
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "\n" not in warnings[0]
    assert warnings[0].startswith("The stored run sent an api_key, which the ledger never keeps,")
    assert f"its recipe {recipe} has none now" in warnings[0]
    for path in (tmp_path / "out").iterdir():
        if path.name.startswith("run.db"):
            assert secret.encode() not in path.read_bytes(), path

"""rsr publish: a folder datasets.load_dataset() reads, and a card from the ledger."""

import json
from pathlib import Path

import pytest
import yaml
from helpers import write_jsonl

datasets = pytest.importorskip("datasets")

RECIPE_KEY = "sk-recipe-SECRET-0001"
FLAG_KEY = "sk-flag-SECRET-0002"
ENV_KEY = "sk-env-SECRET-0003"


def prompts(n=6):
    return [{"id": f"gsm8k-{i}", "messages": [{"role": "user", "content": f"What is {i} + 2?"}],
             "metadata": {"answer": str(i + 2), "source": "gsm8k"}} for i in range(n)]


def answer_by_seed(body):
    "Right for even seeds, wrong for odd ones: a mix of passes and fails."
    question = body["messages"][-1]["content"]
    number = int(question.split()[2]) + 2
    return str(number if body.get("seed", 0) % 2 == 0 else number + 1)


@pytest.fixture
def sampled(tmp_path, invoke, openai_stub, monkeypatch):
    "A ledger sampled twice (a flag key, then a recipe with its own key), keys everywhere."
    monkeypatch.setenv("OPENAI_API_KEY", ENV_KEY)
    openai_stub.responder = answer_by_seed
    db_path = tmp_path / "gsm8k.db"
    data = write_jsonl(tmp_path / "prompts.jsonl", prompts())
    assert invoke("load", db_path, data).exit_code == 0
    result = invoke("sample", db_path, "--base-url", openai_stub.url, "--api-key", FLAG_KEY,
                    "--model", "stub-model", "--verifier", "exact", "--target", "dpo",
                    "--max-rollouts", "4", "--step-size", "2", "--seed", "3", "--limit", "4",
                    "--silent")
    assert result.exit_code == 0, result.output
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump({
        "name": "gsm8k-dpo", "data": {"files": [str(data)]},
        "sampler": {"name": "openai", "base_url": openai_stub.url, "model": "stub-model",
                    "api_key": RECIPE_KEY},
        "sampling": {"target": "dpo", "max_rollouts": 4, "step_size": 2, "seed": 3},
        "verifier": {"name": "exact"},
        "outputs": {"dir": str(tmp_path / "out"), "exports": []},
    }))
    result = invoke("run", recipe, "--db", db_path, "--silent", "--allow-config-change")
    assert result.exit_code == 0, result.output
    return db_path


def test_publish_loads_with_datasets_and_names_its_commands(sampled, tmp_path, invoke):
    folder = tmp_path / "published"
    result = invoke("publish", sampled, folder, "--format", "sft", "--format", "dpo",
                    "--pairs", "best-worst", "--json")
    assert result.exit_code == 0, result.output
    for config in ("sft", "dpo"):
        exported = tmp_path / f"{config}.jsonl"
        args = ["--pairs", "best-worst"] if config == "dpo" else []
        invoke("export", sampled, "--format", config, "-o", exported, *args)
        expected = [json.loads(line) for line in exported.read_text().splitlines()]
        loaded = datasets.load_dataset(str(folder), config, split="train",
                                       cache_dir=str(tmp_path / "cache"))
        assert expected and loaded.to_list() == expected
    summary = json.loads(result.stdout)
    assert summary["configs"] == {"sft": 6, "dpo": len(expected)}

    card = (folder / "README.md").read_text()
    head, body = card.split("---\n", 2)[1:]
    meta = yaml.safe_load(head)
    assert [c["config_name"] for c in meta["configs"]] == ["sft", "dpo"]
    assert meta["configs"][1]["data_files"] == [{"split": "train", "path": "dpo/train.jsonl"}]
    assert meta["license"] == "mit"  # every prompt is from gsm8k
    assert meta["size_categories"] == ["n<1K"] and "dpo" in meta["tags"]
    # The commands that made the data, as typed (the key redacted).
    assert f"`rsr load {sampled} {tmp_path / 'prompts.jsonl'}`" in body
    assert "--api-key '***' --model stub-model --verifier exact --target dpo" in body
    assert f"`rsr run {tmp_path / 'recipe.yaml'} --db {sampled}" in body
    assert '"target": "dpo"' in body and "| stub-model | openai |" in body
    assert "| exact | 6 |" in body and "early stop saved" in body
    assert "![Prompts by pass rate](pass_rates.svg)" in body
    assert (folder / "pass_rates.svg").read_text().startswith("<svg")
    runs = json.loads((folder / "rsr_runs.json").read_text())
    assert [r["command"] for r in runs] == ["load", "sample", "load", "run"]


def test_publish_writes_no_key(sampled, tmp_path, invoke):
    folder = tmp_path / "published"
    assert invoke("publish", sampled, folder, "--format", "sft").exit_code == 0
    written = [path for path in folder.rglob("*") if path.is_file()]
    assert {p.name for p in written} == {"README.md", "train.jsonl", "pass_rates.svg",
                                          "rsr_runs.json"}
    for path in written:
        text = path.read_text()
        for key in (RECIPE_KEY, FLAG_KEY, ENV_KEY, "SECRET"):
            assert key not in text, f"{key} in {path}"


def test_publish_scrubs_a_key_typed_where_none_was_expected(sampled, tmp_path, invoke,
                                                            monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_typed-in-a-where-0004")
    invoke("export", sampled, "--format", "sft", "--where", "'hf_typed-in-a-where-0004' != ''",
           "-o", tmp_path / "x.jsonl")
    folder = tmp_path / "published"
    assert invoke("publish", sampled, folder, "--format", "sft").exit_code == 0
    assert "hf_typed-in-a-where-0004" not in (folder / "README.md").read_text()


def test_publish_refuses_a_folder_it_did_not_write(sampled, tmp_path, invoke):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep me")
    result = invoke("publish", sampled, folder, "--format", "sft")
    assert result.exit_code == 1 and "is not empty and was not written by rsr publish" in result.stderr
    assert [p.name for p in folder.iterdir()] == ["notes.txt"]
    # Its own folder it may write again.
    again = tmp_path / "again"
    assert invoke("publish", sampled, again, "--format", "sft").exit_code == 0
    assert invoke("publish", sampled, again, "--format", "sft").exit_code == 0


def test_push_to_hub_is_off_by_default_and_needs_a_token(sampled, tmp_path, invoke,
                                                         monkeypatch):
    folder = tmp_path / "published"
    result = invoke("publish", sampled, folder, "--format", "sft", "--json")
    assert json.loads(result.stdout)["pushed"] is None
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))  # no stored login either
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    other = tmp_path / "other"
    result = invoke("publish", sampled, other, "--format", "sft", "--push-to-hub", "me/data")
    assert result.exit_code == 1
    assert "--push-to-hub needs a Hugging Face token: set HF_TOKEN" in result.stderr
    assert not other.exists()  # refused before anything was written


def test_push_to_hub_without_huggingface_hub(sampled, tmp_path, invoke, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # as if not installed
    result = invoke("publish", sampled, tmp_path / "p", "--format", "sft", "--push-to-hub", "a/b")
    assert result.exit_code == 1
    assert "--push-to-hub needs huggingface_hub: pip install huggingface_hub" in result.stderr


def test_publish_refuses_an_empty_config(sampled, tmp_path, invoke):
    result = invoke("publish", sampled, tmp_path / "p", "--format", "sft",
                    "--pass-rate-min", "1", "--pass-rate-max", "1", "--where", "id = 'none'")
    assert result.exit_code == 1 and "No sft rows" in result.stderr
    assert Path(tmp_path / "p" / "README.md").exists() is False

"""Exported files load with `datasets` in the shapes TRL's trainers document.

SFTTrainer's conversational format is a `messages` column of {role, content}
turns; DPOTrainer's conversational preference format is `prompt`, `chosen`
and `rejected` columns, each a list of {role, content} turns, with the
prompt ending in a user turn and chosen/rejected holding the assistant turn.
"""

import os

import pytest
from helpers import add_prompt, add_rollout, add_score

from rsr import open_db

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
datasets = pytest.importorskip("datasets")


def is_conversational(example):
    "TRL's test: a known column holding a list of {role, content} dicts."
    for key in ("prompt", "chosen", "rejected", "completion", "messages"):
        value = example.get(key)
        if isinstance(value, list) and value and isinstance(value[0], dict):
            return "role" in value[0] and "content" in value[0]
    return False


@pytest.fixture
def ledger(db_path):
    db = open_db(db_path)
    for i in range(3):
        add_prompt(db, f"p{i}", content=f"Question {i}?")
        db.execute("update prompts set messages = ? where id = ?", [
            '[{"role": "system", "content": "Be brief."}, '
            f'{{"role": "user", "content": "Question {i}?"}}]', f"p{i}"])
        add_score(db, add_rollout(db, f"p{i}", 0, f"right {i}", reasoning="thinking" if i else None),
                  "v", 1)
        add_score(db, add_rollout(db, f"p{i}", 1, f"wrong {i}"), "v", 0)
    return db_path


def turn_features(feature):
    "The {role, content} features inside a list-of-messages column."
    return feature.feature if hasattr(feature, "feature") else feature[0]


def load(path, tmp_path):
    return datasets.load_dataset("json", data_files=str(path), split="train",
                                 cache_dir=str(tmp_path / "hf-cache"))


@pytest.mark.parametrize("reasoning", ["think-tags", "keep", "drop"])
def test_sft_file_loads_as_trl_conversational_language_modeling(ledger, invoke, tmp_path,
                                                                reasoning):
    out = tmp_path / "sft.jsonl"
    assert invoke("export", ledger, "--format", "sft", "-o", out, "--reasoning",
                  reasoning).exit_code == 0
    dataset = load(out, tmp_path)
    assert dataset.column_names == ["messages"]
    assert dataset.num_rows == 3
    if reasoning != "keep":
        # keep adds reasoning_content to some turns only, so datasets types
        # the turns as JSON objects; the values below are the same
        turn = turn_features(dataset.features["messages"])
        assert (turn["role"].dtype, turn["content"].dtype) == ("string", "string")
    for example in dataset:
        assert is_conversational(example)
        assert [m["role"] for m in example["messages"]] == ["system", "user", "assistant"]
    assert dataset[0]["messages"][-1]["content"] == "right 0"
    expected = {"think-tags": "<think>\nthinking\n</think>\n\nright 1", "keep": "right 1",
                "drop": "right 1"}[reasoning]
    assert dataset[1]["messages"][-1]["content"] == expected
    if reasoning == "keep":
        assert dataset[1]["messages"][-1]["reasoning_content"] == "thinking"
        assert dataset[0]["messages"][-1].get("reasoning_content") is None


def test_dpo_file_loads_as_trl_conversational_preference(ledger, invoke, tmp_path):
    out = tmp_path / "dpo.jsonl"
    assert invoke("export", ledger, "--format", "dpo", "-o", out).exit_code == 0
    dataset = load(out, tmp_path)
    assert sorted(dataset.column_names) == ["chosen", "prompt", "rejected"]
    assert dataset.num_rows == 3
    for column in ("prompt", "chosen", "rejected"):
        turn = turn_features(dataset.features[column])
        assert (turn["role"].dtype, turn["content"].dtype) == ("string", "string")
    for example in dataset:
        assert is_conversational(example)
        assert example["prompt"][-1]["role"] == "user"
        assert [m["role"] for m in example["chosen"]] == ["assistant"]
        assert [m["role"] for m in example["rejected"]] == ["assistant"]
        assert example["chosen"][0]["content"] != example["rejected"][0]["content"]
    assert (dataset[0]["chosen"][0]["content"], dataset[0]["rejected"][0]["content"]) == (
        "right 0", "wrong 0")

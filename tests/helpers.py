"""Helpers shared by the tests: data files and small ledgers built by hand."""

import json
from pathlib import Path


ROOT = Path(__file__).resolve().parent.parent
REPO_DATA = ROOT / "data"


def data_file(name):
    "A dataset file the repository ships in data/."
    path = REPO_DATA / name
    assert path.exists(), f"data/{name} is missing"
    return path


def write_jsonl(path, records):
    "Write records as JSONL and return the path."
    path = Path(path)
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def add_rollout(db, prompt_id, sample_index, response="x", *, step=1, truncated=0,
                error=None, completion_tokens=10, finish_reason="stop", reasoning=None):
    "Insert one rollout row directly, as rsr's writers do; returns its id."
    from rsr.selection import response_hash

    return db.execute(
        """insert into rollouts (prompt_id, sample_index, step, response, reasoning,
               finish_reason, truncated, completion_tokens, error, model, sampler, response_hash)
           values (?, ?, ?, ?, ?, ?, ?, ?, ?, 'test-model', 'test', ?)""",
        [prompt_id, sample_index, step, response, reasoning, finish_reason, truncated,
         completion_tokens, error, response_hash(response)],
    ).lastrowid


def add_score(db, rollout_id, verifier, passed, score=None, extracted=None):
    "Insert one score row directly."
    if score is None and passed is not None:
        score = float(passed)
    db.execute(
        "insert into scores (rollout_id, verifier, score, passed, extracted) values (?, ?, ?, ?, ?)",
        [rollout_id, verifier, score, passed, extracted],
    )


def add_prompt(db, prompt_id, content="What is 2+2?", answer="4", **metadata):
    "Insert one prompt row directly."
    db.execute(
        "insert into prompts (id, messages, metadata) values (?, ?, ?)",
        [prompt_id, json.dumps([{"role": "user", "content": content}]),
         json.dumps({"answer": answer, **metadata})],
    )

import json

import pytest
from helpers import write_jsonl

from rsr import open_db
from rsr.loading import prompt_id_for

# The reward matrix of the RLHF book's rejection-sampling chapter (Lambert,
# "Reinforcement Learning from Human Feedback", Rejection Sampling, selection
# example): 5 prompts x 4 completions.
RLHF_BOOK_R = [
    [0.7, 0.3, 0.5, 0.2],
    [0.4, 0.8, 0.6, 0.5],
    [0.9, 0.3, 0.4, 0.7],
    [0.2, 0.5, 0.8, 0.6],
    [0.5, 0.4, 0.3, 0.6],
]


@pytest.fixture
def book_file(tmp_path):
    records = [
        {
            "id": f"x{i}",
            "messages": [{"role": "user", "content": f"prompt {i}"}],
            "rollouts": [{"response": f"y{i},{j}", "score": r} for j, r in enumerate(row, start=1)],
        }
        for i, row in enumerate(RLHF_BOOK_R, start=1)
    ]
    return write_jsonl(tmp_path / "book.jsonl", records)


def exported(invoke, db_path, *args):
    result = invoke("export", db_path, *args)
    assert result.exit_code == 0, result.output
    return [json.loads(line)["messages"][-1]["content"] for line in result.stdout.splitlines()]


def test_import_rlhf_book_matrix_then_best_of_n_and_top_k(db_path, invoke, book_file):
    result = invoke("import", db_path, book_file)
    assert result.exit_code == 0
    assert result.stderr == (
        "Imported 20 rollouts with 20 scores (5 new prompts, 0 already imported)\n"
    )
    # Per prompt, argmax: S(R) = [1, 2, 1, 3, 4]
    assert exported(invoke, db_path, "--format", "best-of-n") == [
        "y1,1",
        "y2,2",
        "y3,1",
        "y4,3",
        "y5,4",
    ]
    # Top 5 overall: indexes 8, 5, 14, 0, 11 of the flattened matrix
    top = exported(invoke, db_path, "--format", "top-k", "--k", "5")
    assert top == ["y3,1", "y2,2", "y4,3", "y1,1", "y3,4"]
    db = open_db(db_path)
    assert db.execute("select count(*), min(verifier), max(verifier) from scores").fetchone() == (
        20,
        "imported",
        "imported",
    )


def test_import_twice_adds_nothing(db_path, invoke, book_file):
    invoke("import", db_path, book_file)
    result = invoke("import", db_path, book_file)
    assert (
        result.stderr == "Imported 0 rollouts with 0 scores (0 new prompts, 20 already imported)\n"
    )
    assert open_db(db_path).execute("select count(*) from rollouts").fetchone()[0] == 20


def test_import_open_instruct_and_flat_shapes(db_path, invoke, tmp_path):
    prompt = [{"role": "user", "content": "What is 2+2?"}]
    open_instruct = write_jsonl(
        tmp_path / "completions.jsonl",
        [
            {
                "messages": prompt + [{"role": "assistant", "content": c}],
                "model_completion": c,
                "reference_completion": "4",
                "model": "tulu",
            }
            for c in ("4", "<think>two plus two</think>It is 4", "5")
        ],
    )
    result = invoke("import", db_path, open_instruct)
    assert result.stderr.startswith("Imported 3 rollouts with 0 scores (1 new prompts")
    pid = prompt_id_for(prompt)
    flat = write_jsonl(
        tmp_path / "flat.jsonl",
        [
            {"prompt_id": pid, "response": "four", "score": True},
            {"prompt_id": pid, "response": "fo", "finish_reason": "length", "score": False},
            {
                "messages": [{"role": "user", "content": "New?"}],
                "response": "yes",
                "score": 0.25,
                "subject": "misc",
            },
        ],
    )
    result = invoke("import", db_path, flat, "--verifier-name", "judge")
    assert result.stderr.startswith("Imported 3 rollouts with 3 scores (1 new prompts")
    db = open_db(db_path)
    rows = db.execute(
        """select r.prompt_id, r.arm, r.sample_index, r.model, r.response, r.reasoning,
                  r.truncated, s.verifier, s.score, s.passed
           from rollouts r left join scores s on s.rollout_id = r.id order by r.id"""
    ).fetchall()
    new_id = prompt_id_for([{"role": "user", "content": "New?"}])
    # Each model's rows are an arm of their own (no model: the default arm),
    # numbered from 0 within it.
    assert rows == [
        (pid, "tulu", 0, "tulu", "4", None, 0, None, None, None),
        (pid, "tulu", 1, "tulu", "It is 4", "two plus two", 0, None, None, None),
        (pid, "tulu", 2, "tulu", "5", None, 0, None, None, None),
        (pid, "default", 0, None, "four", None, 0, "judge", 1.0, 1),
        (pid, "default", 1, None, "fo", None, 1, "judge", 0.0, 0),
        (new_id, "default", 0, None, "yes", None, 0, "judge", 0.25, None),
    ]
    meta = db.execute("select metadata from prompts where id = ?", [pid]).fetchone()[0]
    assert json.loads(meta) == {"reference_completion": "4"}
    assert json.loads(
        db.execute("select metadata from prompts where id = ?", [new_id]).fetchone()[0]
    ) == {"subject": "misc"}
    # the truncated rollout's verdict does not count
    assert db.execute(
        "select passed, failed from verdicts where prompt_id = ?", [pid]
    ).fetchone() == (1, 0)
    assert db.execute("select command, status from runs").fetchall() == [
        ("import", "finished"),
        ("import", "finished"),
    ]


def bad_cases(tmp_path):
    ok = {
        "id": "a",
        "messages": [{"role": "user", "content": "Q"}],
        "rollouts": [{"response": "x"}],
    }
    cases = {
        "malformed": (['{"id": "a"', json.dumps(ok)], ":1: invalid JSON"),
        "unknown shape": ([json.dumps(ok), '{"text": "hello"}'], ":2: not a rollout record"),
        "score type": (
            [json.dumps(ok), json.dumps({**ok, "rollouts": [{"response": "x", "score": "high"}]})],
            ":2: field 'rollouts[0].score' must be a number or true/false",
        ),
        "no response": (
            [json.dumps({**ok, "rollouts": [{"score": 1}]})],
            ":1: rollouts[0] has no 'response'",
        ),
        "unknown prompt": (
            [json.dumps({"prompt_id": "zzz", "response": "x"})],
            ":1: prompt_id 'zzz' is not in the ledger",
        ),
        "changed prompt": (
            [json.dumps({**ok, "id": "g1"})],
            ":1: prompt 'g1' is in the ledger with different messages",
        ),
        "bad role": (
            [json.dumps({**ok, "messages": [{"role": "bot", "content": "Q"}]})],
            ":1: field 'messages[0].role' must be one of",
        ),
    }
    out = []
    for name, (lines, message) in cases.items():
        path = tmp_path / f"{name.replace(' ', '_')}.jsonl"
        path.write_text("\n".join(lines) + "\n")
        out.append((name, path, f"{path}{message}"))
    return out


@pytest.mark.parametrize("case", range(7))
def test_import_bad_input_leaves_ledger_byte_for_byte_unchanged(case, db_path, tmp_path, invoke):
    invoke(
        "load", db_path, write_jsonl(tmp_path / "good.jsonl", [{"id": "g1", "question": "fine"}])
    )
    invoke(
        "import",
        db_path,
        write_jsonl(tmp_path / "first.jsonl", [{"prompt_id": "g1", "response": "r", "score": 1}]),
    )
    name, path, message = bad_cases(tmp_path)[case]
    before = open(db_path, "rb").read()
    result = invoke("import", db_path, path)
    assert result.exit_code == 1, name
    assert result.stderr.startswith("Error: " + message), result.stderr
    assert result.stderr.count("\n") == 1
    assert open(db_path, "rb").read() == before


def test_import_skip_invalid(db_path, tmp_path, invoke):
    source = tmp_path / "mixed.jsonl"
    source.write_text(
        '{"messages": [{"role": "user", "content": "Q"}], "response": "a"}\n'
        '{"messages": \n'
        '{"prompt_id": "nope", "response": "b"}\n'
        '{"messages": [{"role": "user", "content": "Q"}], "response": "c", "score": 1}\n'
    )
    result = invoke("import", db_path, source, "--skip-invalid")
    assert result.exit_code == 0
    assert result.stderr.splitlines()[-1] == (
        "Imported 2 rollouts with 1 scores (1 new prompts, 0 already imported, 2 invalid skipped)"
    )
    assert f"skipped: {source}:3: prompt_id 'nope' is not in the ledger" in result.stderr


def test_import_keeps_empty_answers_without_their_scores(db_path, invoke, tmp_path):
    # An empty answer (whitespace, or reasoning alone) is an invalid rollout:
    # imported, never scored, never a fail.
    rows = [{"messages": [{"role": "user", "content": "2+2?"}], "response": text, "score": False}
            for text in ("4", " \n", "<think>hmm</think>")]
    result = invoke("import", db_path, write_jsonl(tmp_path / "flat.jsonl", rows))
    assert result.stderr.startswith("Imported 3 rollouts with 1 scores")
    db = open_db(db_path)
    assert db.execute("select valid, empty from progress").fetchone() == (1, 2)
    assert db.execute("select passed, failed from verdicts").fetchone() == (0, 1)

import gc
import gzip
import json

import pytest
from helpers import data_file, write_jsonl

from rsr import open_db
from rsr.loading import load_prompts, normalize, prompt_id_for


def count(db_path):
    return open_db(db_path).execute("select count(*) from prompts").fetchone()[0]


def test_load_shared_datasets_twice_adds_nothing(db_path, invoke):
    gsm8k, mmlu = data_file("gsm8k_test.jsonl"), data_file("mcq_mmlu.jsonl")
    result = invoke("load", db_path, gsm8k)
    assert result.exit_code == 0
    assert result.stderr == "Loaded 1,319 new prompts, 0 already present\n"
    invoke("load", db_path, mmlu)
    assert count(db_path) == 1319 + 1278
    again = invoke("load", db_path, gsm8k, mmlu)
    assert again.stderr == "Loaded 0 new prompts, 2,597 already present\n"
    assert count(db_path) == 2597
    row = open_db(db_path).execute(
        "select messages, metadata from prompts where id = 'gsm8k-test-0305'"
    ).fetchone()
    assert json.loads(row[0])[0]["content"].startswith("John arm wrestles 20 people.")
    assert json.loads(row[1])["answer"] == "4"


@pytest.mark.parametrize(
    "record,content,answer",
    [
        ({"question": "Q1", "answer": "7"}, "Q1", "7"),
        ({"prompt": "Q2", "answer": 3}, "Q2", 3),
        ({"problem": "Q3", "answer": "\\frac12", "level": 2}, "Q3", "\\frac12"),
        ({"instruction": "Translate", "input": "hola"}, "Translate\n\nhola", None),
        ({"prompt": [{"role": "user", "content": "Q5"}], "answer": "x"}, "Q5", "x"),
        ({"messages": [{"role": "user", "content": "Q6"}], "metadata": {"answer": "y"}}, "Q6", "y"),
    ],
)
def test_flat_and_chat_shapes(record, content, answer):
    prompt = normalize(record, "f.jsonl:1")
    assert prompt["messages"][-1] == {"role": "user", "content": content}
    assert prompt["metadata"].get("answer") == answer
    assert prompt["id"] == prompt_id_for(prompt["messages"])


def test_extra_fields_become_metadata():
    prompt = normalize({"id": 5, "question": "Q", "answer": "1", "subject": "algebra"}, "f:1")
    assert prompt == {
        "id": "5",
        "messages": [{"role": "user", "content": "Q"}],
        "metadata": {"answer": "1", "subject": "algebra"},
    }


def test_hash_ids_are_stable_across_files(db_path, tmp_path, invoke):
    a = write_jsonl(tmp_path / "a.jsonl", [{"question": "Same?", "answer": "1"}])
    b = write_jsonl(tmp_path / "b.jsonl", [{"question": "Same?", "answer": "1"}, {"question": "New?"}])
    invoke("load", db_path, a)
    assert invoke("load", db_path, b).stderr == "Loaded 1 new prompts, 1 already present\n"
    ids = [r[0] for r in open_db(db_path).execute("select id from prompts order by id")]
    assert len(ids) == 2 and all(i.startswith("h-") and len(i) == 18 for i in ids)


def test_gzip_json_array_and_parquet(db_path, tmp_path, invoke):
    records = [{"id": f"r{i}", "question": f"Q{i}", "answer": str(i)} for i in range(5)]
    gz = tmp_path / "p.jsonl.gz"
    with gzip.open(gz, "wt") as f:
        f.writelines(json.dumps(r) + "\n" for r in records[:2])
    array = tmp_path / "p.json"
    array.write_text(json.dumps(records[2:4], indent=2))
    pq = pytest.importorskip("pyarrow.parquet")
    import pyarrow

    parquet = tmp_path / "p.parquet"
    pq.write_table(pyarrow.Table.from_pylist(records[4:]), parquet)
    result = invoke("load", db_path, gz, array, parquet)
    assert result.stderr == "Loaded 5 new prompts, 0 already present\n"
    sources = dict(open_db(db_path).execute("select id, source from prompts").fetchall())
    assert sources["r0"] == f"{gz}:1"
    assert sources["r3"] == f"{array}:record 2"
    assert sources["r4"] == f"{parquet}:row 1"


def test_transform(db_path, tmp_path, invoke):
    source = write_jsonl(tmp_path / "raw.jsonl", [{"q": "A", "a": 1}, {"q": "skip me"}, {"q": "B", "a": 2}])
    module = tmp_path / "t.py"
    module.write_text(
        "def to_prompt(raw):\n"
        "    if 'a' not in raw:\n"
        "        return None\n"
        "    return {'id': raw['q'], 'messages': [{'role': 'user', 'content': raw['q']}],"
        " 'metadata': {'answer': str(raw['a'])}}\n"
    )
    result = invoke("load", db_path, source, "--transform", f"{module}:to_prompt")
    assert result.stderr == "Loaded 2 new prompts, 0 already present, 1 skipped by the transform\n"
    rows = open_db(db_path).execute("select id, metadata from prompts order by id").fetchall()
    assert rows == [("A", '{"answer": "1"}'), ("B", '{"answer": "2"}')]


def test_on_duplicate(db_path, tmp_path, invoke):
    first = write_jsonl(tmp_path / "1.jsonl", [{"id": "x", "question": "Q", "answer": "1"}])
    fixed = write_jsonl(tmp_path / "2.jsonl", [{"id": "x", "question": "Q", "answer": "2"}])
    invoke("load", db_path, first)
    assert invoke("load", db_path, fixed).stderr == "Loaded 0 new prompts, 1 already present\n"
    assert "answer\": \"1" in open_db(db_path).execute("select metadata from prompts").fetchone()[0]
    result = invoke("load", db_path, fixed, "--on-duplicate", "error")
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: {fixed}:1: prompt id 'x' is already in the ledger; use --on-duplicate skip or replace\n"
    )
    result = invoke("load", db_path, fixed, "--on-duplicate", "replace")
    assert result.stderr == "Loaded 0 new prompts, 0 already present, 1 replaced\n"
    assert json.loads(open_db(db_path).execute("select metadata from prompts").fetchone()[0]) == {
        "answer": "2"
    }


def test_replace_refuses_new_text_for_a_prompt_with_rollouts(db_path, tmp_path, invoke):
    from helpers import add_rollout

    invoke("load", db_path, write_jsonl(tmp_path / "1.jsonl", [{"id": "x", "question": "Q"}]))
    add_rollout(open_db(db_path), "x", 0)
    changed = write_jsonl(tmp_path / "2.jsonl", [{"id": "x", "question": "Other Q"}])
    result = invoke("load", db_path, changed, "--on-duplicate", "replace")
    assert result.exit_code == 1
    assert "already has 1 rollouts sampled from different messages" in result.stderr


def test_duplicate_ids_within_one_file(db_path, tmp_path, invoke):
    source = write_jsonl(tmp_path / "d.jsonl", [{"id": "x", "question": "Q"}, {"id": "x", "question": "R"}])
    result = invoke("load", db_path, source, "--on-duplicate", "error")
    assert result.exit_code == 1
    assert f"{source}:2: duplicate prompt id 'x' (first seen at {source}:1)" in result.stderr
    assert invoke("load", db_path, source).stderr == "Loaded 1 new prompts, 1 already present\n"


GOOD = [{"id": "g1", "question": "fine", "answer": "1"}, {"id": "g2", "question": "also fine"}]


def bad_files(tmp_path):
    "(name, path, extra args, expected message) for every kind of bad input."
    malformed = tmp_path / "malformed.jsonl"
    malformed.write_text('{"question": "ok"}\n{"question": "broken"\n')
    missing = write_jsonl(tmp_path / "missing.jsonl", [{"question": "ok"}, {"answer": "no prompt"}])
    wrong_type = write_jsonl(tmp_path / "wrong.jsonl", [{"messages": [{"role": "user", "content": 5}]}])
    bad_role = write_jsonl(tmp_path / "role.jsonl", [{"messages": [{"role": "bot", "content": "hi"}]}])
    not_utf8 = tmp_path / "latin1.jsonl"
    not_utf8.write_bytes(b'{"question": "ok"}\n{"question": "caf\xe9"}\n')
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n")
    raising = tmp_path / "raising.py"
    raising.write_text(
        "def f(raw):\n"
        "    if raw['question'] == 'two':\n"
        "        raw['nope']\n"
        "    return {'messages': [{'role': 'user', 'content': raw['question']}]}\n"
    )
    garbage = tmp_path / "garbage.py"
    garbage.write_text(
        "def f(raw):\n"
        "    if raw['question'] == 'two':\n"
        "        return ['not', 'a', 'dict']\n"
        "    return {'messages': [{'role': 'user', 'content': raw['question']}]}\n"
    )
    plain = write_jsonl(tmp_path / "plain.jsonl", [{"question": "ok"}, {"question": "two"}])
    no_user = write_jsonl(tmp_path / "no_user.jsonl", [
        {"messages": [{"role": "user", "content": "hi"}]},
        {"messages": [{"role": "system", "content": "Be brief."},
                      {"role": "assistant", "content": "The answer is 4."}]}])
    return [
        ("malformed", malformed, [], f"{malformed}:2: invalid JSON: Expecting ',' delimiter"),
        ("missing", missing, [], f"{missing}:2: no prompt found: expected a 'messages' list"),
        ("wrong type", wrong_type, [], f"{wrong_type}:1: field 'messages[0].content' must be non-empty text"),
        ("bad role", bad_role, [], f"{bad_role}:1: field 'messages[0].role' must be one of"),
        ("not utf-8", not_utf8, [], f"{not_utf8}:2: not valid UTF-8 (byte 0xe9 at column 18)"),
        ("empty", empty, [], f"{empty}: the file is empty (no records)"),
        ("transform raises", plain, ["--transform", f"{raising}:f"],
         f"{plain}:2: the transform raised KeyError: 'nope'"),
        ("transform garbage", plain, ["--transform", f"{garbage}:f"],
         f"{plain}:2: the transform returned list; expected a dict with 'messages'"),
        ("no user turn", no_user, [],
         f"{no_user}:2: field 'messages' holds no user turn (only system, assistant)"),
    ]


@pytest.mark.parametrize("case", range(9))
def test_bad_input_leaves_ledger_byte_for_byte_unchanged(case, db_path, tmp_path, invoke):
    good = write_jsonl(tmp_path / "good.jsonl", GOOD)
    invoke("load", db_path, good)
    name, path, extra, message = bad_files(tmp_path)[case]
    gc.collect()  # close the first load's connection: its WAL is checkpointed
    before = open(db_path, "rb").read()
    # The good file first: its records are part of the same, failed, transaction.
    result = invoke("load", db_path, write_jsonl(tmp_path / "more.jsonl", [{"question": "new"}]), path, *extra)
    assert result.exit_code == 1, name
    assert result.stderr.startswith("Error: " + message), result.stderr
    assert result.stderr.count("\n") == 1  # one clear line, no traceback
    gc.collect()
    assert open(db_path, "rb").read() == before
    assert count(db_path) == 2


def test_skip_invalid_counts(db_path, tmp_path, invoke):
    source = tmp_path / "mixed.jsonl"
    source.write_bytes(
        b'{"question": "one"}\n{"question": \n{"answer": "x"}\n{"question": "caf\xe9"}\n{"question": "two"}\n'
    )
    result = invoke("load", db_path, source, "--skip-invalid")
    assert result.exit_code == 0
    assert result.stderr.splitlines()[-1] == "Loaded 2 new prompts, 0 already present, 3 invalid skipped"
    assert f"skipped: {source}:2: invalid JSON" in result.stderr
    assert count(db_path) == 2


def test_load_records_a_run(db_path, tmp_path):
    db = open_db(db_path)
    load_prompts(db, [write_jsonl(tmp_path / "a.jsonl", GOOD)])
    run = db.execute("select command, status, summary from runs").fetchone()
    assert run == ("load", "finished", "2 added, 0 replaced, 0 already present")

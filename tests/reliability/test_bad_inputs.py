"""Bad input, one kind at a time: each fails with one clear line naming the
problem (no traceback), and the ledger is left exactly as it was.

The small files live in bad_inputs/; the 50 MB lines are made here, in tmp_path.
Most commands run in this process (the same code as `rsr`, without a process
start per case); an exception click did not turn into an `Error:` line fails
the check as a traceback would.
"""

import shutil
import sqlite3
from pathlib import Path

import pytest
from proc import assert_clean_error, cli, dump, integrity, query, rsr

BAD = Path(__file__).parent / "bad_inputs"


@pytest.fixture
def ledger(tmp_path):
    "A ledger holding two prompts; returns its path."
    db_path = tmp_path / "run.db"
    result = rsr("load", db_path, BAD / "good.jsonl")
    assert result.returncode == 0, result.stderr
    return db_path


def assert_unchanged(db_path, before):
    assert integrity(db_path) == [("ok",)]
    assert dump(db_path) == before


@pytest.mark.parametrize("name, words", [
    ("malformed.jsonl", ["malformed.jsonl:3", "invalid JSON"]),
    ("not_an_object.jsonl", ["not_an_object.jsonl:2", "expected a JSON object, got list"]),
    ("messages_not_a_list.jsonl", ["messages_not_a_list.jsonl:2", "'messages'", "list"]),
    ("bad_role.jsonl", ["bad_role.jsonl:2", "role", "'robot'"]),
    ("empty_content.jsonl", ["empty_content.jsonl:2", "content", "non-empty"]),
    ("id_is_a_list.jsonl", ["id_is_a_list.jsonl:2", "'id'", "text or an integer"]),
    ("metadata_not_an_object.jsonl", ["metadata_not_an_object.jsonl:2", "'metadata'", "object"]),
    ("question_is_a_number.jsonl", ["question_is_a_number.jsonl:2", "'question'", "text"]),
    ("no_prompt_field.jsonl", ["no_prompt_field.jsonl:2", "no prompt found"]),
    ("deep_nesting.jsonl", ["deep_nesting.jsonl:2", "nested too deeply"]),
    ("invalid_utf8.jsonl", ["invalid_utf8.jsonl:2", "not valid UTF-8", "0xe9"]),
    ("control_character.jsonl", ["control_character.jsonl:2", "invalid control character"]),
    ("nul_byte.jsonl", ["nul_byte.jsonl:2", "invalid control character"]),
    ("lone_surrogate.jsonl", ["lone_surrogate.jsonl:2", "surrogate"]),
    ("empty.jsonl", ["empty.jsonl", "empty"]),
    ("array_not_records.json", ["array_not_records.json:record 1", "expected a JSON object"]),
])
def test_load_bad_file(ledger, name, words):
    before = dump(ledger)
    # A good file first: one load is one transaction, so its prompts go too.
    result = cli("load", ledger, BAD / "good.jsonl", BAD / name)
    assert_clean_error(result, *words)
    assert_unchanged(ledger, before)


def test_load_50_mb_lines(ledger, tmp_path):
    "A cut-off 50 MB record fails quickly with its line named; a whole one loads intact."
    big = "x" * (50 * 1024 * 1024)
    cut = tmp_path / "cut.jsonl"
    with open(cut, "w") as f:
        f.write('{"id": "small", "question": "q"}\n')
        f.write('{"id": "huge", "question": "' + big + "\n")  # the file ends mid-string
    before = dump(ledger)
    assert_clean_error(cli("load", ledger, cut), "cut.jsonl:2", "invalid JSON", "column")
    assert_unchanged(ledger, before)
    whole = tmp_path / "whole.jsonl"
    with open(whole, "w") as f:
        f.write('{"id": "huge", "question": "' + big + '", "answer": "1"}\n')
    result = rsr("load", ledger, whole)
    assert result.returncode == 0, result.stderr[-2000:]
    stored = query(ledger, "select length(json_extract(messages, '$[0].content')) from prompts where id = 'huge'")
    assert stored == [(len(big),)]


@pytest.mark.parametrize("func, words", [
    ("raises", ["good.jsonl:1", "the transform raised ValueError", "cannot handle record b1"]),
    ("returns_a_list", ["good.jsonl:1", "the transform returned list"]),
    ("returns_a_string", ["good.jsonl:1", "the transform returned str"]),
    ("messages_wrong_type", ["good.jsonl:1", "'messages'", "list"]),
    ("not_json_storable", ["good.jsonl:1", "cannot store the record as JSON", "set"]),
    ("missing_function", ["transforms.py", "no function named 'missing_function'"]),
])
def test_load_with_a_bad_transform(ledger, func, words):
    before = dump(ledger)
    result = cli("load", ledger, BAD / "good.jsonl", "--transform", f"{BAD / 'transforms.py'}:{func}")
    assert_clean_error(result, *words)
    assert_unchanged(ledger, before)


def test_load_with_a_transform_that_does_not_import(ledger):
    before = dump(ledger)
    result = cli("load", ledger, BAD / "good.jsonl", "--transform",
                 f"{BAD / 'transform_syntax_error.py'}:broken")
    assert_clean_error(result, "could not import", "SyntaxError")
    assert_unchanged(ledger, before)


@pytest.mark.parametrize("name, words", [
    ("recipe_unknown_key.yaml", ["recipe_unknown_key.yaml", "temprature"]),
    ("recipe_wrong_type.yaml", ["recipe_wrong_type.yaml", "max_rollouts", "lots"]),
    ("recipe_unknown_section.yaml", ["recipe_unknown_section.yaml", "samplers"]),
    ("recipe_not_a_mapping.yaml", ["recipe_not_a_mapping.yaml"]),
    ("recipe_bad_yaml.yaml", ["recipe_bad_yaml.yaml", "line 4"]),
])
def test_run_bad_recipe(ledger, tmp_path, name, words):
    recipe = tmp_path / name
    shutil.copy(BAD / name, recipe)
    shutil.copy(BAD / "good.jsonl", tmp_path / "good.jsonl")
    before = dump(ledger)
    assert_clean_error(cli("run", recipe, "--db", ledger), *words)
    assert_unchanged(ledger, before)
    # Overrides on the command line are checked the same way.
    good = tmp_path / "good.yaml"
    good.write_text("data: {files: [good.jsonl]}\nverifier: {name: exact}\n")
    assert_clean_error(cli("run", good, "--db", ledger, "sampling.max_steps=many"),
                       "command-line overrides", "max_steps", "many")
    assert_unchanged(ledger, before)


@pytest.mark.parametrize("args", [
    ["load", "{db}", str(BAD / "good.jsonl")],
    ["sample", "{db}", "--base-url", "http://127.0.0.1:9/v1", "--verifier", "exact"],
    ["verify", "{db}", "--verifier", "math"],
    ["export", "{db}", "--format", "sft"],
    ["stats", "{db}"],
    ["info", "{db}"],
    ["browse", "{db}", "--port", "9"],
    ["run", "--db", "{db}"],
], ids=lambda args: args[0])
def test_a_file_that_is_not_sqlite(tmp_path, args):
    db_path = tmp_path / "run.db"
    shutil.copy(BAD / "not_sqlite.db", db_path)
    before = db_path.read_bytes()
    result = cli(*[str(db_path) if a == "{db}" else a for a in args])
    assert_clean_error(result, str(db_path), "not a SQLite database")
    assert db_path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.db"]


def test_a_sqlite_database_that_is_not_a_ledger(tmp_path):
    db_path = tmp_path / "other.db"
    conn = sqlite3.connect(db_path)
    conn.execute("create table songs (title text)")
    conn.execute("insert into songs values ('a')")
    conn.commit()
    conn.close()
    before = db_path.read_bytes()
    for args in (["load", db_path, BAD / "good.jsonl"], ["stats", db_path],
                 ["export", db_path, "--format", "sft"]):
        assert_clean_error(cli(*args), "not an rsr ledger" if args[0] == "load" else "not an rsr database")
    assert db_path.read_bytes() == before


def test_a_damaged_ledger(ledger, tmp_path):
    "A ledger cut short (a copy that did not finish) fails clearly, and its bytes stay."
    big = tmp_path / "many.jsonl"
    big.write_text("".join(f'{{"id": "m{i}", "question": "{"q" * 200} {i}"}}\n' for i in range(300)))
    assert cli("load", ledger, big).returncode == 0
    conn = sqlite3.connect(ledger)
    conn.execute("pragma wal_checkpoint(truncate)")
    conn.close()
    damaged = tmp_path / "damaged.db"
    damaged.write_bytes(ledger.read_bytes()[: 3 * 4096])
    before = damaged.read_bytes()
    for args in (["stats", damaged], ["export", damaged, "--format", "sft"],
                 ["load", damaged, BAD / "good.jsonl"]):
        assert_clean_error(cli(*args), str(damaged), "damaged", "malformed")
    assert damaged.read_bytes() == before

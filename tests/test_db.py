import json
import random
import sqlite3

import pytest
from helpers import add_prompt, add_rollout, add_score

from rsr import open_db
from rsr.db import SCHEMA_SQL, schema_version
from rsr.errors import LedgerError


def shape(db):
    "Everything about a database's structure, for comparing two ledgers."
    objects = db.execute(
        "select type, name, tbl_name from sqlite_master where name not like 'sqlite_%' order by type, name"
    ).fetchall()
    columns = {
        # table_xinfo: generated columns (rollouts.valid) too, with their hidden flag.
        table: [tuple(c) for c in db.execute(f"pragma table_xinfo([{table}])").fetchall()]
        for table in db.table_names() + db.view_names()
    }
    indexes = {
        table: sorted(tuple(i)[1:3] for i in db.execute(f"pragma index_list([{table}])").fetchall())
        for table in db.table_names()
    }
    # Triggers and views as written: an upgrade must replace stale definitions.
    definitions = {
        name: " ".join(sql.split()) for name, sql in db.execute(
            "select name, sql from sqlite_master where type in ('trigger', 'view')")
    }
    return objects, columns, indexes, definitions


def test_open_db_creates_schema(db_path):
    db = open_db(db_path)
    assert {"prompts", "rollouts", "scores", "steps", "runs", "progress", "verdicts"} <= set(
        db.table_names()
    )
    assert {"prompt_progress", "prompt_progress_slow", "verifier_progress_slow"} <= set(
        db.view_names()
    )
    assert db.execute("pragma journal_mode").fetchone()[0] == "wal"
    assert db.execute("pragma foreign_keys").fetchone()[0] == 1
    assert schema_version(db) == "m011_run_engine_stats"


def test_open_db_twice_changes_nothing(db_path):
    first = shape(open_db(db_path))
    assert shape(open_db(db_path)) == first


def test_upgraded_old_ledger_equals_fresh_one(tmp_path, copy_fixture):
    # ledger_v0.db is a ledger from before the progress counters (made by
    # tests/fixtures/make_ledger_v0.py); it holds prompts, rollouts and scores.
    old = open_db(copy_fixture("ledger_v0.db"))
    fresh = open_db(tmp_path / "fresh.db")
    assert shape(old) == shape(fresh)
    # The counters were backfilled and agree with the from-scratch views.
    assert_counters_match(old)
    assert old.execute("select count(*) from progress").fetchone()[0] == 3
    assert old.execute("select sum(passed) from verdicts").fetchone()[0] == 2


def test_upgraded_ledger_from_before_response_hashes(tmp_path, copy_fixture):
    # ledger_v1.db was written by rsr before identical completions were tracked:
    # prompt a passed "4", " 4 " and "four"; b passed "6" twice.
    old = open_db(copy_fixture("ledger_v1.db"))
    assert shape(old) == shape(open_db(tmp_path / "fresh.db"))
    assert_counters_match(old)
    assert old.execute("select prompt_id, passed, distinct_passed from verdicts order by 1").fetchall() == [
        ("a", 3, 2), ("b", 2, 1)]
    assert old.execute("select count(*) from rollouts where response_hash is null").fetchone()[0] == 0


def test_upgraded_ledger_takes_capped_runs_and_keeps_its_runs(tmp_path, copy_fixture):
    # Older ledgers' runs table refuses status 'capped' (a run a cost cap
    # stopped); m008 rebuilds it with every row, id and reference kept.
    path = copy_fixture("ledger_v1.db")
    before = sqlite3.connect(path).execute("select * from runs order by id").fetchall()
    refs = sqlite3.connect(path).execute("select id, run_id from rollouts order by id").fetchall()
    conn = sqlite3.connect(path, isolation_level=None)
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute("insert into runs (command, status) values ('sample', 'capped')")
    conn.close()
    old = open_db(path)
    assert old.execute("select * from runs order by id").fetchall() == before
    assert old.execute("select id, run_id from rollouts order by id").fetchall() == refs
    old.execute("insert into runs (command, status) values ('sample', 'capped')")
    assert old.execute("pragma foreign_key_check").fetchall() == []
    # Older rollouts each pay their own prompt.
    assert {r[0] for r in old.execute("select first_of_request from rollouts")} == {1}


def counters(db):
    progress = db.execute(
        "select prompt_id, rollouts, valid, truncated, errored, steps, requested, completion_tokens, empty"
        " from prompt_progress order by prompt_id"
    ).fetchall()
    verdicts = db.execute(
        "select prompt_id, verifier, passed, failed, unparsed, distinct_passed from verdicts"
        " where passed + failed + unparsed > 0 order by prompt_id, verifier"
    ).fetchall()
    return progress, verdicts


def assert_counters_match(db):
    progress, verdicts = counters(db)
    slow_progress = db.execute(
        "select prompt_id, rollouts, valid, truncated, errored, steps, requested, completion_tokens, empty"
        " from prompt_progress_slow order by prompt_id"
    ).fetchall()
    slow_verdicts = db.execute(
        "select prompt_id, verifier, passed, failed, unparsed, distinct_passed"
        " from verifier_progress_slow"
        " order by prompt_id, verifier"
    ).fetchall()
    assert progress == slow_progress
    assert verdicts == slow_verdicts


def test_counters_agree_with_views_under_random_writes(db_path):
    rng = random.Random(7)
    db = open_db(db_path)
    for i in range(20):
        add_prompt(db, f"p{i}")
    rollout_ids = []
    for _ in range(400):
        action = rng.random()
        if action < 0.6 or not rollout_ids:
            prompt = f"p{rng.randrange(20)}"
            index = db.execute(
                "select coalesce(max(sample_index) + 1, 0) from rollouts where prompt_id = ?",
                [prompt],
            ).fetchone()[0]
            kind = rng.choice(["ok", "ok", "ok", "truncated", "error"])
            rid = add_rollout(
                db, prompt, index,
                response=None if kind == "error" else rng.choice(["4", " 4 ", "four", "4\n", "5"]),
                truncated=int(kind == "truncated"),
                error="HTTP 500" if kind == "error" else None,
                completion_tokens=rng.randrange(1, 50),
            )
            rollout_ids.append(rid)
        elif action < 0.85:
            rid = rng.choice(rollout_ids)
            verifier = rng.choice(["math", "judge"])
            db.execute(
                "insert or ignore into scores (rollout_id, verifier, passed) values (?, ?, ?)",
                [rid, verifier, rng.choice([0, 1, None])],
            )
        elif action < 0.92:
            db.execute(
                "update scores set passed = ? where rowid = (select rowid from scores order by random() limit 1)",
                [rng.choice([0, 1, None])],
            )
        elif action < 0.96:
            db.execute("delete from scores where rowid = (select rowid from scores order by random() limit 1)")
        else:
            prompt = f"p{rng.randrange(20)}"
            step = db.execute(
                "select coalesce(max(step) + 1, 1) from steps where prompt_id = ?", [prompt]
            ).fetchone()[0]
            db.execute("insert into steps (prompt_id, step, requested) values (?, ?, 4)", [prompt, step])
    assert db.execute("select count(*) from scores").fetchone()[0] > 50
    assert_counters_match(db)


def test_truncated_and_errored_rollouts_never_count_as_passes(db_path):
    db = open_db(db_path)
    add_prompt(db, "p")
    add_score(db, add_rollout(db, "p", 0, truncated=1, finish_reason="length"), "math", 1)
    add_score(db, add_rollout(db, "p", 1, response=None, error="timeout"), "math", 1)
    add_score(db, add_rollout(db, "p", 2), "math", 0)
    row = db.execute("select rollouts, valid, truncated, errored from progress").fetchone()
    assert row == (3, 1, 1, 1)
    assert db.execute("select passed, failed from verdicts").fetchone() == (0, 1)


def test_duplicate_sample_index_is_refused(db_path):
    db = open_db(db_path)
    add_prompt(db, "p")
    add_rollout(db, "p", 0)
    with pytest.raises(sqlite3.IntegrityError):
        add_rollout(db, "p", 0)


def test_rollout_for_unknown_prompt_is_refused(db_path):
    db = open_db(db_path)
    with pytest.raises(sqlite3.IntegrityError):
        add_rollout(db, "nope", 0)


def test_not_a_database(tmp_path):
    path = tmp_path / "notes.db"
    path.write_text("these are my notes, not a database\n" * 100)
    before = path.read_bytes()
    with pytest.raises(LedgerError, match="is not a SQLite database"):
        open_db(path)
    assert path.read_bytes() == before


def test_sqlite_database_that_is_not_a_ledger(tmp_path):
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    conn.execute("create table people (name text)")
    conn.commit()
    conn.close()
    with pytest.raises(LedgerError, match="not an rsr ledger"):
        open_db(path)


def test_readonly_open_missing_file(tmp_path):
    with pytest.raises(LedgerError, match="No ledger at .*missing.db .*create it with rsr load"):
        open_db(tmp_path / "missing.db", readonly=True)


def test_schema_sql_is_commented_for_readers():
    # Every table in schema.sql has a comment block right above it.
    lines = SCHEMA_SQL.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("create table"):
            assert lines[i - 1].startswith("--"), line


def test_info_command(db_path, invoke, tmp_path):
    from helpers import write_jsonl

    source = write_jsonl(tmp_path / "p.jsonl", [{"question": "1+1?", "answer": "2"}])
    invoke("load", db_path, source)
    result = invoke("info", db_path, "--json")
    data = json.loads(result.stdout)
    assert data["counts"]["prompts"] == 1
    assert data["schema_version"] == "m011_run_engine_stats"
    assert data["runs"][0]["command"] == "load"
    text = invoke("info", db_path).stdout
    assert "prompts: 1" in text and "#1 load finished" in text


def test_upgrade_makes_old_empty_answers_invalid(tmp_path, copy_fixture):
    # An older rsr scored empty answers like any other: here one failed (" \n")
    # and one "passed" (""). After the upgrade they are invalid rollouts: no
    # score, no verdict, counted as empty; the ledger matches a fresh one.
    path = copy_fixture("ledger_v1.db")
    conn = sqlite3.connect(path)
    with conn:
        for index, (text, passed) in enumerate([(" \n", 0), ("", 1)], start=4):
            rollout = conn.execute(
                "insert into rollouts (prompt_id, sample_index, response) values ('a', ?, ?)",
                [index, text]).lastrowid
            conn.execute("insert into scores (rollout_id, verifier, passed) values (?, 'math', ?)",
                         [rollout, passed])
    assert conn.execute("select passed, failed from verdicts where prompt_id = 'a'").fetchone() == (4, 2)
    conn.close()
    old = open_db(path)
    assert shape(old) == shape(open_db(tmp_path / "fresh.db"))
    assert_counters_match(old)
    assert old.execute("select passed, failed from verdicts where prompt_id = 'a'").fetchone() == (3, 1)
    assert old.execute("select valid, empty from progress where prompt_id = 'a'").fetchone() == (4, 2)
    assert old.execute("select count(*) from scores join rollouts on rollouts.id = rollout_id"
                       " where trim(response) = ''").fetchone() == (0,)


def test_empty_answers_count_as_empty_never_as_verdicts(db_path):
    db = open_db(db_path)
    add_prompt(db, "p")
    for index, text in enumerate(["", "  \t\n", "4"]):
        add_score(db, add_rollout(db, "p", index, response=text), "math", 0)
    assert db.execute("select rollouts, valid, empty from progress").fetchone() == (3, 1, 2)
    assert db.execute("select passed, failed from verdicts").fetchone() == (0, 1)
    assert_counters_match(db)


@pytest.mark.parametrize("args", [
    ["sample", "--base-url", "http://127.0.0.1:9/v1", "--verifier", "exact"],
    ["verify", "--verifier", "exact"],
    ["stats"],
    ["export", "--format", "sft"],
    ["info"],
    ["browse"],
])
def test_commands_never_create_a_ledger_from_a_mistyped_path(tmp_path, invoke, args):
    # Only load, import and run make a ledger; the others refuse a missing one.
    path = tmp_path / "typo.db"
    result = invoke(args[0], str(path), *args[1:])
    assert result.exit_code == 1
    assert result.stderr == (f"Error: No ledger at {path} (the file does not exist): "
                             f"create it with rsr load {path} PROMPTS.jsonl\n")
    assert list(tmp_path.iterdir()) == []


def test_sample_refuses_an_empty_file_as_a_ledger(tmp_path, invoke):
    path = tmp_path / "touched.db"
    path.touch()
    result = invoke("verify", str(path), "--verifier", "exact")
    assert result.exit_code == 1 and "(the file is empty): create it with rsr load" in result.stderr
    assert path.read_bytes() == b""


def newer_ledger(db_path):
    "A ledger a later rsr has migrated further (a migration this rsr does not know)."
    db = open_db(db_path)
    add_prompt(db, "p")
    db.execute("insert into _sqlite_migrations (migration_set, name, applied_at)"
               " values ('rsr', 'm999_from_the_future', '2099-01-01')")
    db.close()
    return db_path


def test_newer_ledger_is_refused_for_writing_and_readable(db_path, invoke):
    newer_ledger(db_path)
    before = sqlite3.connect(db_path).execute("select count(*) from runs").fetchone()
    with pytest.raises(LedgerError, match=(
            r"written by a newer rsr: it has schema migration m999_from_the_future, and rsr \S+ "
            r"knows up to m011_run_engine_stats. Upgrade rsr")):
        open_db(db_path)
    result = invoke("verify", db_path, "--verifier", "exact")
    assert result.exit_code == 1 and "newer rsr" in result.stderr
    assert sqlite3.connect(db_path).execute("select count(*) from runs").fetchone() == before
    # Reading still works.
    assert open_db(db_path, readonly=True).execute("select id from prompts").fetchall() == [("p",)]
    assert invoke("stats", db_path, "--json").exit_code == 0

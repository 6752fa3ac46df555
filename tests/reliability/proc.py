"""Running `rsr` as a real process, and checks on what it printed and stored."""

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

RSR = [sys.executable, "-m", "rsr"]


def env_without_key(**extra):
    "The environment for an rsr process: no inherited API key, plus extra."
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    env.update(extra)
    return env


def rsr(*args, env=None, timeout=120, **kwargs):
    "Run `rsr ARGS...` to completion; returns the CompletedProcess (text)."
    return subprocess.run(RSR + [str(a) for a in args], capture_output=True, text=True,
                          env=env or env_without_key(), timeout=timeout, **kwargs)


def start_rsr(*args, env=None, **kwargs):
    "Start `rsr ARGS...`; returns the Popen (stdout and stderr piped)."
    return subprocess.Popen(RSR + [str(a) for a in args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env or env_without_key(),
                            **kwargs)


def assert_clean_error(result, *words):
    """A failure shown as one line, `Error: ...`, naming the problem (every word
    in words appears in it, case-insensitively), with no traceback."""
    stderr = result.stderr
    assert result.returncode == 1, (result.returncode, stderr)
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("Error: "), stderr
    for word in words:
        assert word.lower() in lines[0].lower(), (word, lines[0])
    return lines[0]


def write_prompts(path, count, answer="right", prefix="p"):
    "count prompts with ids p0000... and a gold answer; returns the path."
    path = Path(path)
    with open(path, "w") as f:
        for i in range(count):
            f.write(json.dumps({"id": f"{prefix}{i:04d}", "question": f"question {i}",
                                "answer": answer}) + "\n")
    return path


def load_ledger(tmp_path, count, **prompt_options):
    "A new ledger at tmp_path/run.db with count prompts, loaded by `rsr load`."
    db_path = tmp_path / "run.db"
    result = rsr("load", db_path, write_prompts(tmp_path / "p.jsonl", count, **prompt_options))
    assert result.returncode == 0, result.stderr
    return db_path


def query(db_path, sql, params=()):
    "Rows of one query on a plain sqlite3 connection (closed afterwards)."
    conn = sqlite3.connect(db_path)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def integrity(db_path):
    return query(db_path, "pragma integrity_check")


def dump(db_path):
    "Every row of every table, as SQL text: equal dumps, equal ledgers."
    conn = sqlite3.connect(db_path)
    try:
        return list(conn.iterdump())
    finally:
        conn.close()


def ledger_files(db_path):
    "The ledger and its -wal and -shm files, where they exist."
    db_path = Path(db_path)
    return [p for p in (db_path, Path(f"{db_path}-wal"), Path(f"{db_path}-shm")) if p.exists()]


class CliResult:
    "What an in-process `rsr` call did, shaped like a CompletedProcess."

    def __init__(self, result):
        self.returncode = result.exit_code
        self.stdout = result.stdout
        self.stderr = result.stderr
        self.exception = result.exception
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            # An exception click did not handle: what a user would see as a traceback.
            import traceback

            self.stderr += "Traceback (most recent call last):\n" + "".join(
                traceback.format_exception(result.exception))


def cli(*args, env=None):
    "Run `rsr ARGS...` in this process (faster than a new process: same code path)."
    from click.testing import CliRunner

    from rsr.commands import cli as rsr_cli

    env = {"OPENAI_API_KEY": None, **(env or {})}
    return CliResult(CliRunner().invoke(rsr_cli, [str(a) for a in args], env=env))

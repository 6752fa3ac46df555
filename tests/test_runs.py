from rsr.runs import redact


def test_redact_hides_secrets_and_keeps_settings():
    config = {"sampler": {"api_key": "sk-1", "max_retries": 3, "engine": {"hf_token": "hf-2"}},
              "sampling": {"max_tokens": 512}, "judge": [{"password": "p"}, {"Authorization": "B"}],
              "empty": {"api_key": None}}
    assert redact(config) == {
        "sampler": {"api_key": "***", "max_retries": 3, "engine": {"hf_token": "***"}},
        "sampling": {"max_tokens": 512}, "judge": [{"password": "***"}, {"Authorization": "***"}],
        "empty": {"api_key": None},
    }


def dead_pid():
    "The id of a process that has exited."
    import subprocess
    import sys

    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_runs_left_running_by_a_killed_process_are_marked_interrupted(tmp_path):
    import os
    import socket

    from helpers import add_prompt, add_rollout

    from rsr import open_db
    from rsr.runs import start_run

    db = open_db(tmp_path / "run.db")
    add_prompt(db, "p")
    host = socket.gethostname()
    rows = [("sample", host, dead_pid()), ("verify", host, dead_pid()),
            ("verify", host, os.getppid()), ("sample", "elsewhere", 4242)]
    for command, hostname, pid in rows:
        db.execute("insert into runs (command, hostname, pid, status) values (?, ?, ?, 'running')",
                   [command, hostname, pid])
    add_rollout(db, "p", 0)
    db.execute("update rollouts set run_id = 1")
    # A verify (no writer lock): only runs whose process is gone from this host.
    start_run(db, "verify", {})
    assert [s for (s,) in db.execute("select status from runs order by id")] == [
        "interrupted", "interrupted", "running", "running", "running"]
    summary = db.execute("select summary from runs where id = 1").fetchone()[0]
    assert summary == (f"found still marked running by a later run (process {rows[0][2]} on "
                       f"{host} was gone); 1 rollouts written")
    # A sample holds the writer lock: any other sample/run marked running died
    # holding it, wherever it ran; verify runs still alive are left alone.
    start_run(db, "sample", {}, holds_writer_lock=True)
    assert [s for (s,) in db.execute("select status from runs order by id")] == [
        "interrupted", "interrupted", "running", "interrupted", "running", "running"]


def test_runs_keep_the_command_line_with_secrets_redacted(tmp_path, invoke):
    import json as json_

    from rsr import open_db as open_ledger

    db_path = tmp_path / "run.db"
    data = tmp_path / "p.jsonl"
    data.write_text('{"id": "a", "messages": [{"role": "user", "content": "hi"}]}\n')
    invoke("load", db_path, data)
    invoke("verify", db_path, "--verifier", "judge", "--verifier-option", "api_key=sk-zz-123",
           "--verifier-option", "base_url=http://127.0.0.1:9/v1")
    argvs = [json_.loads(row[0]) for row in
             open_ledger(db_path).execute("select argv from runs order by id")]
    assert argvs[0] == ["rsr", "load", str(db_path), str(data)]
    assert argvs[1] == ["rsr", "verify", str(db_path), "--verifier", "judge", "--verifier-option",
                        "api_key=***", "--verifier-option", "base_url=http://127.0.0.1:9/v1"]


def test_redact_argv():
    from rsr.runs import redact_argv

    assert redact_argv(["rsr", "sample", "r.db", "--api-key", "sk-1", "--hf-token=abc",
                        "--engine-option", "token=q", "--max-tokens", "5"]) == [
        "rsr", "sample", "r.db", "--api-key", "***", "--hf-token=***",
        "--engine-option", "token=***", "--max-tokens", "5"]

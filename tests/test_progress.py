"""Progress on stderr: a live bar on a real terminal (a pty), plain lines or
nothing elsewhere, and --silent."""

import os
import pty
import re
import select
import signal
import subprocess
import sys
import time

from helpers import write_jsonl
from servers import OpenAIStub

from rsr import open_db
from rsr.progress import Display, format_seconds


def slow_easy_hard(body):
    "Right ('4') on easy prompts, wrong on hard ones, a little slowly."
    time.sleep(0.1)
    return "The answer is 4" if "easy" in body["messages"][-1]["content"] else "I think 5"


PROMPTS = [{"id": f"{kind}-{i}", "question": f"{kind} {i}", "answer": "The answer is 4"}
           for kind in ("easy", "hard") for i in range(2)]


def run_on_pty(command, timeout=120, interrupt_when=None):
    """Run command with stderr on a pseudo-terminal; returns (exit code, stdout,
    what the terminal got). interrupt_when(text so far) says when to send SIGINT."""
    master, slave = pty.openpty()
    env = dict(os.environ, COLUMNS="160", LINES="40")
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=slave, stdin=subprocess.DEVNULL,
                               env=env)
    os.close(slave)
    chunks = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                data = os.read(master, 65536)
            except OSError:  # the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
            if interrupt_when is not None and interrupt_when(b"".join(chunks).decode("utf-8", "replace")):
                process.send_signal(signal.SIGINT)
                interrupt_when = None
        elif process.poll() is not None:
            break
    os.close(master)
    stdout = process.stdout.read().decode()
    process.wait(timeout=10)
    return process.returncode, stdout, b"".join(chunks).decode("utf-8", "replace")


def sample_command(db_path, url, *extra):
    return [sys.executable, "-m", "rsr", "sample", str(db_path), "--base-url", url, "--model", "m",
            "--verifier", "exact", "--max-rollouts", "8", "--step-size", "2", "--concurrency", "1",
            *extra]


def loaded(tmp_path):
    db_path = tmp_path / "run.db"
    subprocess.run([sys.executable, "-m", "rsr", "load", str(db_path),
                    str(write_jsonl(tmp_path / "p.jsonl", PROMPTS))], check=True, capture_output=True)
    return db_path


def test_sample_draws_a_live_bar_on_a_terminal(tmp_path):
    db_path = loaded(tmp_path)
    with OpenAIStub(responder=slow_easy_hard) as stub:
        code, stdout, terminal = run_on_pty(sample_command(db_path, stub.url))
    assert code == 0, terminal
    assert stdout == ""  # progress never touches the data channel
    frames = [f for f in re.split(r"[\r\n]", terminal) if f.startswith("Sampling:")]
    # Redrawn in place, many times, while the run went on.
    assert len(frames) >= 3 and "\r" in terminal
    counts = [tuple(map(int, m.groups())) for m in
              (re.search(r"\| (\d+)/(\d+) \[", f) for f in frames) if m]
    assert counts, frames
    done = [d for d, _ in counts]
    assert done == sorted(done) and done[-1] == 20
    # The budget starts at every prompt's 8 and shrinks as the easy prompts stop
    # at their first step: 2 + 2 + 8 + 8 at the end, all of it drawn.
    assert counts[0][1] == 32 and counts[-1] == (20, 20)
    last = frames[-1]
    assert "100%" in last and "rollouts/s" in last and "tok/s" in last
    assert "pass 20%" in last and "2 satisfied" in last
    # elapsed<remaining, as tqdm writes it
    assert re.search(r"\[\d\d:\d\d<\d\d:\d\d", last)
    assert terminal.rstrip().endswith("0 errors")  # the summary line follows the bar
    assert "20 rollouts in" in terminal


def test_interrupting_leaves_the_bar_and_says_so_below_it(tmp_path):
    db_path = loaded(tmp_path)
    with OpenAIStub(responder=slow_easy_hard) as stub:
        code, _, terminal = run_on_pty(sample_command(db_path, stub.url),
                                       interrupt_when=lambda text: "rollouts/s," in text)
    assert code == 130
    last = terminal.replace("\r\n", "\n").rstrip("\n").split("\n")[-1]
    assert re.fullmatch(r"Interrupted by SIGINT: \d+ rollouts written; re-run to resume", last), terminal
    assert "Sampling:" in terminal


def test_sample_writes_no_bar_when_stderr_is_not_a_terminal(tmp_path):
    db_path = loaded(tmp_path)
    with OpenAIStub(responder=slow_easy_hard) as stub:
        result = subprocess.run(sample_command(db_path, stub.url), capture_output=True, text=True,
                                timeout=120)
    assert result.returncode == 0, result.stderr
    assert "\r" not in result.stderr and "Sampling:" not in result.stderr
    assert result.stderr.splitlines()[-1].startswith("20 rollouts in")


def test_silent_shows_nothing_on_a_terminal(tmp_path):
    db_path = loaded(tmp_path)
    with OpenAIStub(responder=slow_easy_hard) as stub:
        code, _, terminal = run_on_pty(sample_command(db_path, stub.url, "--silent"))
    assert code == 0
    lines = terminal.replace("\r\n", "\n")  # the terminal's own line ends
    assert "Sampling:" not in lines and "\r" not in lines
    assert lines.startswith("20 rollouts in")


def test_verify_and_load_draw_bars_on_a_terminal(tmp_path):
    db_path = tmp_path / "run.db"
    rows = [{"id": f"p{i}", "question": f"q {i}", "answer": "4"} for i in range(3000)]
    code, _, terminal = run_on_pty([sys.executable, "-m", "rsr", "load", str(db_path),
                                    str(write_jsonl(tmp_path / "p.jsonl", rows))])
    assert code == 0, terminal
    # bytes read of the file's size, the rate in bytes, and the records beside them
    assert re.search(r"Loading: 100%\|.*\| (\d+k)/\1 \[.*B/s, 3,000 records\]", terminal)
    db = open_db(db_path)
    for i in range(3000):
        db.execute("insert into rollouts (prompt_id, sample_index, response, finish_reason) "
                   "values (?, 0, ?, 'stop')", [f"p{i}", "4" if i % 3 else "5"])
    code, _, terminal = run_on_pty([sys.executable, "-m", "rsr", "verify", str(db_path),
                                    "--verifier", "math", "--batch-size", "500"])
    assert code == 0, terminal
    frames = [f for f in re.split(r"[\r\n]", terminal) if f.startswith("Verifying (math):")]
    assert frames and "3000/3000" in frames[-1] and "100%" in frames[-1]
    assert "pass 67%" in frames[-1]


def test_plain_lines_come_every_few_seconds(tmp_path):
    out = tmp_path / "log.txt"
    with open(out, "w") as f:
        display = Display("Loading", "records", total=10, file=f, every=0.0)
        display.update(3, 10, line="Loading: 3 of 10")
        display.update(10, 10, line="Loading: 10 of 10")
        display.close()
    assert out.read_text() == "Loading: 3 of 10\nLoading: 10 of 10\n"
    with open(out, "w") as f:
        display = Display("Loading", "records", total=10, file=f, every=3600)
        display.update(3, 10, line="Loading: 3 of 10")
    assert out.read_text() == ""  # a short command stays quiet in a log


def test_format_seconds():
    assert [format_seconds(s) for s in (4.4, 65, 7325)] == ["4s", "1m05s", "2h02m"]

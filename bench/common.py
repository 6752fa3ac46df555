"""Shared pieces of the benchmarks: the stub server process, synthetic prompts,
a fresh ledger, and a figure line that prints the goal beside the measurement."""

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def start_stub(latency=0.0):
    "Start bench/stub_server.py in its own process; returns (process, base_url)."
    process = subprocess.Popen(
        [sys.executable, str(HERE / "stub_server.py"), "--port", "0", "--latency", str(latency)],
        stdout=subprocess.PIPE, text=True,
    )
    line = process.stdout.readline().split()
    if len(line) != 2 or line[0] != "PORT":
        process.kill()
        raise RuntimeError("the stub server did not start")
    return process, f"http://127.0.0.1:{line[1]}/v1"


def mcq_prompts(count):
    "count synthetic four-option questions with gold letters."
    return [
        {
            "id": f"mcq-{i:06d}",
            "messages": [{"role": "user", "content": (
                f"Question {i}: which option is correct?\n\nA. alpha {i}\nB. beta\nC. gamma\nD. delta\n\n"
                "The last line of your response should be 'Answer: $LETTER'.")}],
            "metadata": {"answer": "ABCD"[i % 4]},
        }
        for i in range(count)
    ]


def fresh_ledger(records, name="bench.db", path=None):
    """A new ledger with these prompts loaded, in a temporary folder (or at
    path); returns (db, path)."""
    from rsr import open_db
    from rsr.loading import load_prompts

    folder = Path(tempfile.mkdtemp(prefix="rsr-bench-"))
    source = folder / "prompts.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in records))
    path = Path(path) if path else folder / name
    db = open_db(path)
    load_prompts(db, [source])
    return db, path


def figure(name, value, unit, goal=None, higher_is_better=True):
    "One line: the measurement, and the goal with whether it is met."
    text = f"{name:<52} {value:>12,.2f} {unit}"
    if goal is not None:
        met = value >= goal if higher_is_better else value <= goal
        sign = ">=" if higher_is_better else "<="
        text += f"   (goal {sign} {goal:,}: {'met' if met else 'NOT met'})"
    print(text, flush=True)


def machine():
    "A short description of this machine for the figures table."
    return f"{os.cpu_count()} cores, Python {sys.version.split()[0]}"

"""SIGKILL `rsr sample` at random moments and prove nothing is lost or duplicated."""

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
import zlib

from helpers import write_jsonl
from servers import OpenAIStub

from rsr import open_db

PROMPTS = [{"id": f"p{i:02d}", "question": f"question {i}", "answer": "right"} for i in range(20)]
SAMPLE = ["--verifier", "exact", "--seed", "1", "--max-rollouts", "8", "--step-size", "2",
          "--concurrency", "4", "--silent"]


def seeded_responder(delay):
    "Right or wrong as a pure function of the request's seed, after a short delay."
    rng = random.Random(3)

    def respond(body):
        time.sleep(delay * (0.5 + rng.random()))
        seed = body.get("seed")
        return "right" if zlib.crc32(str(seed).encode()) % 4 == 0 else f"wrong {seed}"

    return respond


def rsr_sample(db_path, url):
    return subprocess.Popen(
        [sys.executable, "-m", "rsr", "sample", str(db_path), "--base-url", url, *SAMPLE],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )


def finished_rollouts(db_path):
    conn = sqlite3.connect(db_path)
    try:
        return set(conn.execute("select prompt_id, sample_index, response, error from rollouts"))
    finally:
        conn.close()


def test_sigkill_at_random_moments_loses_and_duplicates_nothing(tmp_path):
    db_path = tmp_path / "run.db"
    prompts = write_jsonl(tmp_path / "p.jsonl", PROMPTS)
    assert subprocess.run([sys.executable, "-m", "rsr", "load", str(db_path), str(prompts)]).returncode == 0
    # Slow enough answers (0.5 s each, 8 in flight: about 10 s of sampling in
    # all) that six kills 0.8-2 s apart all land before the run could finish,
    # whatever rsr's start-up costs.
    with OpenAIStub(responder=seeded_responder(0.5), honour_n=False) as stub:
        rng = random.Random(11)
        kills, seen = 0, set()
        while kills < 6:
            process = rsr_sample(db_path, stub.url)
            time.sleep(rng.uniform(0.8, 2.0))
            if process.poll() is not None:
                break  # finished before the kill
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
            kills += 1
            conn = sqlite3.connect(db_path)
            assert conn.execute("pragma integrity_check").fetchone() == ("ok",)
            conn.close()
            now = finished_rollouts(db_path)
            assert seen <= now, "a finished rollout disappeared"
            seen = now
        final = rsr_sample(db_path, stub.url)
        _, stderr = final.communicate(timeout=300)
        assert final.returncode == 0, stderr.decode()
    assert kills >= 5

    # The same run without interruptions, on a fresh ledger.
    clean_path = tmp_path / "clean.db"
    subprocess.run([sys.executable, "-m", "rsr", "load", str(clean_path), str(prompts)], check=True)
    with OpenAIStub(responder=seeded_responder(0.0), honour_n=False) as stub:
        clean = rsr_sample(clean_path, stub.url)
        clean.communicate(timeout=300)

    db = open_db(db_path)
    assert db.execute(
        "select count(*) from (select prompt_id, sample_index from rollouts"
        " group by 1, 2 having count(*) > 1)").fetchone()[0] == 0
    assert db.execute("select max(rollouts), max(steps) from progress").fetchone() == (8, 4)
    unfinished = db.execute(
        """select count(*) from prompt_progress pp left join verdicts v
           on v.prompt_id = pp.prompt_id and v.verifier = 'exact'
           where coalesce(v.passed, 0) = 0 and pp.rollouts < 8""").fetchone()[0]
    assert unfinished == 0
    assert db.execute("select count(*) from steps where received != requested").fetchone()[0] == 0
    # Deterministic engine, same seeds: the interrupted ledger equals the clean one.
    assert finished_rollouts(db_path) == finished_rollouts(clean_path)
    assert seen <= finished_rollouts(db_path)


def test_sigint_and_sigterm_write_everything_that_arrived(tmp_path):
    # A stop lands while requests are in flight and writes are queued or running
    # on the writer thread: what the run says it wrote is exactly what is stored,
    # every rollout with its score, every step's count matching its rollouts.
    db_path = tmp_path / "run.db"
    prompts = write_jsonl(tmp_path / "p.jsonl", PROMPTS)
    assert subprocess.run([sys.executable, "-m", "rsr", "load", str(db_path), str(prompts)]).returncode == 0
    # About 2 s of sampling in all: the stop always lands mid-run.
    with OpenAIStub(responder=seeded_responder(0.1)) as stub:
        for signum in (signal.SIGINT, signal.SIGTERM):
            before = len(finished_rollouts(db_path))
            process = rsr_sample(db_path, stub.url)
            deadline = time.monotonic() + 60  # bounds the wait; not a speed check
            while len(finished_rollouts(db_path)) < before + 6 and time.monotonic() < deadline:
                time.sleep(0.05)
            process.send_signal(signum)
            _, stderr = process.communicate(timeout=60)
            stderr = stderr.decode()
            assert process.returncode != 0, stderr
            line = [x for x in stderr.splitlines() if "Interrupted by" in x]
            assert line and signal.Signals(signum).name in line[0], stderr
            written = int(line[0].split(": ")[-1].split(" rollouts written")[0].replace(",", ""))
            assert len(finished_rollouts(db_path)) == before + written
    conn = sqlite3.connect(db_path)
    try:
        assert conn.execute("select count(*) from rollouts r where not exists "
                            "(select 1 from scores s where s.rollout_id = r.id)").fetchone()[0] == 0
        assert conn.execute("""select count(*) from steps s where received != (select count(*)
                            from rollouts r where r.prompt_id = s.prompt_id and r.step = s.step)"""
                            ).fetchone()[0] == 0
        assert [r[0] for r in conn.execute("select status from runs where command = 'sample'")] == [
            "interrupted", "interrupted"]
    finally:
        conn.close()

"""SIGKILL `rsr sample` and `rsr verify` at random moments, 20 rounds in a row on
one ledger, against a server that faults 30% of its requests; then finish the
run and compare everything with an uninterrupted run and with the server's log.

The server ignores n, so every rollout is its own request with its own seed,
and answers as a pure function of that seed: the interrupted run must end with
exactly the ledger (and the exported files) of the uninterrupted one.
"""

import hashlib
import os
import random
import signal
import threading
import time
from collections import Counter

import pytest
from faultserver import FaultServer
from proc import integrity, query, rsr, start_rsr, write_prompts

ROUNDS = 20
PROMPTS = 48
CONCURRENCY, STEP_SIZE = 4, 2
ANSWERS = ["42", "42.0", "The answer is 42", "\\boxed{42}", "41", "43", "7"]
SAMPLE = ["--model", "m", "--verifier", "exact", "--seed", 1, "--max-rollouts", 8,
          "--step-size", STEP_SIZE, "--concurrency", CONCURRENCY, "--request-timeout", 1.0,
          "--max-retries", 40, "--retry-base-delay", 0.01, "--silent"]
VERIFY = ["--verifier", "math", "--workers", 1, "--batch-size", 8, "--silent"]
# Transient faults, plus answers that are properties of a seed (a deterministic
# engine truncates or answers empty for the same seed every time).
KINDS = ("429", "429-retry-after", "500", "502", "503", "hang", "close", "malformed",
         "zero-choices", "length", "empty", "slow")

ROLLOUTS_SQL = """select prompt_id, sample_index, seed, response, finish_reason, truncated, error
                  from rollouts"""
COUNT_SCORES_SQL = "select count(*) from scores"
SCORES_SQL = """select r.prompt_id, r.sample_index, s.verifier, s.score, s.passed, s.extracted
                from scores s join rollouts r on r.id = s.rollout_id"""


def responder(seed, index):
    "One of ANSWERS, a pure function of the seed."
    return ANSWERS[hashlib.sha256(f"{seed}:{index}".encode()).digest()[0] % len(ANSWERS)]


def make_server():
    return FaultServer(seed=5, rate=0.3, kinds=KINDS, honour_n=False, responder=responder,
                       delay_s=0.04, hang_s=1.5, slow_s=0.2, retry_after="0")


def load(db_path, prompts):
    result = rsr("load", db_path, prompts)
    assert result.returncode == 0, result.stderr


def finish(db_path, url):
    "Sample and verify to the end, uninterrupted."
    for args in (["sample", db_path, "--base-url", url, *SAMPLE], ["verify", db_path, *VERIFY]):
        result = rsr(*args, timeout=300)
        assert result.returncode == 0, result.stderr


def clean_run(clean_path):
    with make_server() as server:
        finish(clean_path, server.url)
    clean_path.with_suffix(".ok").touch()


def export(db_path, folder):
    "The sft and dpo files exported from a ledger (by the math verifier), as bytes."
    files = {}
    for format_ in ("sft", "dpo"):
        out = folder / f"{format_}.jsonl"
        result = rsr("export", db_path, "--format", format_, "--verifier", "math", "-o", out)
        assert result.returncode == 0, result.stderr
        files[format_] = out.read_bytes()
    return files


def kill_when(watch, deadline):
    """SIGKILL each process in watch {name: (process, ready, jitter)} once its
    ready() is true plus jitter seconds, unless it ends first; the names killed."""
    killed, pending, due = [], dict(watch), {}
    while pending and time.monotonic() < deadline:
        for name, (process, ready, jitter) in list(pending.items()):
            if process.poll() is not None:
                del pending[name]
            elif name not in due and ready():
                due[name] = time.monotonic() + jitter
            elif name in due and time.monotonic() >= due[name]:
                os.kill(process.pid, signal.SIGKILL)
                process.wait()
                killed.append(name)
                del pending[name]
        time.sleep(0.02)
    return killed


def leftover_processes(db_path, deadline):
    "Processes whose command line names this ledger, once none are left or at deadline."
    while True:
        found = []
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    cmdline = f.read().decode(errors="replace")
            except OSError:
                continue  # it exited while we looked
            if str(db_path) in cmdline.split("\0"):
                found.append((int(pid), cmdline.replace("\0", " ")))
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def by_seed(db_path):
    "{seed: (response, finish_reason)} of the finished rollouts."
    return {seed: (response, reason) for _, _, seed, response, reason, _, error
            in query(db_path, ROLLOUTS_SQL) if error is None}


@pytest.mark.slow
def test_sigkill_loop_of_sample_and_verify_loses_and_duplicates_nothing(tmp_path):
    prompts = write_prompts(tmp_path / "p.jsonl", PROMPTS, answer="42")
    db_path = tmp_path / "run.db"
    load(db_path, prompts)
    # The same run, uninterrupted, on a fresh ledger (beside the loop, to save time).
    clean_path = tmp_path / "clean.db"
    load(clean_path, prompts)
    clean = threading.Thread(target=clean_run, args=(clean_path,))
    clean.start()
    rng = random.Random(20)
    with make_server() as server:
        kills = Counter()
        lost = {}  # epoch -> seeds answered to a killed sampler and not written
        scores_seen = set()
        for epoch in range(1, ROUNDS + 1):
            server.epoch = epoch
            before = by_seed(db_path)
            sampler = start_rsr("sample", db_path, "--base-url", server.url, *SAMPLE)
            verifier = start_rsr("verify", db_path, *VERIFY)
            # Random moments in the work actually done, whatever this machine's
            # speed: after r requests (r = 0: while starting up), r scores.
            requests, scored = rng.randint(0, 50), rng.randint(0, 12) + len(scores_seen)
            killed = kill_when({
                "sample": (sampler, lambda: sum(e.epoch == epoch for e in server.log) >= requests,
                           rng.uniform(0, 0.3)),
                "verify": (verifier, lambda: query(db_path, COUNT_SCORES_SQL)[0][0] >= scored,
                           rng.uniform(0, 0.3)),
            }, time.monotonic() + 60)
            kills.update(killed)
            for name, process in (("sample", sampler), ("verify", verifier)):
                _, stderr = process.communicate(timeout=60)
                assert name in killed or process.returncode == 0, stderr
            assert integrity(db_path) == [("ok",)]
            after = by_seed(db_path)
            # Nothing written disappears or changes; no finished rollout is redone.
            assert after.items() >= before.items()
            answered = [e for e in server.log if e.epoch == epoch and e.choices]
            assert not [e.seed for e in answered if e.seed in before]
            # What was answered but not written was in flight at the kill.
            lost[epoch] = {e.seed for e in answered if e.delivered and e.seed not in after}
            assert len(lost[epoch]) <= CONCURRENCY * STEP_SIZE
            scores = set(query(db_path, SCORES_SQL))
            assert scores >= scores_seen, "a score disappeared or changed"
            scores_seen = scores
        server.epoch = ROUNDS + 1
        finish(db_path, server.url)
    # A verify run with little left to score may finish before its kill point.
    assert kills["sample"] >= ROUNDS // 2 and kills["verify"] >= 2, kills
    # No verifier worker outlived its killed parent.
    assert leftover_processes(db_path, deadline=time.monotonic() + 10) == []

    # The last, uninterrupted run wrote everything it was answered.
    final = by_seed(db_path)
    last = [e for e in server.log if e.epoch == ROUNDS + 1 and e.choices and e.delivered]
    assert all(e.seed in final for e in last)
    # Every rollout lost at a kill was asked for again and is in the ledger.
    assert all(seed in final for seeds in lost.values() for seed in seeds)
    # Every stored rollout is what the server answered for its seed.
    delivered = {(e.seed, text, reason) for e in server.log if e.delivered
                 for _, text, reason in e.choices}
    assert {(seed, *answer) for seed, answer in final.items()} <= delivered
    assert query(db_path, """select count(*) from (select prompt_id, sample_index from rollouts
                             group by 1, 2 having count(*) > 1)""") == [(0,)]
    assert query(db_path, "select count(*) from steps where received != requested") == [(0,)]
    # The counters early stop reads agree with the rows they count.
    assert query(db_path, """select count(*) from (select * from prompt_progress
                             except select * from prompt_progress_slow)""") == [(0,)]
    # No sampler was left marked running by the finished run; killed ones are.
    assert query(db_path, "select status from runs order by id desc limit 2") == [("finished",)] * 2

    clean.join()
    assert clean_path.with_suffix(".ok").exists(), "the uninterrupted run failed"
    assert set(query(db_path, ROLLOUTS_SQL)) == set(query(clean_path, ROLLOUTS_SQL))
    assert set(query(db_path, SCORES_SQL)) == set(query(clean_path, SCORES_SQL))
    (tmp_path / "killed").mkdir()
    (tmp_path / "clean").mkdir()
    killed_files = export(db_path, tmp_path / "killed")
    clean_files = export(clean_path, tmp_path / "clean")
    assert killed_files["sft"] and killed_files["dpo"]
    assert killed_files == clean_files

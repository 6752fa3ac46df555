"""What arrived is written: SIGINT, SIGTERM and SIGKILL against a server that
hangs some requests and ignores n, held against the server's own log.

With a server that ignores n every rollout is its own request, and a step's
requests return at very different times (a hung one only after
--request-timeout). A reply must reach the ledger the moment it arrives, not
when its step's slowest sibling does: so every choice the server delivered
before a SIGINT/SIGTERM is stored, and before a SIGKILL every choice delivered
more than the writer's commit time earlier (FLUSH_MARGIN_S, generous for a
loaded machine) is stored.
"""

import os
import random
import signal
import time

import pytest
from faultserver import FaultServer, content_hash
from proc import integrity, query, start_rsr, write_prompts

PROMPTS = 400
SAMPLE = ["--model", "m", "--verifier", "exact", "--seed", 4, "--max-rollouts", 8,
          "--step-size", 4, "--concurrency", 32, "--request-timeout", 4.0,
          "--max-retries", 3, "--retry-base-delay", 0.01, "--silent"]
# Hangs past the client's timeout, errors, and slow right answers.
KINDS = ("hang", "500", "slow", "empty", "length")
# A reply is committed as soon as the write before it has: one fsync. A second
# is far more than that, even on a busy machine.
FLUSH_MARGIN_S = 1.0

STORED_SQL = "select seed, response from rollouts where error is null"


def make_server():
    return FaultServer(seed=3, rate=0.25, kinds=KINDS, honour_n=False, delay_s=0.02,
                       hang_s=6.0, slow_s=0.3)


def stored(db_path):
    "{(seed, content hash)} of the rollouts that hold an answer."
    return {(seed, content_hash(response)) for seed, response in query(db_path, STORED_SQL)}


def wait_for(condition, timeout=60):
    "Poll until condition() holds (a bound on the wait, not a speed check)."
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert condition()


def delivered_count(server):
    return sum(1 for e in list(server.log) if e.delivered and e.choices)


def assert_ledger_consistent(db_path):
    assert integrity(db_path) == [("ok",)]
    assert query(db_path, """select count(*) from (select prompt_id, sample_index from rollouts
                             group by 1, 2 having count(*) > 1)""") == [(0,)]
    # Each step counts exactly the rollouts written under it, never more than it asked.
    assert query(db_path, """select count(*) from steps s where received > requested
                             or received != (select count(*) from rollouts r
                                 where r.prompt_id = s.prompt_id and r.step = s.step)""") == [(0,)]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_writes_every_reply_delivered_before_it(tmp_path, signum):
    db_path = tmp_path / "run.db"
    prompts = write_prompts(tmp_path / "p.jsonl", PROMPTS)
    assert start_rsr("load", db_path, prompts).wait(timeout=60) == 0
    with make_server() as server:
        process = start_rsr("sample", db_path, "--base-url", server.url, *SAMPLE)
        # Mid-run: many replies delivered, hung requests outstanding.
        wait_for(lambda: delivered_count(server) >= 150
                 and any(e.fault == "hang" and not e.delivered for e in list(server.log)))
        signalled_at = time.monotonic()
        process.send_signal(signum)
        _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert f"Interrupted by {signal.Signals(signum).name}" in stderr
    delivered = server.delivered_choices(before=signalled_at)
    assert len(delivered) >= 150
    assert delivered - stored(db_path) == set()
    assert_ledger_consistent(db_path)
    assert query(db_path, "select status from runs where command = 'sample'") == [("interrupted",)]


@pytest.mark.slow
def test_sigkill_loses_only_replies_of_the_last_moment(tmp_path):
    db_path = tmp_path / "run.db"
    prompts = write_prompts(tmp_path / "p.jsonl", PROMPTS)
    assert start_rsr("load", db_path, prompts).wait(timeout=60) == 0
    rng = random.Random(16)
    with make_server() as server:
        kills = 0
        for epoch in range(1, 6):
            server.epoch = epoch
            count = delivered_count(server)
            process = start_rsr("sample", db_path, "--base-url", server.url, *SAMPLE)
            target = count + rng.randint(10, 80)
            wait_for(lambda: delivered_count(server) >= target or process.poll() is not None)
            time.sleep(rng.uniform(0, 0.8))
            if process.poll() is not None:
                break
            killed_at = time.monotonic()
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
            kills += 1
            # (Replies to an earlier, killed process may be lost: only this one's count.)
            missing = server.delivered_choices(killed_at - FLUSH_MARGIN_S, epoch) - stored(db_path)
            assert missing == set()
            assert_ledger_consistent(db_path)
        final = start_rsr("sample", db_path, "--base-url", server.url, *SAMPLE)
        _, stderr = final.communicate(timeout=300)
        assert final.returncode == 0, stderr
    assert kills == 5
    # The resumed run completed every step a kill cut short.
    assert query(db_path, "select count(*) from steps where received != requested") == [(0,)]
    assert_ledger_consistent(db_path)
    # Killed runs are found by the next one and marked.
    statuses = [s for (s,) in query(db_path, "select status from runs where command = 'sample'")]
    assert statuses[-1] == "finished" and "running" not in statuses


def test_a_second_signal_stops_at_once_and_still_writes_what_arrived(tmp_path):
    db_path = tmp_path / "run.db"
    assert start_rsr("load", db_path, write_prompts(tmp_path / "p.jsonl", PROMPTS)).wait(60) == 0
    with make_server() as server:
        process = start_rsr("sample", db_path, "--base-url", server.url, *SAMPLE)
        wait_for(lambda: delivered_count(server) >= 100
                 and any(e.fault == "hang" and not e.delivered for e in list(server.log)))
        process.send_signal(signal.SIGINT)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    line = [x for x in stderr.splitlines() if "Interrupted by SIGINT" in x]
    assert line, stderr
    reported = int(line[0].split(": ")[-1].split(" rollouts written")[0].replace(",", ""))
    assert query(db_path, "select count(*) from rollouts") == [(reported,)]
    assert_ledger_consistent(db_path)

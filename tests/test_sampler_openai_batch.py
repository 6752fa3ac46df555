"""--sampler openai-batch against a real local Batch API server (tests/batch_api.py):
rounds, early stop between batches, resume after a kill, Ctrl-C, expiry and
partial failures."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from batch_api import BatchAPIStub
from helpers import write_jsonl

from rsr import open_db
from rsr.sampling.plan import derive_seed

PROMPTS = [
    {"id": f"add-{a}-{b}", "messages": [{"role": "user", "content": f"Compute {a} + {b}."}],
     "metadata": {"answer": str(a + b)}}
    for a, b in ((3, 2), (4, 4), (1, 6))
]


def right_for_3_plus_2(body):
    return "5" if "3 + 2" in body["messages"][-1]["content"] else "0"


@pytest.fixture
def batch_api():
    server = BatchAPIStub(answer=right_for_3_plus_2).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def ledger(tmp_path, invoke):
    db_path = str(tmp_path / "run.db")
    assert invoke("load", db_path, write_jsonl(tmp_path / "p.jsonl", PROMPTS)).exit_code == 0
    return db_path


def sample_args(ledger, url, *extra):
    return ["sample", ledger, "--sampler", "openai-batch", "--base-url", url, "--api-key", "sk-b",
            "--model", "m", "--poll-interval", "0.05", "--seed", "5", "--silent", *extra]


def rows(db_path, sql):
    return [tuple(r) for r in open_db(db_path, readonly=True).execute(sql).fetchall()]


def test_openai_batch_rounds_stop_early_between_batches(batch_api, ledger, invoke):
    result = invoke(*sample_args(ledger, batch_api.url, "--verifier", "exact", "--target", "sft",
                                 "--max-rollouts", "4", "--step-size", "2"))
    assert result.exit_code == 0, result.output
    # Round 1: 2 rollouts for each of 3 prompts; round 2: only the 2 without a pass.
    assert batch_api.created == 2
    first, second = (batch_api.input_lines(b) for b in batch_api.batches)
    assert len(first) == 6 and len(second) == 4
    assert {line["body"]["messages"][0]["content"] for line in second} == {
        "Compute 4 + 4.", "Compute 1 + 6."}
    # One line per rollout, each with the seed rsr sample gives that rollout.
    assert sorted(line["body"]["seed"] for line in first) == sorted(
        derive_seed(5, p["id"], i) for p in PROMPTS for i in (0, 1))
    assert rows(ledger, "select prompt_id, count(*), count(distinct sample_index) from rollouts "
                        "group by 1 order by 1") == [("add-1-6", 4, 4), ("add-3-2", 2, 2),
                                                     ("add-4-4", 4, 4)]
    assert rows(ledger, "select batch_id, status, requests from batches order by id") == [
        ("batch-2", "completed", 6), ("batch-5", "completed", 4)]


def test_batch_prompts_sizes_the_rounds(batch_api, ledger, invoke):
    result = invoke(*sample_args(ledger, batch_api.url, "--target", "best-of-n:2",
                                 "--max-rollouts", "2", "--step-size", "2", "--batch-prompts", "2"))
    assert result.exit_code == 0, result.output
    assert [len(batch_api.input_lines(b)) for b in batch_api.batches] == [4, 2]


def start_sample(ledger, url, *extra):
    env = dict(os.environ, RSR_LOAD_PLUGINS="")
    return subprocess.Popen([sys.executable, "-m", "rsr", *sample_args(ledger, url, *extra)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(condition, timeout=60):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


BEST_OF_2 = ("--target", "best-of-n:2", "--max-rollouts", "2", "--step-size", "2")


@pytest.mark.parametrize("forget_batch_id", [False, True])
def test_killed_sample_resumes_polling_its_batch(batch_api, ledger, invoke, forget_batch_id):
    batch_api.hold.clear()  # batches stay in_progress
    process = start_sample(ledger, batch_api.url, *BEST_OF_2)
    try:
        wait_for(lambda: batch_api.created == 1 and batch_api.polls >= 3)
    finally:
        process.kill()
        process.wait()
    assert rows(ledger, "select batch_id, status from batches") == [("batch-2", "in_progress")]
    assert rows(ledger, "select count(*) from rollouts") == [(0,)]
    if forget_batch_id:
        # As if killed between creating the batch and storing its id: the
        # batch is found by its input file.
        db = open_db(ledger)
        db.execute("update batches set batch_id = null, status = 'uploaded'")
        db.close()
    batch_api.hold.set()
    result = invoke(*sample_args(ledger, batch_api.url, *BEST_OF_2))
    assert result.exit_code == 0, result.output
    assert batch_api.created == 1  # never submitted twice
    assert len(batch_api.files) == 2  # the one upload, and the batch's output
    assert rows(ledger, "select prompt_id, group_concat(sample_index) from rollouts "
                        "group by 1 order by 1") == [("add-1-6", "0,1"), ("add-3-2", "0,1"),
                                                     ("add-4-4", "0,1")]
    assert rows(ledger, "select batch_id, status from batches") == [("batch-2", "completed")]


@pytest.mark.parametrize("cancel", [False, True])
def test_ctrl_c_cancels_the_batch_only_when_asked(batch_api, ledger, invoke, cancel):
    batch_api.hold.clear()
    process = start_sample(ledger, batch_api.url, *BEST_OF_2,
                           *(["--cancel-on-interrupt"] if cancel else []))
    try:
        wait_for(lambda: batch_api.polls >= 2)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 130, stderr
    assert "Interrupted by SIGINT: 0 rollouts written; re-run to resume" in stderr
    assert batch_api.cancels == (1 if cancel else 0)
    status = rows(ledger, "select status from batches")
    assert status == [("cancelling",)] if cancel else [("in_progress",)]
    batch_api.hold.set()
    assert invoke(*sample_args(ledger, batch_api.url, *BEST_OF_2)).exit_code == 0
    # A cancelled batch is submitted afresh; a running one is collected.
    assert batch_api.created == (2 if cancel else 1)
    assert rows(ledger, "select count(*), count(distinct prompt_id || ':' || sample_index) "
                        "from rollouts") == [(6, 6)]


@pytest.mark.parametrize("in_error_file", [False, True])
def test_expired_batch_and_failed_requests_become_error_rows(batch_api, ledger, invoke,
                                                             in_error_file):
    failing = derive_seed(5, "add-3-2", 1)
    batch_api.fail = lambda line: line["body"]["seed"] == failing
    batch_api.errors_in_error_file = in_error_file
    batch_api.expire = {1: 2}  # the first batch finishes 2 requests, then expires
    result = invoke(*sample_args(ledger, batch_api.url, "--target", "best-of-n:2",
                                 "--max-rollouts", "4", "--step-size", "2"))
    assert result.exit_code == 0, result.output
    first = [line["custom_id"] for line in batch_api.input_lines("batch-2")]
    assert first[:2] == ["0:0:add-3-2", "0:1:add-3-2"]
    errors = rows(ledger, "select prompt_id, sample_index, error from rollouts "
                          "where error is not null order by prompt_id, sample_index")
    expired = ("batch_expired: This request could not be executed before the completion "
               "window expired.")
    assert errors == [("add-1-6", 0, expired), ("add-1-6", 1, expired),
                      ("add-3-2", 1, "HTTP 500: server error"),
                      ("add-4-4", 0, expired), ("add-4-4", 1, expired)]
    # The second batch asked again for every prompt short of 2 valid rollouts.
    assert batch_api.created == 2
    assert rows(ledger, "select prompt_id, sum(valid), count(*) from rollouts group by 1 "
                        "order by 1") == [("add-1-6", 2, 4), ("add-3-2", 3, 4), ("add-4-4", 2, 4)]
    assert rows(ledger, "select status from batches order by id") == [("expired",), ("completed",)]


def test_failed_batch_stops_the_run_with_its_error(batch_api, ledger, invoke):
    batch_api.invalid = True
    result = invoke(*sample_args(ledger, batch_api.url, *BEST_OF_2))
    assert result.exit_code == 1
    assert "Batch batch-2 failed: model 'm' not found" in result.stderr
    assert rows(ledger, "select count(*) from rollouts") == [(0,)]
    assert rows(ledger, "select status from batches") == [("failed",)]
    assert "sk-b" not in json.dumps(rows(ledger, "select config, argv from runs"))

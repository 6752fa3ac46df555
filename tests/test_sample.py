"""rsr sample against a real HTTP server on 127.0.0.1: early stop, budgets,
retries, truncation, servers that ignore n, secrets."""

import json
import sqlite3

import pytest
from helpers import add_prompt, add_rollout, write_jsonl
from servers import OpenAIStub

from rsr import open_db
from rsr.early_stop import parse_target
from rsr.errors import ConfigError
from rsr.sampling import UPSERT_STEPS, SampleSettings, Work, insert_rows, plan_step


def last_user(body):
    return body["messages"][-1]["content"]


def easy_hard(body):
    "Right ('4') on prompts that say easy, wrong on the others."
    return "The answer is 4" if "easy" in last_user(body) else "I think 5"


@pytest.fixture
def ledger(db_path, tmp_path, invoke):
    def make(records):
        invoke("load", db_path, write_jsonl(tmp_path / "prompts.jsonl", records))
        return db_path

    return make


def sample_args(db_path, stub, *extra):
    return ["sample", db_path, "--base-url", stub.url, "--model", "stub", "--silent",
            "--verifier", "exact", *extra]


def rollout_counts(db_path):
    return dict(open_db(db_path).execute(
        "select prompt_id, count(*) from rollouts group by prompt_id").fetchall())


FOUR = [{"id": "easy-1", "question": "easy one", "answer": "The answer is 4"},
        {"id": "easy-2", "question": "easy two", "answer": "The answer is 4"},
        {"id": "hard-1", "question": "hard one", "answer": "The answer is 4"},
        {"id": "hard-2", "question": "hard two", "answer": "The answer is 4"}]


def test_early_stop_stops_solved_prompts_at_their_first_step(ledger, invoke):
    db_path = ledger(FOUR)
    with OpenAIStub(responder=easy_hard) as stub:
        result = invoke(*sample_args(db_path, stub, "--max-rollouts", "12", "--step-size", "4"))
    assert result.exit_code == 0, result.output
    assert rollout_counts(db_path) == {"easy-1": 4, "easy-2": 4, "hard-1": 12, "hard-2": 12}
    db = open_db(db_path)
    steps = db.execute("select prompt_id, count(*), sum(requested), sum(received) from steps group by prompt_id").fetchall()
    assert steps == [("easy-1", 1, 4, 4), ("easy-2", 1, 4, 4), ("hard-1", 3, 12, 12), ("hard-2", 3, 12, 12)]
    assert result.stderr.startswith("32 rollouts in ")
    assert "2 prompts satisfied, 2 exhausted, 0 pending; 8 passed, 24 failed" in result.stderr
    # Every request asked for step_size completions at once: this server honours n.
    assert [r["body"]["n"] for r in stub.requests] == [4] * 8
    run = db.execute("select command, status, config from runs where command = 'sample'").fetchone()
    assert run[:2] == ("sample", "finished")
    assert json.loads(run[2])["sampling"]["max_rollouts"] == 12


def test_rerun_resumes_and_adds_nothing_when_done(ledger, invoke):
    db_path = ledger(FOUR)
    with OpenAIStub(responder=easy_hard) as stub:
        invoke(*sample_args(db_path, stub, "--max-rollouts", "8"))
        requests = len(stub.requests)
        again = invoke(*sample_args(db_path, stub, "--max-rollouts", "8"))
        assert len(stub.requests) == requests
        assert again.stderr.startswith("0 rollouts in ")
        # A larger budget continues the hard prompts only, from sample index 8.
        invoke(*sample_args(db_path, stub, "--max-rollouts", "12"))
    assert rollout_counts(db_path) == {"easy-1": 4, "easy-2": 4, "hard-1": 12, "hard-2": 12}
    indexes = [r[0] for r in open_db(db_path).execute(
        "select sample_index from rollouts where prompt_id = 'hard-1' order by sample_index")]
    assert indexes == list(range(12))


@pytest.mark.parametrize(
    "target,expected",
    [
        ("dpo", {"easy": 12, "mixed": 2}),  # all-pass never gets its fail
        ("multi-sft:3", {"easy": 4, "mixed": 6}),
        ("best-of-n:6", {"easy": 6, "mixed": 6}),
        ("none", {"easy": 12, "mixed": 12}),
    ],
)
def test_targets(target, expected, ledger, invoke):
    db_path = ledger([{"id": "easy", "question": "easy", "answer": "The answer is 4"},
                      {"id": "mixed", "question": "mixed", "answer": "The answer is 4"}])
    counter = {"n": 0}

    def responder(body):
        if "easy" in last_user(body):
            return "The answer is 4"
        counter["n"] += 1
        return "The answer is 4" if counter["n"] % 2 else "no"

    with OpenAIStub(responder=responder, honour_n=False) as stub:
        result = invoke(*sample_args(db_path, stub, "--target", target, "--max-rollouts", "12",
                                     "--step-size", "2"))
    assert result.exit_code == 0, result.output
    assert rollout_counts(db_path) == expected


def test_max_rollouts_is_a_hard_cap_with_uneven_steps(ledger, invoke):
    db_path = ledger(FOUR[2:])
    with OpenAIStub(responder=easy_hard) as stub:
        invoke(*sample_args(db_path, stub, "--max-rollouts", "7", "--step-size", "3"))
    assert rollout_counts(db_path) == {"hard-1": 7, "hard-2": 7}
    assert sorted(r["body"].get("n", 1) for r in stub.requests) == [1, 1, 3, 3, 3, 3]


def test_max_steps_caps_steps(ledger, invoke):
    db_path = ledger(FOUR[2:3])
    with OpenAIStub(responder=easy_hard) as stub:
        invoke(*sample_args(db_path, stub, "--max-rollouts", "16", "--step-size", "2", "--max-steps", "3"))
    assert rollout_counts(db_path) == {"hard-1": 6}


@pytest.mark.parametrize("args,message", [
    (["--target", "multi-sft:20"], "needs at least 20 rollouts per prompt but --max-rollouts is 16"),
    (["--target", "dpo", "--max-rollouts", "1"],
     "Target dpo needs at least 2 rollouts per prompt but --max-rollouts is 1"),
    (["--target", "multi-sft:5", "--max-rollouts", "3"], "--max-rollouts is 3"),
    (["--target", "best-of-n:6", "--max-steps", "2", "--step-size", "2"],
     "--max-steps 2 x --step-size 2 allows only 4"),
    (["--target", "dpo", "--max-steps", "1", "--step-size", "1"], "allows only 1"),
])
def test_target_that_cannot_be_met_is_refused(ledger, invoke, args, message):
    db_path = ledger(FOUR)
    with OpenAIStub(responder=easy_hard) as stub:
        result = invoke(*sample_args(db_path, stub, *args))
    assert result.exit_code == 1
    assert message in result.stderr and "it could never be met" in result.stderr
    # Refused before anything was asked for or recorded.
    assert stub.requests == []
    db = open_db(db_path)
    assert db.execute("select count(*) from rollouts").fetchone()[0] == 0
    assert db.execute("select count(*) from runs where command = 'sample'").fetchone()[0] == 0


def test_sft_without_a_verifier_is_refused(ledger, invoke):
    result = invoke("sample", ledger(FOUR), "--base-url", "http://127.0.0.1:9/v1")
    assert result.exit_code == 1
    assert "needs a verifier" in result.stderr


def test_429_retry_after_is_honoured(ledger, invoke):
    db_path = ledger(FOUR[:1])
    with OpenAIStub(responder=easy_hard) as stub:
        stub.script.append({"status": 429, "headers": {"Retry-After": "2"}})
        result = invoke(*sample_args(db_path, stub))
    assert result.exit_code == 0
    first, second = stub.requests[0]["time"], stub.requests[1]["time"]
    # Without the header the first backoff is at most 0.5 s.
    assert second - first >= 1.9
    assert "retries 1" in result.stderr
    assert rollout_counts(db_path) == {"easy-1": 4}


def test_500_then_200_succeeds(ledger, invoke):
    db_path = ledger(FOUR[:1])
    with OpenAIStub(responder=easy_hard) as stub:
        stub.script.extend([{"status": 500}, {"status": 503}])
        invoke(*sample_args(db_path, stub))
    assert len(stub.requests) == 3
    errors = open_db(db_path).execute("select count(*) from rollouts where error is not null").fetchone()[0]
    assert errors == 0 and rollout_counts(db_path) == {"easy-1": 4}


def test_timeout_is_retried(ledger, invoke):
    db_path = ledger(FOUR[:1])
    with OpenAIStub(responder=easy_hard) as stub:
        stub.script.append({"hang": 3})
        result = invoke(*sample_args(db_path, stub, "--request-timeout", "1"))
    assert result.exit_code == 0
    assert len(stub.requests) == 2
    assert rollout_counts(db_path) == {"easy-1": 4}


def test_server_that_ignores_n_still_gets_step_size_rollouts(ledger, invoke):
    db_path = ledger(FOUR)
    with OpenAIStub(responder=easy_hard, honour_n=False) as stub:
        invoke(*sample_args(db_path, stub, "--max-rollouts", "8", "--step-size", "4"))
    assert rollout_counts(db_path) == {"easy-1": 4, "easy-2": 4, "hard-1": 8, "hard-2": 8}
    db = open_db(db_path)
    assert db.execute("select count(*) from steps where requested != received").fetchone()[0] == 0
    # After the first reply with one choice, each rollout is its own request.
    assert len(stub.requests) == 24
    # Only the prompts already in flight when it was detected asked for n > 1.
    assert sum(1 for r in stub.requests if r["body"].get("n", 1) > 1) <= 4


def test_truncated_choice_is_stored_and_does_not_satisfy(ledger, invoke):
    db_path = ledger(FOUR[:1])
    with OpenAIStub(responder=easy_hard) as stub:
        stub.script.append({"choices": ["The answer is 4"] * 4, "finish_reason": "length"})
        invoke(*sample_args(db_path, stub, "--step-size", "4"))
    db = open_db(db_path)
    rows = db.execute("select step, truncated, finish_reason from rollouts order by sample_index").fetchall()
    assert rows == [(1, 1, "length")] * 4 + [(2, 0, "stop")] * 4
    # The truncated ones were never scored; the next step's were.
    assert db.execute("select count(*) from scores").fetchone()[0] == 4


def test_request_that_keeps_failing_becomes_error_rows(ledger, invoke):
    db_path = ledger(FOUR[:2])
    with OpenAIStub(responder=easy_hard) as stub:
        stub.script.extend([{"status": 500}] * 3)
        result = invoke(*sample_args(db_path, stub, "--max-retries", "2", "--concurrency", "1"))
    assert result.exit_code == 0
    db = open_db(db_path)
    errors = db.execute("select prompt_id, error from rollouts where error is not null").fetchall()
    assert errors == [("easy-1", "HTTP 500: scripted 500")] * 4
    # The errored step counted toward the budget but the prompt went on to pass.
    assert rollout_counts(db_path) == {"easy-1": 8, "easy-2": 4}


def test_run_stops_when_the_server_is_down(ledger, invoke):
    from servers import free_port

    db_path = ledger(FOUR)
    url = f"http://127.0.0.1:{free_port()}/v1"
    result = invoke("sample", db_path, "--base-url", url, "--verifier", "exact", "--silent",
                    "--max-retries", "0", "--concurrency", "1")
    assert result.exit_code == 1
    # Down from the start: the endpoint is wrong, said in one line.
    assert result.stderr.startswith(f"Error: {url} gave no usable chat completion on the first 3")
    assert "connection error" in result.stderr and len(result.stderr.splitlines()) == 1
    # An outage spends no prompt's budget: nothing was written.
    assert open_db(db_path).execute("select count(*) from rollouts").fetchone()[0] == 0
    run = open_db(db_path).execute("select status from runs where command = 'sample'").fetchone()
    assert run == ("failed",)


def test_api_key_is_sent_but_never_stored(ledger, invoke, tmp_path):
    db_path = ledger(FOUR[:1])
    secret = "sk-test-DO-NOT-STORE-4815162342"
    with OpenAIStub(responder=easy_hard) as stub:
        result = invoke("-v", *sample_args(db_path, stub, "--api-key", secret))
    headers = {k.lower(): v for k, v in stub.requests[0]["headers"].items()}
    assert headers["authorization"] == f"Bearer {secret}"
    assert secret not in result.output
    for path in tmp_path.iterdir():
        if path.name.startswith("run.db"):
            assert secret.encode() not in path.read_bytes(), path


def test_limit_and_where_select_prompts(ledger, invoke):
    db_path = ledger(FOUR)
    with OpenAIStub(responder=easy_hard) as stub:
        invoke(*sample_args(db_path, stub, "--where", "id like 'hard%'", "--limit", "1",
                            "--max-rollouts", "4"))
        bad = invoke(*sample_args(db_path, stub, "--where", "nonsense ="))
    assert rollout_counts(db_path) == {"hard-1": 4}
    assert bad.exit_code == 1 and "is not valid SQL on prompts" in bad.stderr


def stored_seeds(db_path):
    return [r[0] for r in open_db(db_path).execute("select seed from rollouts order by sample_index")]


def ledger_copy(invoke, db_path, records):
    "A second ledger beside the one the `ledger` fixture makes."
    invoke("load", db_path, write_jsonl(db_path.with_suffix(".jsonl"), records))
    return db_path


def test_seeds_derive_from_sample_index(ledger, invoke, tmp_path):
    db_path = ledger(FOUR[2:3])
    with OpenAIStub(responder=easy_hard, honour_n=False) as stub:
        invoke(*sample_args(db_path, stub, "--seed", "7", "--max-rollouts", "4", "--step-size", "2"))
    seeds = stored_seeds(db_path)
    assert len(set(seeds)) == 4
    # The server ignores n: each rollout came from its own request, which
    # carried that rollout's seed (the first request of a step, n=2, the step's
    # first seed).
    assert sorted(r["body"]["seed"] for r in stub.requests) == sorted(seeds)
    # Derived from (--seed, prompt, sample index), not drawn at random: a fresh
    # ledger with the same --seed gets the same seeds, another --seed others.
    for seed, same in (("7", True), ("8", False)):
        other = ledger_copy(invoke, tmp_path / f"seed-{seed}.db", FOUR[2:3])
        with OpenAIStub(responder=easy_hard, honour_n=False) as stub:
            invoke(*sample_args(other, stub, "--seed", seed, "--max-rollouts", "4", "--step-size", "2"))
        if same:
            assert stored_seeds(other) == seeds
        else:
            assert len(stored_seeds(other)) == 4 and not set(stored_seeds(other)) & set(seeds)


def test_plan_completes_a_step_cut_short(db_path):
    db = open_db(db_path)
    add_prompt(db, "p")
    db.execute("insert into steps (prompt_id, step, requested, received) values ('p', 1, 4, 2)")
    add_rollout(db, "p", 1)
    add_rollout(db, "p", 3)
    row = next(db.query("select id, messages, metadata, 2 as rollouts, 1 as steps, 4 as requested, "
                        "1 as last_step, 1 as prompt_steps from prompts"))
    work = plan_step(db, row, SampleSettings(max_rollouts=16, step_size=4))
    assert (work.step, work.indexes, work.requested) == (1, [0, 2], 4)
    row = next(db.query("select id, messages, metadata, 4 as rollouts, 1 as steps, 4 as requested, "
                        "1 as last_step, 1 as prompt_steps from prompts"))
    add_rollout(db, "p", 0)
    add_rollout(db, "p", 2)
    work = plan_step(db, row, SampleSettings(max_rollouts=6, step_size=4))
    assert (work.step, work.indexes, work.requested) == (2, [4, 5], 2)


def test_plan_reuses_the_previous_step_only_when_it_accounts_for_every_rollout(db_path):
    db = open_db(db_path)
    add_prompt(db, "p")
    for index in (0, 1, 3):
        add_rollout(db, "p", index)
    row = next(db.query("select id, messages, metadata, 3 as rollouts, 2 as steps, 3 as requested, "
                        "2 as last_step, 2 as prompt_steps from prompts"))
    settings = SampleSettings(max_rollouts=16, step_size=2)
    previous = Work("p", [{"role": "user", "content": "kept"}], {"answer": "x"}, 2, [3], 1,
                    taken={0, 1}, written=[3])
    work = plan_step(db, row, settings, previous)
    assert (work.indexes, work.taken, work.messages) == ([2, 4], {0, 1, 3}, previous.messages)
    # A previous step that does not add up to the ledger's count is not trusted:
    # the indexes are read from the ledger.
    stale = Work("p", previous.messages, {}, 2, [1], 1, taken={0}, written=[1])
    assert plan_step(db, row, settings, stale).indexes == [2, 4]


@pytest.mark.parametrize("text", ["sft:2", "multi-sft", "best", "dpo:1", "multi-sft:0"])
def test_bad_targets(text):
    with pytest.raises(ConfigError):
        parse_target(text)


def test_dedupe_counts_identical_passes_once(ledger, invoke):
    db_path = ledger([{"id": "same", "question": "easy same", "answer": "The answer is 4"}])
    with OpenAIStub(responder=lambda body: "The answer is 4") as stub:
        # Every completion is the same correct text: without --dedupe, 3 passes
        # arrive in the first step; with it, they are one and the budget runs out.
        invoke(*sample_args(db_path, stub, "--target", "multi-sft:3", "--max-rollouts", "8",
                            "--step-size", "4", "--limit", "1"))
        assert rollout_counts(db_path) == {"same": 4}
        result = invoke(*sample_args(db_path, stub, "--target", "multi-sft:3", "--max-rollouts", "8",
                                     "--step-size", "4", "--dedupe"))
    assert result.exit_code == 0
    assert rollout_counts(db_path) == {"same": 8}
    row = open_db(db_path).execute("select passed, distinct_passed from verdicts").fetchone()
    assert row == (8, 1)


def test_engine_options_a_sampler_does_not_declare_are_refused_before_sampling(ledger, invoke):
    # The openai sampler declares no engine options: one given is an error that
    # names it, and nothing is sent or written (it used to be dropped silently).
    db_path = ledger(FOUR[:1])
    with OpenAIStub(responder=easy_hard) as stub:
        result = invoke(*sample_args(db_path, stub, "--engine-option", "dtype=float32"))
    assert result.exit_code == 1
    assert result.stderr == ("Error: The openai sampler has no option 'dtype' "
                             "(its options: none)\n")
    assert stub.requests == []
    assert open_db(db_path).execute("select count(*) from rollouts").fetchone()[0] == 0


def test_writer_lock_is_not_kept_by_a_forked_child_of_a_killed_sampler(tmp_path):
    import os
    import signal
    import subprocess
    import sys

    from rsr.pipeline import WriterLock

    db_path = tmp_path / "run.db"
    open_db(db_path)
    script = tmp_path / "holder.py"
    script.write_text(
        "import os, sys, time\n"
        "from rsr.pipeline import WriterLock\n"
        f"lock = WriterLock({str(db_path)!r}).__enter__()\n"
        "child = os.fork()\n"
        "if child == 0:\n"
        # The child speaks once it runs, after its fork hooks closed the lock.
        "    print(os.getpid(), flush=True)\n"
        "    time.sleep(60)\n"
        "    os._exit(0)\n"
        "time.sleep(60)\n"
    )
    holder = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    child = int(holder.stdout.readline())
    try:
        with pytest.raises(Exception, match="Another rsr sample is already writing"):
            WriterLock(db_path).__enter__()
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
        # The child is still alive, and the ledger is free.
        os.kill(child, 0)
        with WriterLock(db_path):
            pass
    finally:
        os.kill(child, signal.SIGKILL)


def test_request_body_carries_every_sampling_parameter(ledger, invoke):
    # The sampler posts the body itself: the model, messages, n, the per-request
    # seed, the sampling options and --extra-params all reach the server, and
    # nothing rsr-internal does.
    db_path = ledger(FOUR[:1])
    with OpenAIStub(responder=easy_hard) as stub:
        result = invoke(*sample_args(db_path, stub, "--max-rollouts", "4", "--step-size", "4",
                                     "--temperature", "0.3", "--top-p", "0.9", "--max-tokens", "77",
                                     "--seed", "5",
                                     "--extra-params", '{"top_k": 20, "min_p": 0.05, "stop": ["###"]}'))
    assert result.exit_code == 0, result.output
    (request,) = stub.requests
    body = request["body"]
    seed = open_db(db_path).execute("select seed from rollouts where sample_index = 0").fetchone()[0]
    assert body == {"model": "stub", "messages": [{"role": "user", "content": "easy one"}],
                    "n": 4, "seed": seed, "temperature": 0.3, "top_p": 0.9, "max_tokens": 77,
                    "top_k": 20, "min_p": 0.05, "stop": ["###"]}


def test_multi_row_writes_keep_every_row_once_in_order(tmp_path):
    conn = sqlite3.connect(tmp_path / "t.db")
    conn.execute("create table t (a integer, b text)")
    rows = [(i, f"text {i}\x00with a NUL" if i == 7 else f"text {i}") for i in range(301)]
    insert_rows(conn, ("insert into t (a, b)", "(?, ?)", ""), rows)
    assert conn.execute("select a, b from t order by rowid").fetchall() == rows
    if not hasattr(conn, "setlimit"):
        return  # Python 3.10 cannot lower the limit (and rsr assumes 999 there)
    # An SQLite that takes few parameters per statement gets smaller statements.
    conn.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 9)
    conn.execute("delete from t")
    insert_rows(conn, ("insert into t (a, b)", "(?, ?)", ""), rows[:23])
    assert conn.execute("select a, b from t order by rowid").fetchall() == rows[:23]


def test_step_upserts_in_one_batch_add_up(db_path):
    # A server that ignores n answers a step in several requests, which can land
    # in the same write: the step's row counts them all.
    db = open_db(db_path)
    add_prompt(db, "p")
    rows = [("p", 1, "a", None, 4, 1, "t0", None), ("p", 1, "a", None, 4, 2, "t0", None),
            ("p", 1, "a", None, 4, 1, "t0", None), ("p", 2, "a", None, 2, 2, "t1", "t2")]
    with db.atomic():
        insert_rows(db.conn, UPSERT_STEPS, rows, ("t3",))
    assert db.execute("select step, requested, received, finished_at from steps order by step"
                      ).fetchall() == [(1, 4, 4, "t3"), (2, 2, 2, "t2")]
    assert db.execute("select steps, requested from progress").fetchone() == (2, 6)
    assert db.execute("select steps, requested, last_step from arm_progress where arm = 'a'"
                      ).fetchone() == (2, 6, 2)

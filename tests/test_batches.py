"""Batch rounds: rsr export --format batch-requests plans the next round as rsr
sample would, rsr import reads a batch output file back exactly once."""

import json
import subprocess
import sys

import pytest
from batch_runner import read_lines, run_batch
from helpers import add_prompt, add_rollout, write_jsonl
from vllm_support import ENGINE_OPTIONS, vllm_model  # noqa: F401 (fixture)

from rsr import early_stop, open_db
from rsr.batchfiles import parse_custom_id
from rsr.reasoning import split_reasoning
from rsr.sampling.plan import derive_seed

PROMPTS = [
    {"id": f"add-{a}-{b}", "messages": [{"role": "user", "content": f"Compute {a} + {b}. "
                                          "Reply with just the number."}],
     "metadata": {"answer": str(a + b)}}
    for a, b in ((3, 2), (4, 4), (1, 6))
]


@pytest.fixture
def loaded(tmp_path, invoke):
    db_path = str(tmp_path / "run.db")
    invoke("load", db_path, write_jsonl(tmp_path / "prompts.jsonl", PROMPTS))
    return db_path


def export_round(invoke, db_path, path, *options):
    result = invoke("export", db_path, "--format", "batch-requests", "-o", path, *options)
    assert result.exit_code == 0, result.output
    return read_lines(path)


def pending_ids(db_path, target, verifier, max_rollouts, max_steps, arm="smollm2"):
    "The prompts early_stop says need sampling (in the arm the rounds sample: their model's)."
    db = open_db(db_path, readonly=True)
    params = early_stop.state_params(early_stop.parse_target(target, max_rollouts), verifier,
                                     max_rollouts, max_steps, arm=arm)
    sql = early_stop.states_sql(early_stop.parse_target(target, max_rollouts))
    return {row["id"] for row in db.query(sql, params) if row["needs_sampling"]}


def by_prompt(lines):
    out = {}
    for line in lines:
        key = parse_custom_id(line["custom_id"], "test")
        out.setdefault(key.prompt_id, []).append((key.step, key.requested, key.sample_index))
    return out


def rows(db_path, sql, params=()):
    return [tuple(r) for r in open_db(db_path, readonly=True).execute(sql, params).fetchall()]


ROUND = ("--format-option", "model=smollm2", "--format-option", "target=best-of-n:2",
         "--format-option", "max_rollouts=4", "--format-option", "step_size=2",
         "--format-option", "sampling_seed=7", "--format-option", "max_tokens=48")


@pytest.mark.slow
def test_batch_round_trip_with_llama_server(llama_server, loaded, tmp_path, invoke):
    first = export_round(invoke, loaded, tmp_path / "round1.jsonl", *ROUND)
    assert by_prompt(first) == {p["id"]: [(1, 2, 0), (1, 2, 1)] for p in PROMPTS}
    # One rollout per line, with the seed rsr sample would give it.
    for line in first:
        key = parse_custom_id(line["custom_id"], "test")
        assert key.arm == "smollm2"
        assert line["body"]["seed"] == key.seed == derive_seed(7, key.prompt_id, key.sample_index)
        assert "n" not in line["body"] and line["body"]["max_tokens"] == 48
    ids = {(key.prompt_id, key.sample_index): line["custom_id"]
           for line in first for key in [parse_custom_id(line["custom_id"], "test")]}
    dropped, failed = ids[("add-4-4", 1)], ids[("add-1-6", 0)]
    output = run_batch(tmp_path / "round1.jsonl", tmp_path / "out1.jsonl", base_url=llama_server,
                       drop={dropped}, fail={failed})
    result = invoke("import", loaded, tmp_path / "out1.jsonl")
    assert result.exit_code == 0, result.output
    assert "Imported 5 rollouts" in result.stderr and "1 failed requests" in result.stderr
    stored = dict(((p, i), (resp, seed)) for p, i, resp, seed in rows(
        loaded, "select prompt_id, sample_index, response, seed from rollouts where error is null"))
    for line in output:
        key = parse_custom_id(line["custom_id"], "test")
        if line["response"]["status_code"] == 200:
            content = line["response"]["body"]["choices"][0]["message"]["content"]
            assert stored[(key.prompt_id, key.sample_index)] == (split_reasoning(content)[1],
                                                                 key.seed)
    assert len(stored) == 4
    assert rows(loaded, "select error is not null from rollouts where prompt_id = 'add-1-6' "
                        "and sample_index = 0") == [(1,)]
    assert rows(loaded, "select requested, received, finished_at is null from steps "
                        "where prompt_id = 'add-4-4'") == [(2, 1, 1)]

    # Importing the same output again adds nothing.
    again = invoke("import", loaded, tmp_path / "out1.jsonl")
    assert "Imported 0 rollouts" in again.stderr and "5 already imported" in again.stderr
    assert rows(loaded, "select count(*) from rollouts") == [(5,)]

    # The next round holds exactly the prompts still pending, each with its next step.
    second = export_round(invoke, loaded, tmp_path / "round2.jsonl")
    assert set(by_prompt(second)) == pending_ids(loaded, "best-of-n:2", "", 4, 8)
    assert by_prompt(second)["add-4-4"] == [(1, 2, 1)]  # the lost line, planned again
    assert [line["custom_id"] for line in second if line["custom_id"].endswith("add-4-4")] == [dropped]
    assert by_prompt(second)["add-1-6"] == [(2, 2, 2), (2, 2, 3)]  # a new step after the error



def answer_with_sum(body):
    "A runner that gets add-3-2 right and the others wrong."
    content = body["messages"][-1]["content"]
    return "5" if "3 + 2" in content else "0"


def test_batch_requests_complete_a_step_cut_short(tmp_path, invoke):
    db_path = str(tmp_path / "run.db")
    db = open_db(db_path)
    for prompt_id in ("cut", "fresh", "done", "spent"):
        add_prompt(db, prompt_id)
    # "cut": step 1 asked for 4, got indexes 0 and 2; "done" has a pass;
    # "spent" has its 4 rollouts (all failed).
    for index in (0, 2):
        add_rollout(db, "cut", index)
    db.execute("insert into steps (prompt_id, step, requested, received) values ('cut', 1, 4, 2)")
    passed = add_rollout(db, "done", 0, "4")
    db.execute("insert into scores (rollout_id, verifier, score, passed) values (?, 'exact', 1, 1)",
               [passed])
    for index in range(4):
        rollout = add_rollout(db, "spent", index, "5")
        db.execute("insert into scores (rollout_id, verifier, score, passed) "
                   "values (?, 'exact', 0, 0)", [rollout])
    # The rows above are of the default arm: the round samples that arm.
    lines = export_round(invoke, db_path, tmp_path / "r.jsonl", "--verifier", "exact",
                         "--format-option", "arm=default",
                         "--format-option", "model=m", "--format-option", "max_rollouts=4",
                         "--format-option", "step_size=4", "--format-option", "sampling_seed=1",
                         "--format-option", "temperature=0.2",
                         "--format-option", 'extra_params={"top_k": 5}')
    assert by_prompt(lines) == {"cut": [(1, 4, 1), (1, 4, 3)],
                                "fresh": [(1, 4, 0), (1, 4, 1), (1, 4, 2), (1, 4, 3)]}
    body = lines[0]["body"]
    assert (body["model"], body["temperature"], body["top_k"]) == ("m", 0.2, 5)
    assert body["messages"] == [{"role": "user", "content": "What is 2+2?"}]
    assert lines[0]["url"] == "/v1/chat/completions" and lines[0]["method"] == "POST"


def test_batch_rounds_early_stop_with_the_verifier(loaded, tmp_path, invoke):
    options = ("--verifier", "exact", "--format-option", "model=m", "--format-option",
               "max_rollouts=4", "--format-option", "step_size=2")
    first = export_round(invoke, loaded, tmp_path / "r1.jsonl", *options)
    assert len(first) == 6
    run_batch(tmp_path / "r1.jsonl", tmp_path / "o1.jsonl", answer=answer_with_sum)
    result = invoke("import", loaded, tmp_path / "o1.jsonl", "--verifier", "exact")
    assert result.exit_code == 0, result.output
    assert "Verified with exact: 6 scored: 2 passed, 4 failed" in result.stderr
    # The settings come back from the recorded round: no options needed.
    second = export_round(invoke, loaded, tmp_path / "r2.jsonl")
    assert by_prompt(second) == {"add-4-4": [(2, 2, 2), (2, 2, 3)],
                                 "add-1-6": [(2, 2, 2), (2, 2, 3)]}
    assert {line["body"]["model"] for line in second} == {"m"}
    run_batch(tmp_path / "r2.jsonl", tmp_path / "o2.jsonl", answer=answer_with_sum)
    invoke("import", loaded, tmp_path / "o2.jsonl", "--verifier", "exact")
    # Every prompt has spent its budget or passed: the third round is empty.
    assert export_round(invoke, loaded, tmp_path / "r3.jsonl") == []
    assert rows(loaded, "select prompt_id, count(*), max(step) from rollouts group by 1 "
                        "order by 1") == [("add-1-6", 4, 2), ("add-3-2", 2, 1), ("add-4-4", 4, 2)]
    assert rows(loaded, "select count(*) from steps where finished_at is null") == [(0,)]


def test_import_batch_error_lines_are_error_rows(loaded, tmp_path, invoke):
    export_round(invoke, loaded, tmp_path / "r1.jsonl", "--format-option", "model=m",
                 "--format-option", "target=best-of-n:1", "--format-option", "step_size=1")
    lines = read_lines(tmp_path / "r1.jsonl")
    out = [{"id": "b1", "custom_id": lines[0]["custom_id"], "response": None,
            "error": {"code": "batch_expired", "message": "This request could not be executed "
                      "before the completion window expired."}},
           {"id": "b2", "custom_id": lines[1]["custom_id"],
            "response": {"status_code": 200, "body": {"model": "m", "choices": [
                {"index": 0, "message": {"role": "assistant", "content": "<think>hm</think>8"},
                 "finish_reason": "stop"}], "usage": {"prompt_tokens": 5, "completion_tokens": 4}}},
            "error": None},
           {"id": "b3", "custom_id": lines[2]["custom_id"],
            "response": {"status_code": 200, "body": {"model": "m", "choices": [
                {"index": 0, "message": {"role": "assistant", "content": "12"},
                 "finish_reason": "length"}]}}, "error": None}]
    write_jsonl(tmp_path / "o1.jsonl", out)
    result = invoke("import", loaded, tmp_path / "o1.jsonl", "--json")
    assert json.loads(result.stdout)["error_rows"] == 1
    assert rows(loaded, "select prompt_id, error, response, reasoning, truncated, completion_tokens, "
                        "sampler from rollouts order by prompt_id") == [
        ("add-1-6", None, "12", None, 1, None, "batch"),
        ("add-3-2", "batch_expired: This request could not be executed before the completion "
                    "window expired.", None, None, 0, None, "batch"),
        ("add-4-4", None, "8", "hm", 0, 4, "batch"),
    ]
    # The expired and the truncated request are retried under new sample indexes.
    again = export_round(invoke, loaded, tmp_path / "r2.jsonl")
    assert by_prompt(again) == {"add-3-2": [(2, 1, 1)], "add-1-6": [(2, 1, 1)]}


@pytest.mark.parametrize("custom_id, message", [
    ("request-1", "custom_id 'request-1' was not written by 'rsr export --format batch-requests'"),
    ("rsr:1:1:0::m:nowhere", "custom_id names prompt 'nowhere', which is not in this ledger"),
])
def test_import_batch_output_refuses_foreign_lines(loaded, tmp_path, invoke, custom_id, message):
    export_round(invoke, loaded, tmp_path / "r1.jsonl", "--format-option", "model=m",
                 "--format-option", "target=none", "--format-option", "step_size=1")
    run_batch(tmp_path / "r1.jsonl", tmp_path / "o1.jsonl", answer=lambda body: "1")
    good = read_lines(tmp_path / "o1.jsonl")
    write_jsonl(tmp_path / "o1.jsonl", good + [dict(good[0], custom_id=custom_id)])
    result = invoke("import", loaded, tmp_path / "o1.jsonl")
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: {tmp_path / 'o1.jsonl'}:4: {message}")
    assert result.stderr.count("\n") == 1
    # One bad line fails the whole import: nothing is stored.
    assert rows(loaded, "select count(*) from rollouts") == [(0,)]


def test_batch_requests_need_a_model_and_a_verifier_for_sft(loaded, tmp_path, invoke):
    result = invoke("export", loaded, "--format", "batch-requests", "-o", tmp_path / "r.jsonl")
    assert result.exit_code == 1
    assert "counts passes, so the round needs the verifier" in result.stderr
    result = invoke("export", loaded, "--format", "batch-requests", "--verifier", "exact")
    assert result.exit_code == 1
    assert "Batch requests name a model: pass --format-option model=NAME" in result.stderr
    result = invoke("export", loaded, "--format", "batch-requests", "--format-option", "beams=2")
    assert "The batch-requests format has no option 'beams'" in result.stderr
    assert not (tmp_path / "r.jsonl").exists()


def test_stats_read_the_round_settings(loaded, tmp_path, invoke):
    export_round(invoke, loaded, tmp_path / "r1.jsonl", *ROUND)
    run_batch(tmp_path / "r1.jsonl", tmp_path / "o1.jsonl", answer=lambda body: "ok")
    invoke("import", loaded, tmp_path / "o1.jsonl")
    stats = json.loads(invoke("stats", loaded, "--json").stdout)
    assert (stats["target"], stats["max_rollouts"]) == ("best-of-n:2", 4)
    assert stats["prompts"]["satisfied"] == 3


@pytest.mark.slow
@pytest.mark.vllm
def test_batch_round_trip_with_vllm_run_batch(vllm_model, loaded, tmp_path, invoke):  # noqa: F811
    round_options = [a.replace("model=smollm2", f"model={vllm_model}") for a in ROUND]
    first = export_round(invoke, loaded, tmp_path / "round1.jsonl", *round_options)
    assert len(first) == 6
    engine = ["--dtype", ENGINE_OPTIONS["dtype"], "--enforce-eager",
              "--max-model-len", str(ENGINE_OPTIONS["max_model_len"]),
              "--max-num-batched-tokens", str(ENGINE_OPTIONS["max_num_batched_tokens"]),
              "--kv-cache-memory-bytes", str(ENGINE_OPTIONS["kv_cache_memory_bytes"])]
    subprocess.run([sys.executable, "-m", "vllm.entrypoints.openai.run_batch",
                    "-i", str(tmp_path / "round1.jsonl"), "-o", str(tmp_path / "out1.jsonl"),
                    "--model", vllm_model, *engine], check=True, timeout=900,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    output = read_lines(tmp_path / "out1.jsonl")
    assert len(output) == 6 and all(o["response"]["status_code"] == 200 for o in output)
    # A runner that lost one result: that rollout is asked again next round.
    lost = next(o["custom_id"] for o in output if o["custom_id"].endswith(":add-4-4")
                and o["custom_id"].split(":")[3] == "1")
    write_jsonl(tmp_path / "out1.jsonl", [o for o in output if o["custom_id"] != lost])
    result = invoke("import", loaded, tmp_path / "out1.jsonl")
    assert "Imported 5 rollouts" in result.stderr
    again = invoke("import", loaded, tmp_path / "out1.jsonl")
    assert "Imported 0 rollouts" in again.stderr and "5 already imported" in again.stderr
    stored = rows(loaded, "select prompt_id, sample_index, model, response, seed from rollouts")
    assert len(stored) == 5 and {r[2] for r in stored} == {vllm_model}
    by_key = {(key.prompt_id, key.sample_index): o
              for o in output for key in [parse_custom_id(o["custom_id"], "test")]}
    for prompt_id, index, _, response, seed in stored:
        body = by_key[(prompt_id, index)]["response"]["body"]
        assert response == split_reasoning(body["choices"][0]["message"]["content"])[1]
        assert seed == derive_seed(7, prompt_id, index)
    second = export_round(invoke, loaded, tmp_path / "round2.jsonl")
    assert set(by_prompt(second)) == pending_ids(loaded, "best-of-n:2", "", 4, 8, arm=vllm_model)
    assert lost in [line["custom_id"] for line in second]

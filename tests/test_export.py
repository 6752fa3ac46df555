import json

import pytest
from helpers import add_prompt, add_rollout, add_score

from rsr import hookimpl, open_db
from rsr.plugins import pm


def build(db_path, prompts):
    """prompts: {prompt_id: [(response, passed, score, extra kwargs)]}, verifier 'v'."""
    db = open_db(db_path)
    with db.atomic():
        for prompt_id, rollouts in prompts.items():
            add_prompt(db, prompt_id, content=f"Q {prompt_id}", level=int(prompt_id[1:]))
            for index, (response, passed, score, extra) in enumerate(rollouts):
                rollout_id = add_rollout(db, prompt_id, index, response, **extra)
                add_score(db, rollout_id, "v", passed, score)
    db.close()  # checkpoints the WAL: later byte comparisons see a settled file


OK = {}
LEDGER = {
    # all pass: three lengths, for the pick rules
    "p1": [("aaa", 1, None, OK), ("b", 1, None, OK), ("cc", 1, None, OK)],
    # mixed, with a whitespace duplicate, a truncated and an errored pass
    "p2": [
        ("right", 1, None, OK),
        ("wrong", 0, None, OK),
        ("  right \n", 1, None, OK),
        ("cut off", 1, None, {"truncated": 1, "finish_reason": "length"}),
        ("boom", 1, None, {"error": "HTTP 500"}),
    ],
    # all fail
    "p3": [("no", 0, None, OK), ("nope", 0, None, OK)],
    # only a truncated rollout, scored as a pass
    "p4": [("trunc", 1, None, {"truncated": 1, "finish_reason": "length"})],
}


@pytest.fixture
def ledger(db_path):
    build(db_path, LEDGER)
    return db_path


def export(invoke, db_path, *args):
    result = invoke("export", db_path, *args)
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines()], result.stderr


def answers(rows):
    return [(r["messages"][0]["content"], r["messages"][-1]["content"]) for r in rows]


def pairs(rows):
    return [
        (r["prompt"][0]["content"], r["chosen"][0]["content"], r["rejected"][0]["content"])
        for r in rows
    ]


@pytest.mark.parametrize(
    "args,expected",
    [
        ([], [("Q p1", "b"), ("Q p2", "right")]),
        (["--pick", "first"], [("Q p1", "aaa"), ("Q p2", "right")]),
        (
            ["--per-prompt", "2"],
            [("Q p1", "b"), ("Q p1", "cc"), ("Q p2", "right"), ("Q p2", "  right \n")],
        ),
        (["--per-prompt", "2", "--dedupe"], [("Q p1", "b"), ("Q p1", "cc"), ("Q p2", "right")]),
        # p2's pass rate is 2/3 counting the duplicate, 1/2 counting it once
        (["--pass-rate-max", "0.6"], []),
        (["--pass-rate-max", "0.6", "--dedupe"], [("Q p2", "right")]),
        (["--pass-rate-min", "0.9"], [("Q p1", "b")]),
        (["--where", "json_extract(metadata, '$.level') >= 2"], [("Q p2", "right")]),
    ],
)
def test_export_sft(ledger, invoke, args, expected):
    rows, stderr = export(invoke, ledger, "--format", "sft", *args)
    assert answers(rows) == expected
    assert stderr.endswith(f"Exported {len(expected)} rows (sft, verifier v)\n")
    # An empty export says why, on the line before its count.
    assert stderr.startswith("No sft rows: ") == (not expected)
    assert all(r["messages"][-1]["role"] == "assistant" and len(r["messages"]) == 2 for r in rows)


def test_export_never_exports_truncated_or_errored(ledger, invoke):
    for fmt in ("sft", "multi-sft", "best-of-n"):
        rows, _ = export(invoke, ledger, "--format", fmt, "--per-prompt", "10")
        texts = {r["messages"][-1]["content"] for r in rows}
        assert not texts & {"cut off", "boom", "trunc"}
    rows, _ = export(invoke, ledger, "--format", "top-k", "--k", "100")
    assert len(rows) == 8
    assert not {r["messages"][-1]["content"] for r in rows} & {"cut off", "boom", "trunc"}


def test_export_multi_sft_is_distinct(ledger, invoke):
    rows, _ = export(invoke, ledger, "--format", "multi-sft")
    assert answers(rows) == [("Q p1", "b"), ("Q p1", "cc"), ("Q p1", "aaa"), ("Q p2", "right")]
    rows, _ = export(invoke, ledger, "--format", "multi-sft", "--per-prompt", "2")
    assert answers(rows) == [("Q p1", "b"), ("Q p1", "cc"), ("Q p2", "right")]


def test_export_best_of_n_includes_all_fail_prompts(ledger, invoke):
    rows, _ = export(invoke, ledger, "--format", "best-of-n")
    # p3 has only fails: its best is still exported (the shortest of the tie)
    assert answers(rows) == [("Q p1", "b"), ("Q p2", "right"), ("Q p3", "no")]


def test_export_dpo_pass_fail(ledger, invoke):
    rows, _ = export(invoke, ledger, "--format", "dpo")
    assert pairs(rows) == [("Q p2", "right", "wrong")]
    assert rows[0] == {
        "prompt": [{"role": "user", "content": "Q p2"}],
        "chosen": [{"role": "assistant", "content": "right"}],
        "rejected": [{"role": "assistant", "content": "wrong"}],
    }
    # the duplicate pass makes a second pair, unless duplicates count once
    rows, _ = export(invoke, ledger, "--format", "dpo", "--max-pairs-per-prompt", "5")
    assert pairs(rows) == [("Q p2", "right", "wrong"), ("Q p2", "  right \n", "wrong")]
    rows, _ = export(invoke, ledger, "--format", "dpo", "--max-pairs-per-prompt", "5", "--dedupe")
    assert pairs(rows) == [("Q p2", "right", "wrong")]


REAL = {
    # a tie: never a pair; best-of-n picks the shorter, then the first
    "p5": [("x1", None, 0.5, OK), ("x2", None, 0.5, OK)],
    "p6": [
        ("good", None, 0.9, OK),
        ("good", None, 0.9, OK),
        ("bad", None, 0.2, OK),
        ("meh", None, 0.5, OK),
    ],
    # the same text (up to whitespace) on both sides: never a pair
    "p7": [("same", None, 0.9, OK), ("same", None, 0.1, OK), ("  same", None, 0.05, OK)],
}


@pytest.fixture
def real_ledger(db_path):
    build(db_path, REAL)
    return db_path


@pytest.mark.parametrize(
    "args,expected",
    [
        (["--pairs", "best-worst"], [("Q p6", "good", "bad")]),
        (
            ["--pairs", "best-worst", "--max-pairs-per-prompt", "9"],
            [
                ("Q p6", "good", "bad"),
                ("Q p6", "good", "meh"),
                ("Q p6", "good", "meh"),
                ("Q p6", "good", "bad"),
                ("Q p6", "meh", "bad"),
            ],
        ),
        (
            ["--pairs", "best-worst", "--max-pairs-per-prompt", "9", "--min-margin", "0.35"],
            [
                ("Q p6", "good", "bad"),
                ("Q p6", "good", "meh"),
                ("Q p6", "good", "meh"),
                ("Q p6", "good", "bad"),
            ],
        ),
        (
            ["--pairs", "best-worst", "--max-pairs-per-prompt", "9", "--min-margin", "0.6"],
            [("Q p6", "good", "bad"), ("Q p6", "good", "bad")],
        ),
        (
            [
                "--pairs",
                "best-worst",
                "--max-pairs-per-prompt",
                "9",
                "--min-margin",
                "0.6",
                "--dedupe",
            ],
            [("Q p6", "good", "bad")],
        ),
        # pass-fail: the worst fail is rejected first
        (["--pass-threshold", "0.6"], [("Q p6", "good", "bad")]),
        (
            ["--pass-threshold", "0.6", "--max-pairs-per-prompt", "9", "--dedupe"],
            [("Q p6", "good", "bad"), ("Q p6", "good", "meh")],
        ),
    ],
)
def test_export_dpo_real_scores(real_ledger, invoke, args, expected):
    rows, _ = export(invoke, real_ledger, "--format", "dpo", *args)
    assert pairs(rows) == expected
    for row in rows:
        assert row["chosen"][0]["content"].split() != row["rejected"][0]["content"].split()


def test_export_dpo_best_random_is_seeded(real_ledger, invoke):
    seen = set()
    for seed in range(12):
        rows, _ = export(
            invoke, real_ledger, "--format", "dpo", "--pairs", "best-random", "--seed", seed
        )
        again, _ = export(
            invoke, real_ledger, "--format", "dpo", "--pairs", "best-random", "--seed", seed
        )
        assert rows == again
        assert [r[:2] for r in pairs(rows)] == [("Q p6", "good")]
        seen.add(rows[0]["rejected"][0]["content"])
    assert seen == {"bad", "meh"}


def test_export_best_of_n_tie_rules(real_ledger, invoke):
    rows, _ = export(invoke, real_ledger, "--format", "best-of-n")
    assert answers(rows) == [("Q p5", "x1"), ("Q p6", "good"), ("Q p7", "same")]
    picked = set()
    for seed in range(12):
        rows, _ = export(
            invoke,
            real_ledger,
            "--format",
            "best-of-n",
            "--pick",
            "random",
            "--seed",
            seed,
            "--where",
            "id = 'p5'",
        )
        picked.add(rows[0]["messages"][-1]["content"])
    assert picked == {"x1", "x2"}


def test_export_reasoning_modes(db_path, invoke):
    db = open_db(db_path)
    add_prompt(db, "r1", content="2+2?")
    add_score(db, add_rollout(db, "r1", 0, "4", reasoning="two and two"), "v", 1)
    expected = {
        "think-tags": {"role": "assistant", "content": "<think>\ntwo and two\n</think>\n\n4"},
        "keep": {"role": "assistant", "content": "4", "reasoning_content": "two and two"},
        "drop": {"role": "assistant", "content": "4"},
    }
    for mode, message in expected.items():
        rows, _ = export(invoke, db_path, "--format", "sft", "--reasoning", mode)
        assert rows[0]["messages"][-1] == message


def test_export_include_metadata_and_file_output(ledger, invoke, tmp_path):
    out = tmp_path / "train.jsonl"
    result = invoke(
        "export", ledger, "--format", "sft", "--include-metadata", "-o", out, "--where", "id = 'p2'"
    )
    assert (result.exit_code, result.stdout) == (0, "")
    row = json.loads(out.read_text())
    assert row["metadata"] == {
        "prompt_id": "p2",
        "rollout_id": 4,
        "verifier": "v",
        "score": 1.0,
        "passed": 1,
        "prompt": {"answer": "4", "level": 2},
    }
    result = invoke("export", ledger, "--format", "dpo", "--include-metadata")
    meta = json.loads(result.stdout)["metadata"]
    assert (meta["chosen_rollout_id"], meta["rejected_rollout_id"]) == (4, 5)


def test_export_print_dataset_info(ledger, invoke, tmp_path):
    out = tmp_path / "rsr_sft.jsonl"
    result = invoke("export", ledger, "--format", "sft", "-o", out, "--print-dataset-info")
    assert json.loads(result.stdout) == {
        "rsr_sft": {
            "file_name": "rsr_sft.jsonl",
            "formatting": "sharegpt",
            "columns": {"messages": "messages"},
            "tags": {
                "role_tag": "role",
                "content_tag": "content",
                "user_tag": "user",
                "assistant_tag": "assistant",
                "system_tag": "system",
            },
        }
    }
    out = tmp_path / "pairs.jsonl"
    result = invoke("export", ledger, "--format", "dpo-sharegpt", "-o", out, "--print-dataset-info")
    assert json.loads(result.stdout)["pairs"]["ranking"] is True
    assert json.loads(out.read_text()) == {
        "messages": [{"role": "user", "content": "Q p2"}],
        "chosen": {"role": "assistant", "content": "right"},
        "rejected": {"role": "assistant", "content": "wrong"},
    }
    result = invoke("export", ledger, "--format", "dpo", "-o", out, "--print-dataset-info")
    assert result.exit_code == 1
    assert "use --format dpo-sharegpt" in result.stderr
    result = invoke("export", ledger, "--format", "sft", "--print-dataset-info")
    assert "Error: --print-dataset-info needs -o FILE" in result.stderr


def test_export_errors(ledger, invoke, db_path):
    db = open_db(db_path)
    add_score(db, 1, "judge", 1)
    result = invoke("export", ledger, "--format", "sft")
    assert result.exit_code == 1
    assert result.stderr == (
        "Error: This ledger has scores from several verifiers (judge, v); "
        "choose one with --verifier\n"
    )
    result = invoke("export", ledger, "--format", "sft", "--verifier", "jugde")
    assert "No scores from verifier 'jugde' in this ledger (verifiers: judge, v)" in result.stderr
    result = invoke("export", ledger, "--format", "sft", "--verifier", "v", "--where", "nosuch = 1")
    assert result.exit_code == 1
    assert (
        "--where 'nosuch = 1' is not valid SQL on prompts: no such column: nosuch" in result.stderr
    )
    result = invoke("export", ledger, "--format", "top-k", "--verifier", "v")
    assert "--format top-k needs --k N" in result.stderr
    result = invoke("export", ledger, "--format", "sfft")
    assert result.exit_code == 2 and "'sfft' is not one of" in result.stderr


def test_export_leaves_ledger_unchanged(ledger, invoke):
    before = open(ledger, "rb").read()
    export(invoke, ledger, "--format", "dpo", "--dedupe")
    assert open(ledger, "rb").read() == before


class Answers:
    "A throwaway export format: the bare answers of the sft selection."

    name = "answers"
    description = "just the answer text"

    def rows(self, db, options):
        from rsr.selection import select_per_prompt

        for row in select_per_prompt(db, options.selection, 1):
            yield {"answer": row["response"]}

    def dataset_info(self, file_name):
        return None


class AnswersPlugin:
    @hookimpl
    def register_formatters(register):
        register(Answers())


def test_export_format_from_a_plugin(ledger, invoke):
    pm.register(AnswersPlugin, name="test-answers")
    try:
        assert "answers|batch-requests|best-of-n|dpo" in invoke("export", "--help").stdout
        result = invoke("export", ledger, "--format", "answers")
        assert result.stdout == '{"answer": "b"}\n{"answer": "right"}\n'
    finally:
        pm.unregister(name="test-answers")
    assert invoke("export", ledger, "--format", "answers").exit_code == 2


@pytest.mark.parametrize(
    "args,expected",
    [
        # three rollouts tie at 0.9: same length, so sample_index, then rollout id
        (["--k", "2"], [("Q p6", "good"), ("Q p7", "same")]),
        (["--k", "3"], [("Q p6", "good"), ("Q p7", "same"), ("Q p6", "good")]),
        # counted once, the duplicates make room for the best 0.5 (the shorter x1)
        (["--k", "3", "--dedupe"], [("Q p6", "good"), ("Q p7", "same"), ("Q p5", "x1")]),
        (["--k", "1", "--where", "id = 'p5'"], [("Q p5", "x1")]),
    ],
)
def test_export_top_k_ties_and_duplicates(real_ledger, invoke, args, expected):
    rows, _ = export(invoke, real_ledger, "--format", "top-k", *args)
    assert answers(rows) == expected


def test_export_sft_with_a_pass_threshold_on_real_scores(real_ledger, invoke):
    rows, _ = export(invoke, real_ledger, "--format", "sft", "--pass-threshold", "0.6")
    assert answers(rows) == [("Q p6", "good"), ("Q p7", "same")]
    rows, _ = export(
        invoke,
        real_ledger,
        "--format",
        "sft",
        "--pass-threshold",
        "0.45",
        "--per-prompt",
        "3",
        "--dedupe",
    )
    assert answers(rows) == [
        ("Q p5", "x1"),
        ("Q p5", "x2"),
        ("Q p6", "good"),
        ("Q p6", "meh"),
        ("Q p7", "same"),
    ]
    # without a threshold, real scores with no verdict are never passes
    rows, _ = export(invoke, real_ledger, "--format", "sft")
    assert rows == []


@pytest.mark.parametrize("mode", [0o444, 0o400])
def test_export_refuses_to_replace_a_read_only_file(ledger, invoke, tmp_path, mode):
    # The rename the export ends with would replace it (and root may write
    # anything): the file's own mode bits decide.
    out = tmp_path / "train.jsonl"
    out.write_text("keep me\n")
    out.chmod(mode)
    result = invoke("export", ledger, "--format", "sft", "-o", str(out))
    assert result.exit_code == 1
    assert result.stderr == (f"Error: Cannot write {out}: it is read-only (mode {mode:o}); "
                             "make it writable (chmod u+w) or choose another -o\n")
    assert out.read_text() == "keep me\n" and out.stat().st_mode & 0o777 == mode
    assert not (tmp_path / "train.jsonl.partial").exists()


def test_empty_export_says_why(db_path, invoke, tmp_path):
    # q1 only fails, q2 only passes, q3 was truncated, q4 never sampled
    build(db_path, {"q1": [("no", 0, None, OK), ("nope", 0, None, OK)],
                    "q2": [("yes", 1, None, OK)],
                    "q3": [("cut", 1, None, {"truncated": 1, "finish_reason": "length"})],
                    "q4": []})
    result = invoke("export", db_path, "--format", "dpo", "-o", tmp_path / "dpo.jsonl")
    assert result.exit_code == 0
    why, count = result.stderr.splitlines()
    assert count == "Exported 0 rows (dpo, verifier v)"
    assert why.startswith("No dpo rows: each needs a pass and a fail (verifier v); of 4 prompts, "
                          "2 have no valid rollout, 3 have no pass, 3 have no fail. To change that: ")
    assert "--pairs best-worst" in why and "--pass-threshold T" in why
    assert "1 rollouts were truncated: sample with a higher --max-tokens" in why
    # Counted over the prompts --where selects; a filter that dropped rows is named.
    why = invoke("export", db_path, "--format", "sft", "--where", "id = 'q1'").stderr
    assert why.startswith("No sft rows: each needs a passing rollout (verifier v); of 1 prompts "
                          "--where selects, 0 have no valid rollout, 1 have no pass, 0 have no fail")
    why = invoke("export", db_path, "--format", "sft", "--pass-rate-max", "0.5").stderr
    assert "the filter --pass-rate-max may exclude the rest" in why
    # Rows exported: no explanation.
    assert invoke("export", db_path, "--format", "sft").stderr == "Exported 1 rows (sft, verifier v)\n"


def test_export_json_summary(ledger, invoke, tmp_path):
    out = tmp_path / "sft.jsonl"
    result = invoke("export", ledger, "--format", "sft", "-o", out, "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout) == {"format": "sft", "rows": 2, "output": str(out),
                                         "verifier": "v"}
    assert len(out.read_text().splitlines()) == 2
    result = invoke("export", ledger, "--format", "sft", "--where", "id = 'p3'", "-o", out, "--json")
    summary = json.loads(result.stdout)
    assert summary["rows"] == 0 and summary["empty"]["no_pass"] == 1
    assert summary["reason"].startswith("No sft rows")
    # Without -o the rows are stdout: a summary there would corrupt them.
    refused = invoke("export", ledger, "--format", "sft", "--json")
    assert refused.exit_code == 2 and "--json needs -o FILE" in refused.stderr


@pytest.mark.parametrize("strategy", ["pass-fail", "best-worst", "best-random"])
def test_a_selection_of_one_prompt_picks_what_the_whole_export_picks_for_it(ledger, strategy):
    # rsr browse shows a prompt's picks by selecting that prompt alone
    from rsr.selection import Selection, select_pairs, select_per_prompt

    db = open_db(ledger, readonly=True)
    whole = Selection("v", dedupe=True)
    every = {"pairs": list(select_pairs(db, whole, strategy, max_pairs=3)),
             "best": list(select_per_prompt(db, whole, 2, passing_only=False))}
    assert every["pairs"] and {row["prompt_id"] for row in every["best"]} >= {"p1", "p2", "p3"}
    for prompt_id in ("p1", "p2", "p3"):
        one = Selection("v", dedupe=True, prompt_id=prompt_id)
        assert list(select_pairs(db, one, strategy, max_pairs=3)) == [
            row for row in every["pairs"] if row["prompt_id"] == prompt_id]
        assert list(select_per_prompt(db, one, 2, passing_only=False)) == [
            row for row in every["best"] if row["prompt_id"] == prompt_id]

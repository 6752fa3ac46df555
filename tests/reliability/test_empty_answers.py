"""An empty answer is not a fail: against a server that answers empty on a
share of requests ("", whitespace, or reasoning with nothing after it), no
export row has an empty side, no prompt is satisfied by an empty answer, and
stats count the empties."""

import hashlib
import json

import pytest
from faultserver import FaultServer
from proc import cli, query, rsr, write_prompts

from rsr.reasoning import split_reasoning

FORMATS = [("sft", []), ("multi-sft", []), ("best-of-n", []), ("top-k", ["--k", 500]),
           ("dpo", []), ("dpo", ["--pairs", "best-worst"]), ("dpo-sharegpt", [])]
EMPTY_SQL = """select count(*) from rollouts where error is null and truncated = 0
               and trim(response, char(32, 9, 10, 11, 12, 13)) = ''"""


def responder(seed, index):
    "A right answer, a wrong one, or (a third of the time) one that is empty."
    kind = hashlib.sha256(f"{seed}:{index}".encode()).digest()[0] % 6
    return ["right", "wrong", "wrong too", "", " \n\t", "<think>no idea</think>\n"][kind]


def is_empty(text):
    return not split_reasoning(text)[1].strip()


@pytest.fixture(scope="module")
def sampled(tmp_path_factory):
    folder = tmp_path_factory.mktemp("empty")
    db_path = folder / "run.db"
    assert rsr("load", db_path, write_prompts(folder / "p.jsonl", 60)).returncode == 0
    # The server's own empty fault on top: every choice of a request empty.
    with FaultServer(seed=2, rate=0.2, kinds=("empty",), responder=responder) as server:
        result = rsr("sample", db_path, "--base-url", server.url, "--model", "m", "--seed", 9,
                     "--verifier", "exact", "--target", "dpo", "--max-rollouts", 8,
                     "--step-size", 2, "--silent")
    assert result.returncode == 0, result.stderr
    return db_path, server, folder


def test_empty_answers_are_kept_but_never_scored(sampled):
    db_path, server, _ = sampled
    sent = [text for e in server.log if e.delivered for _, text, _ in e.choices]
    empties = sum(map(is_empty, sent))
    assert empties >= 50
    assert query(db_path, EMPTY_SQL) == [(empties,)]
    assert query(db_path, "select count(*) from rollouts") == [(len(sent),)]
    assert query(db_path, f"""select count(*) from scores where rollout_id in
                             (select id from rollouts where id in ({EMPTY_SQL.replace(
                                 'count(*)', 'id')}))""") == [(0,)]
    assert query(db_path, "select sum(empty) from progress") == [(empties,)]


def test_no_prompt_is_satisfied_by_an_empty_answer(sampled):
    db_path, _, _ = sampled
    # Every prompt the dpo target calls satisfied has a real fail, and the
    # verdict counters hold only answers with text.
    satisfied = query(db_path, "select prompt_id from verdicts where passed >= 1 and failed >= 1")
    assert len(satisfied) >= 10
    real_fails = query(db_path, """
        select r.prompt_id, count(*) from rollouts r join scores s on s.rollout_id = r.id
        where s.passed = 0 and trim(r.response, char(32, 9, 10, 11, 12, 13)) != ''
        group by r.prompt_id""")
    fails = dict(query(db_path, "select prompt_id, failed from verdicts where failed > 0"))
    assert fails == dict(real_fails)


@pytest.mark.parametrize("format_, options", FORMATS)
def test_no_export_row_has_an_empty_side(sampled, format_, options):
    db_path, _, folder = sampled
    out = folder / f"{format_}-{len(options)}.jsonl"
    result = cli("export", db_path, "--format", format_, "--verifier", "exact", "-o", out, *options)
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows
    for row in rows:
        texts = list(answers(row))
        assert texts and not any(map(is_empty, texts)), row


def answers(value):
    "Every assistant turn's text in an export row (any of the formats)."
    if isinstance(value, dict):
        if value.get("role") in ("assistant", "gpt") or value.get("from") == "gpt":
            yield value.get("content", value.get("value"))
        for key, item in value.items():
            if key in ("chosen", "rejected", "completion") and isinstance(item, str):
                yield item
            else:
                yield from answers(item)
    elif isinstance(value, list):
        for item in value:
            yield from answers(item)


def test_stats_count_the_empties(sampled):
    db_path, _, _ = sampled
    result = cli("stats", db_path, "--json")
    assert result.returncode == 0, result.stderr
    rollouts = json.loads(result.stdout)["rollouts"]
    assert rollouts["empty"] == query(db_path, EMPTY_SQL)[0][0]
    assert rollouts["valid"] + rollouts["empty"] + rollouts["truncated"] + rollouts["errored"] == (
        rollouts["total"])

"""The early-stop SQL on its own: rows written to a fresh ledger with plain SQL
(the triggers keep `progress` and `verdicts`), states read back through
rsr.early_stop's queries. No sampler, no server: each case is a prompt's
rollouts, scores and steps, and the state a correct rule gives them.

A prompt's rollouts are written as tokens:

    V  a valid answer          T  a truncated one (finish_reason length)
    E  an errored request      Z  an empty answer (whitespace only)

followed by its score under the verifier `v`: `+` passed, `-` failed, `?`
undecided (passed is NULL), nothing for not scored. `o` before the score
means the score is by another verifier (`other`) instead. `@h` gives the
response hash h (identical completions share one); by default each rollout
has its own. `steps` lists what each step requested; the rollouts fill the
steps in order, so fewer rollouts than requested is a step cut short.
"""

import json
import re

import pytest

from rsr import open_db
from rsr.early_stop import (
    Target,
    budget_left_sql,
    parse_target,
    pending_sql,
    prompt_state_sql,
    state_params,
)
from rsr.errors import ConfigError

TOKEN = re.compile(r"([VTEZ])(o?)([+?-]?)(?:@(\w+))?")
ROLLOUT_SQL = """insert into rollouts (prompt_id, sample_index, step, response, finish_reason,
                                      truncated, error, response_hash)
                 values (?, ?, ?, ?, ?, ?, ?, ?)"""
SCORE_SQL = "insert into scores (rollout_id, verifier, score, passed) values (?, ?, ?, ?)"
KINDS = {  # response, finish_reason, truncated, error
    "V": ("The answer is 4", "stop", 0, None),
    "T": ("The answer is", "length", 1, None),
    "E": (None, None, 0, "HTTP 500: scripted 500"),
    "Z": (" \n\t ", "stop", 0, None),
}
PASSED = {"+": 1, "-": 0, "?": None}


@pytest.fixture
def db(tmp_path):
    return open_db(tmp_path / "run.db")


def add(db, prompt_id, tokens=(), steps=None):
    "A prompt with these rollouts, scores and steps, in plain SQL."
    db.execute("insert into prompts (id, messages) values (?, ?)",
               [prompt_id, json.dumps([{"role": "user", "content": f"question {prompt_id}"}])])
    if steps is None:
        steps = [len(tokens)] if tokens else []
    step_of = [n for n, requested in enumerate(steps, 1) for _ in range(requested)]
    assert len(tokens) <= len(step_of), "a case cannot hold more rollouts than its steps asked for"
    for index, token in enumerate(tokens):
        kind, other, verdict, digest = TOKEN.fullmatch(token).groups()
        response, finish, truncated, error = KINDS[kind]
        rollout_id = db.execute(ROLLOUT_SQL, [
            prompt_id, index, step_of[index], response, finish, truncated, error,
            digest or f"{prompt_id}-{index}"]).lastrowid
        if verdict:
            passed = PASSED[verdict]
            db.execute(SCORE_SQL, [rollout_id, "other" if other else "v",
                                   None if passed is None else float(passed), passed])
    for n, requested in enumerate(steps, 1):
        db.execute("insert into steps (prompt_id, step, requested, received) values (?, ?, ?, ?)",
                   [prompt_id, n, requested, step_of[:len(tokens)].count(n)])


def states(db, target, verifier="v", max_rollouts=8, max_steps=4, where=None, limit=None,
           dedupe=False):
    "{prompt id: (satisfied, within_budget, incomplete)} as the state SQL gives them."
    sql = prompt_state_sql(target, where, limit, dedupe)
    params = state_params(target, verifier, max_rollouts, max_steps, limit)
    return {row[0]: tuple(map(int, row[1:])) for row in db.execute(
        f"select id, satisfied, within_budget, incomplete from ({sql}) order by rowid", params)}


def pending(db, target, verifier="v", max_rollouts=8, max_steps=4, where=None, limit=None,
            dedupe=False, after=0, page=1000):
    "The ids pending_sql gives, in order."
    params = state_params(target, verifier, max_rollouts, max_steps, limit)
    sql = pending_sql(target, where, limit, dedupe)
    return [row[0] for row in db.execute(f"select id from ({sql})",
                                         {**params, "after": after, "page": page})]


def budget_left(db, target, max_rollouts, max_steps, step_size, where=None, limit=None,
                dedupe=False):
    params = state_params(target, "v", max_rollouts, max_steps, limit)
    return db.execute(budget_left_sql(target, where, limit, dedupe),
                      {**params, "step_size": step_size}).fetchone()[0]


def with_neighbour(db, tokens, steps=None):
    """The case's prompt `p` after a neighbour that is the opposite of most cases
    (a pass and a fail from `v`, its budget spent), so a count that leaks
    between prompts shows."""
    add(db, "neighbour", ["V+", "V-"] * 4, [4, 4])
    add(db, "p", tokens, steps)


# (target, tokens, steps, options) -> (satisfied, within_budget, incomplete, pending).
# Budget 8 rollouts and 4 steps unless options say otherwise.
CASES = {
    # Never sampled: pending under every target.
    "sft, nothing yet": ("sft", [], None, {}, (0, 1, 0, 1)),
    "none, nothing yet": ("none", [], None, {}, (0, 1, 0, 1)),
    # sft: one pass of a valid rollout by the chosen verifier.
    "sft, fails only": ("sft", ["V-", "V-"], None, {}, (0, 1, 0, 1)),
    "sft, a pass": ("sft", ["V-", "V+"], None, {}, (1, 1, 0, 0)),
    "sft, truncated passes do not count": ("sft", ["T+", "T+"], None, {}, (0, 1, 0, 1)),
    "sft, errored rows with a pass score do not count": ("sft", ["E+", "E+"], None, {}, (0, 1, 0, 1)),
    "sft, empty answers do not count": ("sft", ["Z+", "Z+"], None, {}, (0, 1, 0, 1)),
    "sft, undecided is not a pass": ("sft", ["V?", "V?"], None, {}, (0, 1, 0, 1)),
    "sft, unscored is not a pass": ("sft", ["V", "V"], None, {}, (0, 1, 0, 1)),
    "sft, another verifier's pass is ignored": ("sft", ["Vo+", "V-"], None, {}, (0, 1, 0, 1)),
    "sft, scores read for the verifier asked": ("sft", ["Vo+", "V-"], None, {"verifier": "other"},
                                                (1, 1, 0, 0)),
    # dpo: a pass and a fail, both decided, both valid.
    "dpo, passes only": ("dpo", ["V+", "V+", "V+"], None, {}, (0, 1, 0, 1)),
    "dpo, fails only": ("dpo", ["V-", "V-"], None, {}, (0, 1, 0, 1)),
    "dpo, a pass and a fail": ("dpo", ["V+", "V-"], None, {}, (1, 1, 0, 0)),
    "dpo, undecided is not a fail": ("dpo", ["V+", "V?"], None, {}, (0, 1, 0, 1)),
    "dpo, a truncated fail is not a fail": ("dpo", ["V+", "T-"], None, {}, (0, 1, 0, 1)),
    "dpo, an empty fail is not a fail": ("dpo", ["V+", "Z-"], None, {}, (0, 1, 0, 1)),
    "dpo, another verifier's fail is ignored": ("dpo", ["V+", "Vo-"], None, {}, (0, 1, 0, 1)),
    # multi-sft:K: K passes.
    "multi-sft:3, two passes": ("multi-sft:3", ["V+", "V+", "V-"], None, {}, (0, 1, 0, 1)),
    "multi-sft:3, three passes": ("multi-sft:3", ["V+", "V-", "V+", "V+"], None, {}, (1, 1, 0, 0)),
    "multi-sft:3, invalid passes do not count": (
        "multi-sft:3", ["V+", "V+", "T+", "E+", "Z+"], [5], {}, (0, 1, 0, 1)),
    "multi-sft:3, identical passes count without --dedupe": (
        "multi-sft:3", ["V+@a", "V+@a", "V+@a"], None, {}, (1, 1, 0, 0)),
    "multi-sft:3, identical passes count once with --dedupe": (
        "multi-sft:3", ["V+@a", "V+@a", "V+@b"], None, {"dedupe": True}, (0, 1, 0, 1)),
    "multi-sft:3, three distinct passes with --dedupe": (
        "multi-sft:3", ["V+@a", "V+@b", "V+@a", "V+@c"], None, {"dedupe": True}, (1, 1, 0, 0)),
    "multi-sft:2, --dedupe: a pass whose twin failed still counts": (
        "multi-sft:2", ["V-@a", "V+@a", "V+@b"], None, {"dedupe": True}, (1, 1, 0, 0)),
    "sft, --dedupe: a pass whose twin only another verifier passed still counts": (
        "sft", ["Vo+@a", "V+@a"], None, {"dedupe": True}, (1, 1, 0, 0)),
    # best-of-n:N: N valid rollouts, whatever their scores (or none).
    "best-of-n:3, two valid": ("best-of-n:3", ["V", "V", "T", "E", "Z"], [5], {}, (0, 1, 0, 1)),
    "best-of-n:3, three valid unscored": ("best-of-n:3", ["V", "V", "V"], None, {}, (1, 1, 0, 0)),
    "best-of-n:3, three valid fails": ("best-of-n:3", ["V-", "V-", "V-"], None, {}, (1, 1, 0, 0)),
    "best-of-n:3, identical answers are still valid": (
        "best-of-n:3", ["V@a", "V@a", "V@a"], None, {"dedupe": True}, (1, 1, 0, 0)),
    # none: sample every prompt to its budget.
    "none, passes and fails": ("none", ["V+", "V-", "V+", "V-"], None, {}, (0, 1, 0, 1)),
    "none, budget spent": ("none", ["V+"] * 8, [4, 4], {}, (0, 0, 0, 0)),
    # max_rollouts: every row counts toward it, whatever its fate.
    "sft, one rollout left": ("sft", ["V-"] * 7, [4, 3], {}, (0, 1, 0, 1)),
    "sft, max_rollouts spent": ("sft", ["V-"] * 8, [4, 4], {}, (0, 0, 0, 0)),
    "sft, errored rows spend the budget": ("sft", ["E"] * 8, [4, 4], {}, (0, 0, 0, 0)),
    "sft, truncated rows spend the budget": ("sft", ["T+"] * 8, [4, 4], {}, (0, 0, 0, 0)),
    "sft, empty answers spend the budget": ("sft", ["Z+"] * 8, [4, 4], {}, (0, 0, 0, 0)),
    "sft, a lower max_rollouts than the ledger holds": ("sft", ["V-"] * 4, None, {"max_rollouts": 3},
                                                        (0, 0, 0, 0)),
    # max_steps: counted from the steps table.
    "sft, one step left": ("sft", ["V-"] * 3, [1, 1, 1], {}, (0, 1, 0, 1)),
    "sft, max_steps spent": ("sft", ["V-"] * 4, [2, 2], {"max_steps": 2}, (0, 0, 0, 0)),
    "dpo, max_steps spent with rollouts left": ("dpo", ["V+"] * 4, [1, 1, 1, 1], {}, (0, 0, 0, 0)),
    # A step cut short (a crash) is completed, even past max_steps or once satisfied.
    "sft, last step cut short at max_steps": ("sft", ["V-"] * 3, [2, 2], {"max_steps": 2},
                                              (0, 1, 1, 1)),
    "sft, a step cut short before any rollout": ("sft", [], [4], {"max_steps": 1}, (0, 1, 1, 1)),
    "sft, satisfied in a step cut short": ("sft", ["V-", "V-", "V+"], [2, 2], {}, (1, 1, 1, 1)),
    "none, step cut short": ("none", ["V-"] * 5, [4, 4], {}, (0, 1, 1, 1)),
    "sft, a step cut short but max_rollouts spent": ("sft", ["V-"] * 3, [2, 2], {"max_rollouts": 3},
                                                     (0, 0, 0, 0)),
    "sft, a full step is not incomplete": ("sft", ["V+"] * 4, [2, 2], {"max_steps": 2}, (1, 0, 0, 0)),
}


@pytest.mark.parametrize("target,tokens,steps,options,expected", CASES.values(), ids=CASES.keys())
def test_prompt_state(db, target, tokens, steps, options, expected):
    with_neighbour(db, tokens, steps)
    target = parse_target(target, max_rollouts=8)
    got = states(db, target, **options)
    assert got["p"] == expected[:3]
    assert ("p" in pending(db, target, **options)) == bool(expected[3])


@pytest.mark.parametrize("target,expected", [
    # The neighbour (4 passes, 4 fails from v; 8 rollouts in 2 steps).
    ("sft", (1, 0, 0)),
    ("dpo", (1, 0, 0)),
    ("multi-sft:4", (1, 0, 0)),
    ("multi-sft:5", (0, 0, 0)),
    ("best-of-n:8", (1, 0, 0)),
    ("none", (0, 0, 0)),
])
def test_neighbour_state(db, target, expected):
    with_neighbour(db, [])
    assert states(db, parse_target(target, max_rollouts=8))["neighbour"] == expected


def test_best_of_n_defaults_to_max_rollouts(db):
    add(db, "p", ["V"] * 5 + ["T"], [6])
    # best-of-n without a number needs max_rollouts valid rollouts: 5 of 6 is short.
    target = parse_target("best-of-n", max_rollouts=6)
    assert states(db, target, max_rollouts=6)["p"] == (0, 0, 0)
    target = parse_target("best-of-n", max_rollouts=5)
    assert states(db, target, max_rollouts=8)["p"] == (1, 1, 0)


# Prompts in load order: under sft a1 and a4 are satisfied, the others pending.
SELECTION = [("a1", ["V+"]), ("b1", ["V-"]), ("a2", ["V-"]), ("b2", []), ("a3", []), ("a4", ["V+"])]


@pytest.mark.parametrize("where,limit,selected,pending_ids", [
    (None, None, ["a1", "b1", "a2", "b2", "a3", "a4"], ["b1", "a2", "b2", "a3"]),
    ("id like 'a%'", None, ["a1", "a2", "a3", "a4"], ["a2", "a3"]),
    # --limit takes the first N prompts that match, whatever their state: a
    # satisfied one is not replaced by the next pending one.
    (None, 2, ["a1", "b1"], ["b1"]),
    ("id like 'a%'", 2, ["a1", "a2"], ["a2"]),
    ("id like 'a%'", 3, ["a1", "a2", "a3"], ["a2", "a3"]),
    ("id like 'b%'", 10, ["b1", "b2"], ["b1", "b2"]),
    ("json_extract(messages, '$[0].content') = 'question a2'", None, ["a2"], ["a2"]),
    ("id = 'nothing'", None, [], []),
])
def test_where_and_limit(db, where, limit, selected, pending_ids):
    for prompt_id, tokens in SELECTION:
        add(db, prompt_id, tokens)
    target = parse_target("sft")
    assert list(states(db, target, where=where, limit=limit)) == selected
    assert pending(db, target, where=where, limit=limit) == pending_ids


def test_pending_pages_by_rowid(db):
    for prompt_id, tokens in SELECTION:
        add(db, prompt_id, tokens)
    target = parse_target("sft")
    rowids = dict(db.execute("select id, rowid from prompts"))
    assert pending(db, target, page=2) == ["b1", "a2"]
    assert pending(db, target, page=2, after=rowids["a2"]) == ["b2", "a3"]
    assert pending(db, target, page=2, after=rowids["a3"]) == []
    # Paging never widens --limit: a2, third in load order, is not in a --limit 2 run.
    assert pending(db, target, limit=2, after=rowids["a1"]) == ["b1"]


# (target, tokens, steps) -> rollouts it may still draw, under max_rollouts 8,
# max_steps 3 and step_size 2.
BUDGET_CASES = {
    "never sampled: the steps cap it": ("sft", [], None, 6),
    "a step cut short, then one more step": ("sft", ["V-"] * 3, [2, 2], 3),
    "satisfied in a step cut short: only the rest of the step": ("sft", ["V-", "V-", "V+"], [2, 2], 1),
    "satisfied: nothing": ("sft", ["V-", "V+"], [2], 0),
    "steps spent": ("sft", ["V-"] * 6, [2, 2, 2], 0),
    "max_rollouts caps the last step": ("sft", ["V-"] * 7, [4, 3], 1),
    "errored rows spent the budget": ("sft", ["E"] * 8, [4, 4], 0),
    "invalid rows do not satisfy": ("sft", ["T+", "Z+"], [2], 4),
    "none: to the budget": ("none", ["V+", "V+"], [2], 4),
    "a step cut short before any rollout": ("dpo", [], [2], 6),
}


@pytest.mark.parametrize("target,tokens,steps,expected", BUDGET_CASES.values(),
                         ids=BUDGET_CASES.keys())
def test_budget_left(db, target, tokens, steps, expected):
    with_neighbour(db, tokens, steps)
    assert budget_left(db, parse_target(target), 8, 3, 2) == expected


def test_budget_left_adds_up_over_the_prompts_selected(db):
    add(db, "a", [])                         # 6
    add(db, "b", ["V-"] * 3, [2, 2])         # 3
    add(db, "c", ["V-", "V-", "V+"], [2, 2])  # 1
    add(db, "d", ["V+"], [1])                # 0: satisfied
    add(db, "e", ["V+@x", "V+@x"], [2])      # 0: satisfied
    target = parse_target("sft")
    assert budget_left(db, target, 8, 3, 2) == 10
    assert budget_left(db, target, 8, 3, 2, where="id != 'a'") == 4
    assert budget_left(db, target, 8, 3, 2, limit=1) == 6
    # Two passes: c and d have one (3 and 4 left), e has two of the same text,
    # which --dedupe counts once (then 4 left).
    target = parse_target("multi-sft:2")
    assert budget_left(db, target, 8, 3, 2) == 6 + 3 + 3 + 4 + 0
    assert budget_left(db, target, 8, 3, 2, dedupe=True) == 6 + 3 + 3 + 4 + 4


@pytest.mark.parametrize("text,max_rollouts,expected", [
    ("sft", 16, Target("sft", 1)),
    ("  dpo ", 16, Target("dpo", None)),
    ("multi-sft:3", 16, Target("multi-sft", 3)),
    ("best-of-n", 5, Target("best-of-n", 5)),
    ("best-of-n:2", 16, Target("best-of-n", 2)),
    ("none", 16, Target("none", None)),
    ("multi-sft:16", 16, Target("multi-sft", 16)),
    ("dpo", 2, Target("dpo", None)),
])
def test_parse_target(text, max_rollouts, expected):
    assert parse_target(text, max_rollouts) == expected


@pytest.mark.parametrize("text,max_rollouts,message", [
    ("best", 16, "Unknown target 'best'"),
    ("", 16, "Unknown target ''"),
    (None, 16, "Unknown target None"),
    ("SFT", 16, "Unknown target 'SFT'"),
    ("sft:2", 16, "Target sft takes no number"),
    ("none:3", 16, "Target none takes no number"),
    ("multi-sft", 16, "multi-sft needs a number of passes"),
    ("multi-sft:0", 16, "the number must be at least 1"),
    ("best-of-n:0", 16, "the number must be at least 1"),
    ("multi-sft:17", 16, "needs at least 17 rollouts per prompt but --max-rollouts is 16"),
    ("best-of-n:9", 8, "needs at least 9 rollouts per prompt but --max-rollouts is 8"),
    ("dpo", 1, "Target dpo needs at least 2 rollouts per prompt but --max-rollouts is 1"),
])
def test_parse_target_refuses(text, max_rollouts, message):
    with pytest.raises(ConfigError) as caught:
        parse_target(text, max_rollouts)
    assert message in str(caught.value) and "\n" not in str(caught.value)

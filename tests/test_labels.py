"""`rsr label`: majority-vote labels for prompts without gold, against a real
sampling run whose answers are right with a known probability; `--check`,
`--weight-by`, `rsr verify --gold label` and the label lines of `rsr stats`."""

import json
import math
import random

import pytest
from helpers import add_prompt, add_rollout, add_score, write_jsonl
from servers import OpenAIStub

from rsr import open_db
from rsr.labels import vote
from rsr.verifiers import get_verifier

P_RIGHT = 0.6
VOTES = 5
PROMPTS = 160  # the first GOLD of them carry their gold answer
GOLD = 60


def truth(i):
    "Prompt i's right answer: (i + 1) / 2, a half-integer for even i."
    return (i + 1) / 2


def right_forms(i):
    "The same right answer written three ways: one vote for math, three strings for a naive count."
    numerator = i + 1
    value = truth(i)
    return [rf"\frac{{{numerator}}}{{2}}", f"{value:g}" if value != int(value) else f"{int(value)}.0",
            rf"\dfrac{{{2 * numerator}}}{{4}}"]


def wrong(i):
    "The fixed wrong answer a wrong rollout of prompt i always gives."
    return f"{i + 1000}"


def responder(body):
    "Right with probability P_RIGHT (decided by the request's seed), else the fixed wrong answer."
    content = body["messages"][-1]["content"]
    i = int(content.split()[1].rstrip(":"))
    rng = random.Random(f"{body.get('seed')}-{i}")
    if rng.random() < P_RIGHT:
        return f"The answer is $\\boxed{{{rng.choice(right_forms(i))}}}$."
    return f"The answer is $\\boxed{{{wrong(i)}}}$."


@pytest.fixture(scope="module")
def sampled(tmp_path_factory):
    "A ledger sampled by rsr sample from the stub: VOTES valid rollouts for each prompt."
    from click.testing import CliRunner

    from rsr.commands import cli

    folder = tmp_path_factory.mktemp("labels")
    records = [{"id": f"q{i:03d}", "question": f"Problem {i}: what is x?",
                **({"answer": str(truth(i))} if i < GOLD else {})} for i in range(PROMPTS)]
    source = write_jsonl(folder / "prompts.jsonl", records)
    db_path = str(folder / "run.db")
    runner = CliRunner()
    assert runner.invoke(cli, ["load", db_path, str(source)]).exit_code == 0
    with OpenAIStub(responder=responder, honour_n=False) as stub:
        result = runner.invoke(cli, [
            "sample", db_path, "--base-url", stub.url, "--model", "stub", "--target",
            f"best-of-n:{VOTES}", "--max-rollouts", str(VOTES), "--step-size", str(VOTES),
            "--seed", "11", "--silent"])
    assert result.exit_code == 0, result.output
    counts = open_db(db_path).execute(
        "select count(*), sum(error is null and truncated = 0) from rollouts").fetchone()
    assert counts == (PROMPTS * VOTES, PROMPTS * VOTES), (counts, result.output)
    return folder, db_path


@pytest.fixture
def ledger(sampled, tmp_path):
    "A fresh copy of the sampled ledger for one test (SQLite's backup: WAL content included)."
    import sqlite3

    folder, db_path = sampled
    target = tmp_path / "run.db"
    source, copy = sqlite3.connect(db_path), sqlite3.connect(target)
    source.backup(copy)
    source.close()
    copy.close()
    return str(target)


def right_counts(db):
    "{prompt_id: right rollouts}, read from the responses themselves (not from rsr)."
    counts = {}
    for prompt_id, response in db.execute("select prompt_id, response from rollouts"):
        i = int(prompt_id[1:])
        counts[prompt_id] = counts.get(prompt_id, 0) + (f"{{{wrong(i)}}}" not in response)
    return counts


def binomial_tail(n, p, k):
    "P(X >= k) for X ~ Binomial(n, p)."
    return sum(math.comb(n, j) * p ** j * (1 - p) ** (n - j) for j in range(k, n + 1))


def test_label_majority_accuracy_meets_the_binomial_model(ledger, invoke):
    db = open_db(ledger)
    assert db.execute("select count(*) from rollouts where error is null").fetchone()[0] == PROMPTS * VOTES
    result = invoke("label", ledger, "--majority", "--verifier", "math", "--min-votes", "3", "--json")
    counts = json.loads(result.stdout)["labels"]
    without_gold = PROMPTS - GOLD
    # Five votes, two groups (every right form is one vote): each prompt gets a label.
    assert counts["labelled"] == without_gold and counts["without_gold"] == without_gold
    labels = dict(db.execute("select prompt_id, label from labels where gold is null").fetchall())
    math_verifier = get_verifier("math")
    correct = sum(math_verifier.same_answer(str(truth(int(p[1:]))), label) for p, label in labels.items())
    accuracy = correct / len(labels)
    expected = binomial_tail(VOTES, P_RIGHT, 3)  # 0.683: the majority is right with 3 of 5
    sigma = math.sqrt(expected * (1 - expected) / len(labels))
    assert accuracy >= expected - 3 * sigma, (accuracy, expected)
    # Counting strings instead of equivalent answers would lose to the fixed wrong
    # answer most of the time: the right votes are split over three spellings.
    naive = sum(max(set(forms := [r for r in group]), key=forms.count) != wrong(int(p[1:]))
                for p, group in _responses_by_prompt(db).items() if p in labels)
    assert naive / len(labels) < expected - 3 * sigma
    # Each label's counts match the responses.
    right = right_counts(db)
    for prompt_id, votes, voters, share in db.execute(
            "select prompt_id, votes, voters, share from labels where gold is null"):
        assert voters == VOTES and votes == max(right[prompt_id], VOTES - right[prompt_id])
        assert share == pytest.approx(votes / VOTES)


def _responses_by_prompt(db):
    grouped = {}
    for prompt_id, response in db.execute("select prompt_id, response from rollouts order by id"):
        grouped.setdefault(prompt_id, []).append(response.split("boxed{", 1)[1].rsplit("}$", 1)[0])
    return grouped


def test_label_no_label_below_min_votes_and_gold_never_touched(ledger, invoke):
    db = open_db(ledger)
    metadata_before = db.execute("select id, metadata from prompts order by id").fetchall()
    invoke("label", ledger, "--majority", "--min-votes", "3")
    assert db.execute("select count(*) from labels where gold is null").fetchone()[0] == PROMPTS - GOLD
    result = invoke("label", ledger, "--majority", "--min-votes", "4")
    right = right_counts(db)
    expected = {p for p, n in right.items() if max(n, VOTES - n) >= 4 and int(p[1:]) >= GOLD}
    labelled = {row[0] for row in db.execute("select prompt_id from labels where gold is null")}
    assert labelled == expected and 0 < len(expected) < PROMPTS - GOLD
    assert db.execute("select min(votes) from labels").fetchone()[0] >= 4
    removed = PROMPTS - len(expected) - sum(max(n, VOTES - n) >= 4 for p, n in right.items()
                                            if int(p[1:]) < GOLD)
    assert f"{removed:,} old labels removed" in result.stderr
    assert f"{PROMPTS - GOLD - len(expected):,} below --min-votes" in result.stderr
    # The gold answers are where they were, unchanged.
    assert db.execute("select id, metadata from prompts order by id").fetchall() == metadata_before
    for prompt_id, gold in db.execute("select prompt_id, gold from labels where gold is not null"):
        assert gold == str(truth(int(prompt_id[1:])))


def test_label_check_equals_sql_over_the_ledger(ledger, invoke):
    invoke("verify", ledger, "--verifier", "math", "--silent")
    invoke("label", ledger, "--majority", "--min-votes", "3")
    report = json.loads(invoke("label", ledger, "--check", "--json").stdout)["check"]
    db = open_db(ledger)
    # From the math scores against gold alone: the majority equals the gold answer
    # when the passing rollouts outnumber the largest group of one wrong answer.
    prompts, agree = db.execute("""
        with per as (
            select rollouts.prompt_id,
                   sum(scores.passed = 1) as right,
                   (select max(n) from (
                        select count(*) as n from scores s2 join rollouts r2 on r2.id = s2.rollout_id
                        where r2.prompt_id = rollouts.prompt_id and s2.verifier = 'math'
                          and s2.passed = 0 group by s2.extracted)) as wrong
            from rollouts join scores on scores.rollout_id = rollouts.id and scores.verifier = 'math'
            join prompts on prompts.id = rollouts.prompt_id
            where json_extract(prompts.metadata, '$.answer') is not null
            group by rollouts.prompt_id)
        select sum(max(right, coalesce(wrong, 0)) >= 3 and right != coalesce(wrong, 0)),
               sum(right >= 3 and right > coalesce(wrong, 0))
        from per""").fetchone()
    assert report == [{"method": "majority", "verifier": "math", "weight_by": None,
                       "prompts": prompts, "agree": agree, "rate": round(agree / prompts, 6)}]
    assert prompts == GOLD and 0 < agree < GOLD
    text = invoke("label", ledger, "--check").stderr
    assert text == (f"majority (math): equals the gold answer on {agree:,} of {prompts:,} prompts "
                    f"({100 * agree / prompts:.1f}%)\n")


def test_verify_gold_label_grades_against_labels_and_says_so(ledger, invoke):
    invoke("verify", ledger, "--verifier", "math", "--silent")
    db = open_db(ledger)
    undecided = db.execute("select count(*) from scores where error = 'no gold answer'").fetchone()[0]
    assert undecided == (PROMPTS - GOLD) * VOTES
    invoke("label", ledger, "--majority", "--min-votes", "4")
    labelled = db.execute("select count(*) from labels where gold is null").fetchone()[0]
    result = invoke("verify", ledger, "--verifier", "math", "--gold", "label", "--json")
    # Only the rollouts of newly labelled prompts are scored again.
    assert json.loads(result.stdout)["verifiers"]["math"]["scored"] == labelled * VOTES
    rows = db.execute("""
        select labels.label, json_extract(scores.details, '$.gold'),
               json_extract(scores.details, '$.gold_source'), json_extract(scores.details, '$.label_method'),
               scores.passed, scores.extracted
        from scores join rollouts on rollouts.id = scores.rollout_id
        join labels on labels.prompt_id = rollouts.prompt_id
        where labels.gold is null""").fetchall()
    assert len(rows) == labelled * VOTES
    math_verifier = get_verifier("math")
    for label, gold, source, method, passed, extracted in rows:
        assert (gold, source, method) == (label, "label", "majority")
        assert passed == math_verifier.same_answer(label, extracted)
    # Prompts with gold keep being graded against their gold, never the label.
    assert db.execute("""select count(*) from scores join rollouts on rollouts.id = scores.rollout_id
                         where rollouts.prompt_id < 'q060' and scores.details like '%gold_source%'"""
                      ).fetchone()[0] == 0
    assert db.execute("select count(*) from scores where error = 'no gold answer'").fetchone()[0] == (
        PROMPTS - GOLD - labelled) * VOTES


def test_stats_shows_label_coverage_and_agreement(ledger, invoke):
    assert "Labels:" not in invoke("stats", ledger).stdout
    invoke("label", ledger, "--majority", "--min-votes", "4")
    db = open_db(ledger)
    labelled, checked, agree = db.execute(
        "select sum(gold is null), sum(gold is not null), sum(agrees) from labels").fetchone()
    stats = json.loads(invoke("stats", ledger, "--json").stdout)["labels"]
    assert (stats["without_gold"], stats["labelled"], stats["checked"], stats["agree"]) == (
        PROMPTS - GOLD, labelled, checked, agree)
    line = [x for x in invoke("stats", ledger).stdout.splitlines() if x.startswith("Labels:")]
    assert line == [f"Labels: {labelled:,} of {PROMPTS - GOLD:,} prompts without gold labelled by "
                    f"majority ({100 * labelled / (PROMPTS - GOLD):.1f}%); where gold exists the majority "
                    f"equals it on {agree:,} of {checked:,} ({100 * agree / checked:.1f}%)"]


def test_label_weight_by_a_score_changes_the_winner(db_path, invoke):
    db = open_db(db_path)
    add_prompt(db, "p", "Half?", None)
    answers = [(r"\boxed{0.5}", 0.9), (r"\boxed{\frac12}", 0.8), (r"\boxed{7}", 0.1), (r"\boxed{7}", 0.2),
               (r"\boxed{7}", -0.5)]
    for i, (response, weight) in enumerate(answers):
        add_score(db, add_rollout(db, "p", i, response), "rm", None, score=weight)
    invoke("label", db_path, "--majority", "--min-votes", "2")
    assert db.execute("select label, votes, share from labels").fetchone() == ("7", 3, 0.6)
    invoke("label", db_path, "--majority", "--min-votes", "2", "--weight-by", "rm")
    assert db.execute("select label, method, weight_by, votes, voters, share from labels").fetchone() == (
        "0.5", "weighted-majority", "rm", 2, 5, round(1.7 / 2.0, 6))


def test_label_weight_by_without_scores_is_refused(db_path, runner):
    from rsr.commands import cli

    db = open_db(db_path)
    add_prompt(db, "p", "Half?", None)
    add_rollout(db, "p", 0, r"\boxed{1}")
    result = runner.invoke(cli, ["label", db_path, "--majority", "--weight-by", "reward-model"])
    assert result.exit_code == 1
    assert "--weight-by 'reward-model': no rollout has a score from that verifier" in result.stderr
    assert db.execute("select count(*) from labels").fetchone()[0] == 0


def test_label_needs_a_verifier_that_can_vote(db_path, runner):
    from rsr.commands import cli

    open_db(db_path)
    result = runner.invoke(cli, ["label", db_path, "--majority", "--verifier", "code"])
    assert result.exit_code == 1
    assert "Verifier 'code' cannot vote" in result.stderr
    assert runner.invoke(cli, ["label", db_path]).exit_code == 2


@pytest.mark.parametrize("ballots, reason, label", [
    (["Answer: B", "(B)", "The answer is **B**.", "Answer: C", "A or C"], "labelled", "B"),
    (["Answer: B", "Answer: C"], "tied", None),
    (["Answer: B", "Answer: B", "Answer: C", "Answer: D", "Answer: A"], "low share", None),
    (["no idea", "maybe A or B"], "no answer", None),
])
def test_label_vote_groups_mcq_letters(ballots, reason, label):
    verifier = get_verifier("mcq")
    votes = [(verifier.vote_answer(text, {}), None) for text in ballots]
    outcome = vote(verifier, votes, min_votes=2, min_share=0.5)
    assert (outcome.reason, outcome.label) == (reason, label)

"""Labels for prompts without a gold answer: majority vote over extracted answers.

`majority_labels()` is `rsr label --majority`: for every prompt with valid
rollouts, each rollout's final answer votes for what the verifier reads in it
(`vote_answer`: math's extracted answer, mcq's letter; a hedge or no answer
abstains), votes are grouped by the verifier's own equivalence (`same_answer`:
`1/2` and `0.5` are one group), optionally weighted by another verifier's
scores (a reward model's), and the largest group wins when it has at least
min_votes rollouts and min_share of the (weighted) votes, and no other group
ties it. The winner is written to the `labels` table with its counts and the
run that made it; a prompt that no longer qualifies loses its old label.

A label never replaces a gold answer: verifiers read it only where
metadata.answer is missing (`rsr verify --gold label`, verification.py). For
prompts that do have gold the majority is computed all the same and stored
with `gold` and `agrees`, so `check_report()` (`rsr label --check`) says how
often the method finds the right answer where it can be checked.
"""

import json
from dataclasses import dataclass, field
from itertools import groupby

from .errors import ConfigError
from .reasoning import final_answer
from .runs import finish_run, start_run

# Valid rollouts (as verification counts them) with their prompt and, when
# weighting, the weighting verifier's score; in prompt order.
VOTES_SQL = """
select rollouts.prompt_id, prompts.metadata, prompts.messages, rollouts.response,
       weights.score as weight
from rollouts join prompts on prompts.id = rollouts.prompt_id
left join scores as weights
       on weights.rollout_id = rollouts.id and weights.verifier = :weight_by
where rollouts.valid
order by rollouts.prompt_id, rollouts.id
"""

WEIGHT_SCORES_SQL = "select count(*) from scores where verifier = ? and score is not null"

UPSERT_LABEL_SQL = """
insert into labels (prompt_id, label, method, verifier, weight_by, votes, voters, share,
                    answers, gold, agrees, run_id)
values (:prompt_id, :label, :method, :verifier, :weight_by, :votes, :voters, :share,
        :answers, :gold, :agrees, :run_id)
on conflict (prompt_id) do update set
    label = excluded.label, method = excluded.method, verifier = excluded.verifier,
    weight_by = excluded.weight_by, votes = excluded.votes, voters = excluded.voters,
    share = excluded.share, answers = excluded.answers, gold = excluded.gold,
    agrees = excluded.agrees, run_id = excluded.run_id,
    created_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
"""

DELETE_LABEL_SQL = "delete from labels where prompt_id = ?"

# What rsr label --check and rsr stats report.
CHECK_SQL = """
select method, verifier, weight_by, count(*) as prompts, sum(agrees) as agree
from labels where gold is not null
group by method, verifier, weight_by order by prompts desc
"""
COVERAGE_SQL = """
select
    (select count(*) from prompts
     where coalesce(trim(json_extract(metadata, '$.answer')), '') = '') as without_gold,
    (select count(*) from labels where gold is null) as labelled,
    (select count(*) from labels where gold is not null) as checked,
    (select coalesce(sum(agrees), 0) from labels where gold is not null) as agree
"""


@dataclass
class Vote:
    "One group of equivalent answers: its first answer, its forms and their counts, its weight."

    answer: str
    forms: dict = field(default_factory=dict)
    count: int = 0
    weight: float = 0.0


@dataclass
class Outcome:
    "The vote over one prompt: the winning label or why there is none."

    label: str | None
    reason: str  # labelled, no answer, few votes, low share, tied, no weights
    votes: int = 0
    voters: int = 0
    share: float = 0.0
    answers: int = 0


@dataclass
class LabelCounts:
    "What a label run did, for its summary line."

    prompts: int = 0
    without_gold: int = 0
    labelled: int = 0
    no_answer: int = 0
    few_votes: int = 0
    low_share: int = 0
    tied: int = 0
    no_weights: int = 0
    removed: int = 0
    checked: int = 0
    agree: int = 0

    def summary(self):
        parts = [f"Labelled {self.labelled:,} of {self.without_gold:,} prompts without gold"]
        skipped = [(self.few_votes, "below --min-votes"), (self.low_share, "below --min-share"),
                   (self.tied, "tied"), (self.no_answer, "with no answer to vote for"),
                   (self.no_weights, "with no weighting scores")]
        parts += [f"{n:,} {why}" for n, why in skipped if n]
        if self.removed:
            parts.append(f"{self.removed:,} old labels removed")
        text = "; ".join(parts)
        if self.checked:
            text += (f". Where gold exists, the majority equals it on {self.agree:,} of "
                     f"{self.checked:,} prompts ({100 * self.agree / self.checked:.1f}%)")
        return text


def vote(verifier, ballots, min_votes=3, min_share=0.5, weighted=False) -> Outcome:
    """The majority of ballots [(answer or None, weight)], grouped by verifier.same_answer.

    A ballot without an answer abstains. Weighted, each vote counts its weight
    (a negative one as 0) and a ballot without a weight abstains; unweighted,
    each counts 1."""
    groups = []
    if weighted and all(weight is None for _, weight in ballots):
        return Outcome(None, "no weights")
    for answer, weight in ballots:
        if answer is None or (weighted and weight is None):
            continue
        weight = max(0.0, float(weight)) if weighted else 1.0
        group = next((g for g in groups if g.answer == answer or verifier.same_answer(g.answer, answer)),
                     None)
        if group is None:
            group = Vote(answer)
            groups.append(group)
        group.forms[answer] = group.forms.get(answer, 0) + 1
        group.count += 1
        group.weight += weight
    voters = sum(g.count for g in groups)
    if not groups:
        return Outcome(None, "no answer")
    key = (lambda g: g.weight) if weighted else (lambda g: g.count)
    ranked = sorted(groups, key=key, reverse=True)
    top = ranked[0]
    total = sum(key(g) for g in groups)
    share = key(top) / total if total else 0.0
    outcome = Outcome(None, "labelled", top.count, voters, round(share, 6), len(groups))
    if total == 0:
        outcome.reason = "no weights"
    elif len(ranked) > 1 and key(ranked[1]) == key(top):
        outcome.reason = "tied"
    elif top.count < min_votes:
        outcome.reason = "few votes"
    elif share < min_share:
        outcome.reason = "low share"
    else:
        # The label is the group's most common written form (the first seen on a tie).
        outcome.label = max(top.forms, key=lambda form: top.forms[form])
    return outcome


def _gold(metadata):
    gold = metadata.get("answer")
    if gold is None or (isinstance(gold, str) and not gold.strip()):
        return None
    return gold if isinstance(gold, str) else json.dumps(gold)


def _agrees(verifier, gold, label):
    from .verifiers.mcq import MultipleChoice, gold_letters

    if isinstance(verifier, MultipleChoice):
        return gold_letters(gold) == label
    return verifier.same_answer(gold, label)


def majority_labels(db, verifier, *, min_votes=3, min_share=0.5, weight_by=None,
                    config=None) -> LabelCounts:
    """Label every prompt with valid rollouts by majority vote (see the module's
    docstring); the labels are written in one transaction, and the invocation is
    recorded in the runs table."""
    if not verifier.can_vote:
        verifier.vote_answer("", {})  # raises the verifier's own explanation
    if min_votes < 1 or not 0 <= min_share <= 1:
        raise ConfigError("--min-votes must be at least 1 and --min-share between 0 and 1")
    if weight_by and not db.execute(WEIGHT_SCORES_SQL, [weight_by]).fetchone()[0]:
        raise ConfigError(
            f"--weight-by {weight_by!r}: no rollout has a score from that verifier; "
            f"score them first (rsr verify RUN.db --verifier {weight_by})")
    method = "weighted-majority" if weight_by else "majority"
    run_id = start_run(db, "label", config or {
        "method": method, "verifier": verifier.name, "weight_by": weight_by,
        "min_votes": min_votes, "min_share": min_share})
    counts, status = LabelCounts(), "failed"
    try:
        # Votes are counted first, reading rollouts one prompt at a time, and
        # written after in one short transaction: a long count (sympy) never
        # holds the write lock a concurrent rsr sample needs.
        outcomes = []
        rows = db.execute(VOTES_SQL, {"weight_by": weight_by})
        for prompt_id, group in groupby(rows, key=lambda row: row[0]):
            group = list(group)
            metadata = json.loads(group[0][1])
            prompt = json.loads(group[0][2]) if verifier.needs_prompt else None
            ballots = [(verifier.vote_answer(final_answer(row[3]), metadata, prompt=prompt), row[4])
                       for row in group]
            outcome = vote(verifier, ballots, min_votes, min_share, weighted=bool(weight_by))
            outcomes.append((prompt_id, metadata, outcome))
        with db.atomic():
            for prompt_id, metadata, outcome in outcomes:
                _save(db, counts, prompt_id, metadata, outcome, verifier, method, weight_by, run_id)
        status = "finished"
    except KeyboardInterrupt:
        status = "interrupted"  # nothing was written: no label changed
        raise
    finally:
        finish_run(db, run_id, status, counts.summary() if status == "finished" else None)
    return counts


def _save(db, counts, prompt_id, metadata, outcome, verifier, method, weight_by, run_id):
    gold = _gold(metadata)
    counts.prompts += 1
    counts.without_gold += gold is None
    if outcome.label is None:
        if gold is None:
            attribute = outcome.reason.replace(" ", "_")
            setattr(counts, attribute, getattr(counts, attribute) + 1)
        counts.removed += db.execute(DELETE_LABEL_SQL, [prompt_id]).rowcount
        return
    agrees = None if gold is None else int(bool(_agrees(verifier, gold, outcome.label)))
    db.execute(UPSERT_LABEL_SQL, {
        "prompt_id": prompt_id, "label": outcome.label, "method": method,
        "verifier": verifier.name, "weight_by": weight_by, "votes": outcome.votes,
        "voters": outcome.voters, "share": outcome.share, "answers": outcome.answers,
        "gold": gold, "agrees": agrees, "run_id": run_id})
    if gold is None:
        counts.labelled += 1
    else:
        counts.checked += 1
        counts.agree += agrees


def check_report(db) -> list[dict]:
    """How often the stored majority labels equal the gold answer, per method:
    [{method, verifier, weight_by, prompts, agree, rate}]."""
    return [
        {**row, "rate": round(row["agree"] / row["prompts"], 6) if row["prompts"] else None}
        for row in db.query(CHECK_SQL)
    ]


def label_stats(db) -> dict | None:
    "Label coverage and agreement for rsr stats, or None when the ledger has no labels."
    if "labels" not in db.table_names() or not db.execute("select 1 from labels limit 1").fetchone():
        return None
    row = dict(next(db.query(COVERAGE_SQL)))
    row["coverage"] = round(row["labelled"] / row["without_gold"], 6) if row["without_gold"] else None
    row["agreement"] = round(row["agree"] / row["checked"], 6) if row["checked"] else None
    return row

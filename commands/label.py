"""`rsr label`: majority-vote labels for prompts without a gold answer."""

import dataclasses

import click

from rsr import open_db
from rsr.errors import ConfigError
from rsr.labels import check_report, majority_labels
from rsr.verifiers import get_verifier

from . import cli, echo_err, echo_json, existing_db_argument, json_option


@cli.command()
@existing_db_argument
@click.option("--majority", is_flag=True, help="Label prompts by majority vote over their rollouts")
@click.option("--check", is_flag=True,
              help="Report how often the stored majority equals the gold answer where there is one")
@click.option("verifier_name", "--verifier", "-V", default="math", show_default=True, metavar="NAME",
              help="Whose answer extraction and equivalence group the votes (math, mcq, mcq-multi, exact)")
@click.option("--min-votes", type=click.IntRange(min=1), default=3, show_default=True,
              help="Rollouts the winning answer needs")
@click.option("--min-share", type=click.FloatRange(0, 1), default=0.5, show_default=True,
              help="Share of the (weighted) votes the winning answer needs")
@click.option("--weight-by", metavar="VERIFIER",
              help="Weight each vote by this verifier's score (a reward model's), as stored")
@json_option
def label(db_path, majority, check, verifier_name, min_votes, min_share, weight_by, json_):
    """Label prompts without a gold answer by majority vote over their rollouts

    Votes are the answers the verifier extracts, grouped by its own equivalence
    (for math, 1/2 and 0.5 are one vote). A label never replaces metadata.answer;
    where a prompt has one, the majority is stored beside it so --check can say
    how often the method is right. Use the labels with rsr verify --gold label.

    \b
        rsr label run.db --majority --min-votes 4 --min-share 0.6
        rsr label run.db --majority --verifier mcq --weight-by reward-model
        rsr label run.db --check
        rsr verify run.db --verifier math --gold label
    """
    if not majority and not check:
        raise click.UsageError("Give --majority (make labels), --check (report them) or both")
    result = {}
    with open_db(db_path, create=False) as db:
        if majority:
            verifier = get_verifier(verifier_name)
            config = {"method": "majority", "verifier": verifier.name, "min_votes": min_votes,
                      "min_share": min_share, "weight_by": weight_by}
            counts = majority_labels(db, verifier, min_votes=min_votes, min_share=min_share,
                                     weight_by=weight_by, config=config)
            echo_err(counts.summary())
            result["labels"] = dataclasses.asdict(counts)
        if check:
            report = check_report(db)
            if not report and not majority:
                raise ConfigError("No majority labels on prompts with gold answers to check: "
                                  "run rsr label RUN.db --majority on a ledger with some")
            if not report:
                echo_err("No prompt with a gold answer has a majority label to check")
            for row in report:
                weight = f" weighted by {row['weight_by']}" if row["weight_by"] else ""
                echo_err(f"{row['method']} ({row['verifier']}{weight}): equals the gold answer on "
                         f"{row['agree']:,} of {row['prompts']:,} prompts ({100 * row['rate']:.1f}%)")
            result["check"] = report
    if json_:
        echo_json(result)

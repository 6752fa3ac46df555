"""`rsr verify`: score rollouts that have no score from a verifier yet."""

import dataclasses

import click

from rsr import open_db
from rsr.errors import ConfigError
from rsr.progress import verify_postfix
from rsr.config import VERIFIER
from rsr.verification import GOLD_SOURCES, Scorer, count_pending, verify_rollouts
from rsr.verifiers import get_verifier

from . import (cli, echo_err, echo_json, existing_db_argument, json_option, progress_display,
               silent_option, verifier_option)


@cli.command()
@existing_db_argument
@click.option("verifier_names", "--verifier", "-V", multiple=True, required=True, metavar="NAME",
              help="Verifier to run (see 'rsr verifiers'), PATH.py:FUNCTION, or a cascade "
              "cascade:V1>V2 (each later one only where the earlier are undecided); repeatable")
@verifier_option
@click.option("--rescore", is_flag=True, help="Score again rollouts that already have a score")
@click.option("--workers", "-w", type=click.IntRange(min=0), default=VERIFIER.workers, show_default=True,
              help="Worker processes for CPU verifiers (0: in-process where safe)")
@click.option("--timeout", type=click.FloatRange(min=0), default=VERIFIER.timeout, show_default=True,
              help="Seconds one check may take before it is stopped and recorded as an error")
@click.option("--batch-size", type=click.IntRange(min=1), default=1000, show_default=True,
              help="Rollouts scored and written per transaction")
@click.option("--gold", type=click.Choice(GOLD_SOURCES), default="answer", show_default=True,
              help="label: grade prompts without metadata.answer against their majority label "
                   "(rsr label)")
@silent_option
@json_option
def verify(db_path, verifier_names, verifier_options, rescore, workers, timeout, batch_size,
           gold, silent, json_):
    """Score every rollout that has no score from these verifiers yet

    Truncated, errored and empty rollouts are skipped. Re-running continues where the
    last run stopped; --rescore scores everything again.

    \b
        rsr verify run.db --verifier math --workers 2
        rsr verify run.db --verifier mcq-multi --verifier-option partial=true
        rsr verify run.db --verifier judge --verifier-option model=qwen \\
            --verifier-option base_url=http://127.0.0.1:8000/v1
        rsr verify run.db --verifier my_checks.py:check --timeout 30
        rsr verify run.db --verifier math --gold label
        rsr verify run.db --verifier "cascade:math>judge" --verifier-option judge.model=qwen \\
            --verifier-option judge.base_url=http://127.0.0.1:8000/v1
    """
    if len(verifier_names) > 1 and verifier_options:
        raise ConfigError("--verifier-option applies to one verifier; run rsr verify once per verifier")
    db = open_db(db_path, create=False)
    results = {}
    for name in verifier_names:
        verifier = get_verifier(name, **verifier_options)
        config = {"verifier": verifier.name, "options": verifier_options, "workers": workers,
                  "timeout": timeout, "rescore": rescore, "batch_size": batch_size, "gold": gold}
        with Scorer(verifier, workers=workers, timeout=timeout) as scorer:
            todo = count_pending(db, verifier.name, rescore, gold)
            bar = progress_display(f"Verifying ({verifier.name})", "rollouts", todo, silent)
            try:
                counts = verify_rollouts(
                    db, scorer, rescore=rescore, batch_size=batch_size, config=config, gold=gold,
                    on_batch=None if bar is None else (
                        lambda n, c: bar.update(c.scored, todo, verify_postfix(c),
                                                f"Verifying ({verifier.name}): {c.summary()}")))
            finally:
                if bar is not None:
                    bar.close()
        echo_err(f"{verifier.name}: {counts.summary()}")
        results[verifier.name] = dataclasses.asdict(counts)
    if json_:
        echo_json({"verifiers": results})

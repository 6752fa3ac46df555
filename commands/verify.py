"""`rsr verify`: score rollouts that have no score from a verifier yet."""

import click

from rsr import open_db
from rsr.errors import ConfigError
from rsr.verification import DEFAULT_TIMEOUT, Scorer, count_pending, verify_rollouts
from rsr.verifiers import get_verifier

from . import cli, echo_err, existing_db_argument, progress, silent_option


def parse_options(pairs, partial):
    "--option key=value pairs (and --partial) as keyword arguments for get_verifier."
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint="--option")
        options[key.strip().replace("-", "_")] = value
    if partial:
        options["partial"] = True
    return options


@cli.command()
@existing_db_argument
@click.option("verifier_names", "--verifier", "-V", multiple=True, required=True, metavar="NAME",
              help="Verifier to run (see 'rsr verifiers'), or PATH.py:FUNCTION; repeatable")
@click.option("options", "--option", "-o", multiple=True, metavar="KEY=VALUE",
              help="Verifier option, e.g. model=NAME, base_url=URL, threshold=0.5; repeatable")
@click.option("--partial", is_flag=True, help="mcq-multi: score the Jaccard overlap of the letter sets")
@click.option("--rescore", is_flag=True, help="Score again rollouts that already have a score")
@click.option("--workers", "-w", type=click.IntRange(min=0), default=0, show_default=True,
              help="Worker processes for CPU verifiers (0: in-process where safe)")
@click.option("--timeout", type=click.FloatRange(min=0), default=DEFAULT_TIMEOUT, show_default=True,
              help="Seconds one check may take before it is stopped and recorded as an error")
@click.option("--batch-size", type=click.IntRange(min=1), default=1000, show_default=True,
              help="Rollouts scored and written per transaction")
@silent_option
def verify(db_path, verifier_names, options, partial, rescore, workers, timeout, batch_size, silent):
    """Score every rollout that has no score from these verifiers yet

    Truncated, errored and empty rollouts are skipped. Re-running continues where the
    last run stopped; --rescore scores everything again.

    \b
        rsr verify run.db --verifier math --workers 2
        rsr verify run.db --verifier mcq-multi --partial
        rsr verify run.db --verifier judge -o model=qwen -o base_url=http://127.0.0.1:8000/v1
        rsr verify run.db --verifier my_checks.py:check --timeout 30
    """
    kwargs = parse_options(options, partial)
    if len(verifier_names) > 1 and kwargs:
        raise ConfigError("--option and --partial apply to one verifier; run rsr verify once per verifier")
    db = open_db(db_path, create=False)
    for name in verifier_names:
        verifier = get_verifier(name, **kwargs)
        config = {"verifier": verifier.name, "options": kwargs, "workers": workers,
                  "timeout": timeout, "rescore": rescore, "batch_size": batch_size}
        with Scorer(verifier, workers=workers, timeout=timeout) as scorer:
            todo = count_pending(db, verifier.name, rescore)
            with progress(length=todo, label=f"Verifying ({verifier.name})", silent=silent) as bar:
                counts = verify_rollouts(db, scorer, rescore=rescore, batch_size=batch_size,
                                         on_batch=bar.update, config=config)
        echo_err(f"{verifier.name}: {counts.summary()}")

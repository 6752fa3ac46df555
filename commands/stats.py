import click

from rsr import open_db
from rsr.stats import format_text, ledger_stats, write_plots

from . import cli, echo_err, echo_json, existing_db_argument, json_option


@cli.command()
@existing_db_argument
@json_option
@click.option("--by", metavar="FIELD",
              help="Pass rate by this prompt metadata field, or by arm (--by arm)")
@click.option("--verifier", help="Whose verdicts to count (needed when the ledger has several)")
@click.option(
    "--target",
    help="sft, dpo, multi-sft:K or best-of-n[:N] (default: the last sample run's, else sft)",
)
@click.option(
    "--max-rollouts",
    type=click.IntRange(min=1),
    help="Budget per prompt (default: the last sample run's, else 16)",
)
@click.option(
    "--max-steps",
    type=click.IntRange(min=1),
    help="Steps per prompt (default: the last sample run's, else 8)",
)
@click.option(
    "--plots",
    "plots_dir",
    type=click.Path(file_okay=False),
    help="Write PNG plots and stats.json to DIR",
)
def stats(db_path, json_, by, verifier, target, max_rollouts, max_steps, plots_dir):
    """Pass rates, pass@k, token lengths, truncation and early-stop savings

    \b
        rsr stats run.db
        rsr stats run.db --by subject --json | jq .pass_rate_by
        rsr stats run.db --plots report/
    """
    histograms = {}
    with open_db(db_path, readonly=True) as db:
        data = ledger_stats(db, verifier, by, target, max_rollouts, max_steps, histograms)
    if json_:
        echo_json(data)
    else:
        click.echo(format_text(data))
    if plots_dir:
        written = write_plots(data, histograms, plots_dir)
        echo_err(f"Wrote {', '.join(str(p) for p in written)}")

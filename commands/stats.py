import json

import click

from rsr import open_db
from rsr.stats import format_text, ledger_stats, write_plots

from . import cli, echo_err, existing_db_argument


@cli.command()
@existing_db_argument
@click.option("--json", "json_", is_flag=True, help="Print JSON instead of text")
@click.option("--by", metavar="FIELD", help="Pass rate by this prompt metadata field")
@click.option("--verifier", help="Whose verdicts to count (needed when the ledger has several)")
@click.option("--target", help="sft, dpo, multi-sft:K or best-of-n[:N] (default: the last sample run's, else sft)")
@click.option("--max-rollouts", type=click.IntRange(min=1), help="Budget per prompt (default: the last sample run's, else 16)")
@click.option("--max-steps", type=click.IntRange(min=1), help="Steps per prompt (default: the last sample run's, else 8)")
@click.option("--plots", "plots_dir", type=click.Path(file_okay=False), help="Write PNG plots and stats.json to DIR")
def stats(db_path, json_, by, verifier, target, max_rollouts, max_steps, plots_dir):
    """Pass rates, pass@k, token lengths, truncation and early-stop savings

    \b
        rsr stats run.db
        rsr stats run.db --by subject --json | jq .pass_rate_by
        rsr stats run.db --plots report/
    """
    histograms = {}
    data = ledger_stats(open_db(db_path, readonly=True), verifier, by, target, max_rollouts,
                        max_steps, histograms)
    click.echo(json.dumps(data, indent=2) if json_ else format_text(data))
    if plots_dir:
        written = write_plots(data, histograms, plots_dir)
        echo_err(f"Wrote {', '.join(str(p) for p in written)}")

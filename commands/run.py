import sys

import click

from rsr.recipes import prepare
from rsr.runner import run_recipe
from rsr.pipeline import summary_line
from rsr.sampling import Capped, Interrupted

from . import CAPPED_EXIT_CODE, cli, echo_err, remember_ledger, sample_display, silent_option


@cli.command()
@click.argument("recipe", required=False)
@click.argument("overrides", nargs=-1, metavar="[KEY.PATH=VALUE]...")
@click.option("--db", "db_path", type=click.Path(dir_okay=False), callback=remember_ledger,
              help="The ledger (default: the recipe's db, else OUTPUTS_DIR/run.db)")
@click.option("--allow-config-change", is_flag=True,
              help="Resume even if model, sampling or verifier settings differ from the ledger's")
@silent_option
def run(recipe, overrides, db_path, allow_config_change, silent):
    """Run a recipe end to end: load, sample, verify, export, stats

    Re-running continues where the ledger stands; with --db and no recipe it
    resumes with the configuration stored in the ledger. Overrides are dotted
    keys: sampler.concurrency=64 sampling.temperature=0.9.

    \b
        rsr run recipes/quickstart.yaml
        rsr run recipes/gsm8k-sft.yaml sampler.base_url=http://127.0.0.1:8000/v1
        rsr run --db out/quickstart/run.db sampler.concurrency=8
    """
    if recipe is not None and "=" in recipe and not recipe.endswith((".yaml", ".yml")):
        overrides, recipe = (recipe, *overrides), None
    resolved, db_path = prepare(recipe, db_path, overrides, allow_config_change)
    show = sample_display(silent)
    say = None if silent else (lambda line: _say(show, line))
    try:
        result = run_recipe(resolved, db_path, on_progress=show, on_step=say,
                            on_sampled=show.close if show is not None else None)
    except Interrupted as ex:
        if show is not None:
            show.close()  # the bar stays as it was, the message goes below it
        echo_err(str(ex))
        sys.exit(130)
    except Capped as ex:
        if show is not None:
            show.close()
        echo_err(str(ex))
        sys.exit(CAPPED_EXIT_CODE)
    finally:
        if show is not None:
            show.close()
    echo_err(summary_line(result["sample"]))
    echo_err(f"Ledger: {db_path}")


def _say(show, text):
    "A stage's line, above the bar while one is drawn."
    if show is not None and show.tty and show.display.bar is not None:
        show.display.bar.write(text, file=show.display.file)
    else:
        echo_err(text)

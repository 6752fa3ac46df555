import json

import click

from rsr import open_db, plugins
from rsr.export import dataset_info, explain_empty, get_formatter, make_options
from rsr.export import export as export_rows
from rsr.formatters import REASONING_MODES
from rsr.selection import PAIR_STRATEGIES, PICK_ORDER

from . import RegistryChoice, cli, echo_err, echo_json, existing_db_argument, json_option, key_values


rate = click.FloatRange(0, 1)


# The options export and publish share: which rollouts, and how rows look.
SELECTION_OPTIONS = [
    click.option("--verifier", help="Whose scores to use (needed when the ledger has several)"),
    click.option(
        "--pass-threshold", type=float, help="Count score >= T as a pass instead of the verdict"
    ),
    click.option(
        "--per-prompt", type=click.IntRange(min=1), help="Rollouts per prompt (sft 1, multi-sft 4)"
    ),
    click.option(
        "--pick",
        type=click.Choice(list(PICK_ORDER)),
        default="shortest",
        show_default=True,
        help="Tie-break between equal scores",
    ),
    click.option(
        "--seed",
        type=int,
        default=0,
        show_default=True,
        help="Seed for --pick random and --pairs best-random",
    ),
    click.option(
        "--pairs",
        type=click.Choice(list(PAIR_STRATEGIES)),
        default="pass-fail",
        show_default=True,
        help="How dpo pairs are formed",
    ),
    click.option("--max-pairs-per-prompt", type=click.IntRange(min=1), default=1, show_default=True),
    click.option("--min-margin", type=float, help="Smallest chosen-minus-rejected score for a pair"),
    click.option("--k", type=click.IntRange(min=1), help="How many rollouts top-k keeps"),
    click.option(
        "--dedupe", is_flag=True, help="Identical completions (whitespace-normalised) count once"
    ),
    click.option("arms", "--arm", multiple=True,
                 help="Only rollouts of this arm (repeatable; default: every arm, pooled)"),
    click.option("chosen_arms", "--chosen-arm", multiple=True,
                 help="dpo: take the chosen side from this arm (repeatable)"),
    click.option("rejected_arms", "--rejected-arm", multiple=True,
                 help="dpo: take the rejected side from this arm (repeatable)"),
    click.option("--pass-rate-min", type=rate, help="Only prompts with pass rate >= this"),
    click.option("--pass-rate-max", type=rate, help="Only prompts with pass rate <= this"),
    click.option("--where", help="SQL condition on the prompts table"),
    click.option(
        "--reasoning",
        type=click.Choice(REASONING_MODES),
        default="think-tags",
        show_default=True,
        help="Reasoning as <think> tags, a reasoning_content field, or dropped",
    ),
    click.option(
        "--include-metadata", is_flag=True, help="Add ids, scores and prompt metadata to each row"
    ),
    click.option("format_options", "--format-option", multiple=True, callback=key_values,
                 metavar="KEY=VALUE", help="An option of the format's own, e.g. one a plugin "
                 "format declares (repeatable)"),
]


def selection_options(command):
    "Add the shared export options to a command."
    for option in reversed(SELECTION_OPTIONS):
        command = option(command)
    return command


@cli.command()
@existing_db_argument
@click.option(
    "format_",
    "--format",
    required=True,
    type=RegistryChoice(plugins.get_formatters),
    help="Training format",
)
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False), help="Write to FILE instead of stdout"
)
@selection_options
@click.option(
    "--print-dataset-info",
    is_flag=True,
    help="Print LLaMA-Factory's dataset_info.json entry for -o FILE",
)
@json_option
def export(db_path, format_, output, print_dataset_info, json_, **options):
    """Export training data as JSONL: SFT, DPO pairs, best-of-N or top-K

    Only valid rollouts are exported: truncated, errored and empty ones never are.

    \b
        rsr export run.db --format sft -o train.jsonl
        rsr export run.db --format dpo --pairs best-worst --min-margin 0.2 > pairs.jsonl
        rsr export run.db --format top-k --k 1000 --where "json_extract(metadata, '$.level') = 5"
        rsr export run.db --format dpo --chosen-arm teacher --rejected-arm student

    --format batch-requests writes the next round's requests instead (one per
    rollout, the OpenAI batch input format that vllm run-batch reads too);
    `rsr import` reads the runner's output back, and the next export holds only
    the prompts still pending. Its settings are the latest sampling run's or
    batch export's unless given as --format-option (model, target,
    max_rollouts, step_size, max_steps, sampling_seed, temperature, top_p,
    max_tokens, extra_params, url):

    \b
        rsr export run.db --format batch-requests --verifier math \\
            --format-option model=Qwen/Qwen3-8B --format-option target=sft -o round1.jsonl
        vllm run-batch -i round1.jsonl -o out1.jsonl --model Qwen/Qwen3-8B
        rsr import run.db out1.jsonl --verifier math
    """
    formatter = get_formatter(format_)
    if json_ and (output is None or output == "-"):
        raise click.UsageError("--json needs -o FILE: without it stdout carries the rows")
    if getattr(formatter, "plans", False):
        # A format that plans the next round (batch-requests) records it.
        with open_db(db_path) as db:
            count, summary = formatter.plan(db, options, output)
        echo_err(summary)
        if json_:
            echo_json({"format": format_, "rows": count, "output": output})
        return
    info = dataset_info(formatter, output) if print_dataset_info else None
    with open_db(db_path, readonly=True) as db:
        export_options = make_options(db, options, formatter)
        count = export_rows(db, formatter, export_options, output)
        empty = explain_empty(db, format_, export_options) if count == 0 else None
    if info and not json_:
        click.echo(json.dumps(info, indent=2))
    if empty:
        echo_err(empty["message"])
    verifier = export_options.selection.verifier
    echo_err(f"Exported {count:,} rows ({format_}, verifier {verifier})")
    if json_:
        echo_json({"format": format_, "rows": count, "output": output, "verifier": verifier,
                   **({"dataset_info": info} if info else {}),
                   **({"empty": {k: v for k, v in empty.items() if k != "message"},
                       "reason": empty["message"]} if empty else {})})

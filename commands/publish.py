import click

from rsr import open_db, plugins
from rsr.publish import publish as publish_folder
from rsr.publish import hub_api, push_to_hub

from . import RegistryChoice, cli, echo_err, echo_json, existing_db_argument, json_option
from .export import selection_options


@cli.command()
@existing_db_argument
@click.argument("folder", metavar="DIR", type=click.Path(file_okay=False))
@click.option("formats", "--format", multiple=True, required=True,
              type=RegistryChoice(plugins.get_formatters),
              help="A training format to publish as a config of its own (repeatable)")
@selection_options
@click.option("--name", help="The dataset's title on its card (default: the ledger's name)")
@click.option("--push-to-hub", "repo", metavar="REPO",
              help="Also upload DIR to this Hugging Face dataset repository (token from "
              "$HF_TOKEN, never written); off by default")
@click.option("--private", is_flag=True, help="With --push-to-hub: create the repository private")
@json_option
def publish(db_path, folder, formats, name, repo, private, json_, **options):
    """Write a dataset folder that datasets.load_dataset() reads, with a dataset card

    One config per --format (DIR/FORMAT/train.jsonl, with the export options
    given), and README.md: YAML front matter (configs, license, tags, size),
    every command that made the data with its configuration (secrets
    redacted), models, verifiers, counts, pass rates, early-stop savings and a
    pass-rate histogram.

    \b
        rsr publish run.db gsm8k-sft --format sft --format dpo --pairs best-worst
        python -c "import datasets; print(datasets.load_dataset('gsm8k-sft', 'dpo'))"
        rsr publish run.db gsm8k-sft --format sft --push-to-hub me/gsm8k-sft
    """
    api = hub_api() if repo else None  # a missing token or library stops it here
    with open_db(db_path, readonly=True) as db:
        done = publish_folder(db, folder, list(formats), options, ledger=db_path, name=name)
    configs = ", ".join(f"{c} {n:,} rows" for c, n in done.configs.items())
    echo_err(f"Published {folder}: {configs}")
    url = push_to_hub(api, folder, repo, private) if repo else None
    if url:
        echo_err(f"Pushed to {url}")
    if json_:
        echo_json({"folder": folder, "configs": done.configs, "files": done.files,
                   "pushed": url})

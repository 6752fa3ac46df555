"""`rsr publish`: a dataset folder built from the ledger, ready for the Hub.

The folder holds one config per export format asked for (`sft/train.jsonl`,
`dpo/train.jsonl`, ... written by the same formatters as `rsr export`), so
`datasets.load_dataset(DIR, "sft")` loads it, and a `README.md` dataset card:
YAML front matter (the configs, the license of the prompts' sources where
known, task tags, size), then what the ledger knows and a bare JSONL file
does not: every command that wrote to the ledger with its full configuration
(secrets redacted), the models, the verifiers, counts and pass rates, what
early stop saved, a pass-rate histogram (`pass_rates.svg`) and the rsr
version. `rsr_runs.json` keeps the runs table beside the data.

Secrets: configurations and command lines are stored redacted (rsr/runs.py);
they are redacted again here, and the value of every secret-looking
environment variable (OPENAI_API_KEY, HF_TOKEN, ...) is scrubbed from what is
written, in case one was typed where no key was expected.
"""

from __future__ import annotations

import json
import os
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .errors import ConfigError, RsrError
from .export import explain_empty, export, get_formatter, make_options
from .runs import REDACTED, SECRET_KEY_RE, redact, redact_argv
from .stats import ledger_stats
from .version import __version__

CARD_MARKER = "<!-- dataset card written by rsr publish -->"
CHART_FILE = "pass_rates.svg"
RUNS_FILE = "rsr_runs.json"

RUNS_SQL = """
select id, command, argv, config, rsr_version, status, summary, started_at, finished_at
from runs order by id
"""
MODELS_SQL = """
select arm, coalesce(model, '') as model, coalesce(sampler, '') as sampler,
       count(distinct prompt_id) as prompts, count(*) as rollouts,
       coalesce(sum(valid), 0) as valid, coalesce(sum(completion_tokens), 0) as completion_tokens
from rollouts group by 1, 2, 3 order by rollouts desc
"""
VERDICTS_SQL = """
select verifier, count(*) as prompts, sum(passed) as passed, sum(failed) as failed,
       sum(unparsed) as undecided
from verdicts group by verifier order by verifier
"""
# Where each prompt came from: a license in its metadata, or the name of its source.
SOURCES_SQL = """
select json_extract(metadata, '$.license') as license,
       json_extract(metadata, '$.source') as source, count(*) as prompts
from prompts group by 1, 2 order by prompts desc
"""

# Licenses of the public prompt sets rsr ships (data/README.md), by metadata.source.
KNOWN_LICENSES = {
    "gsm8k": "mit", "math500": "mit", "mmlu": "mit", "jeebench": "mit",
    "arena_hard_v0.1": "apache-2.0",
}
SIZE_CATEGORIES = ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"),
                   (1_000_000, "100K<n<1M"), (10_000_000, "1M<n<10M"))


@dataclass
class Published:
    "What a publish wrote: rows per config, the folder, its files."

    folder: Path
    configs: dict = field(default_factory=dict)
    files: list = field(default_factory=list)


def check_folder(folder: Path) -> None:
    "Refuse a folder that holds files not written by rsr publish."
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"{folder} is a file; give a folder to publish into")
    if not folder.exists() or not any(folder.iterdir()):
        return
    card = folder / "README.md"
    if not (card.is_file() and CARD_MARKER in card.read_text(encoding="utf-8", errors="replace")):
        raise ConfigError(f"{folder} is not empty and was not written by rsr publish; "
                          "choose a new folder")


def licenses(db) -> tuple[str, list]:
    """The card's license (one license shared by every prompt, else 'other' or
    'unknown') and the per-source rows behind it."""
    rows = []
    for row in db.query(SOURCES_SQL):
        known = row["license"] or KNOWN_LICENSES.get(row["source"] or "")
        rows.append({**row, "license": known})
    found = {row["license"] for row in rows}
    if len(found) == 1 and None not in found:
        return str(found.pop()).lower(), rows
    return ("other" if found - {None} else "unknown"), rows


def size_category(rows: int) -> str:
    return next((label for limit, label in SIZE_CATEGORIES if rows < limit), "n>10M")


def scrub(text: str) -> str:
    "Text with the value of every secret-looking environment variable replaced."
    for name, value in os.environ.items():
        if SECRET_KEY_RE.search(name) and len(value) >= 8 and value in text:
            text = text.replace(value, REDACTED)
    return text


def run_rows(db) -> list:
    "The runs table, configurations and command lines redacted (again)."
    out = []
    for row in db.query(RUNS_SQL):
        argv = json.loads(row["argv"]) if row["argv"] else None
        out.append({**row, "argv": redact_argv(argv) if argv else None,
                    "config": redact(json.loads(row["config"] or "{}"))})
    return out


def front_matter(name: str, configs: dict, license_name: str, formats: list, rows: int) -> str:
    "The card's YAML front matter: what the Hub and datasets.load_dataset read."
    meta = {
        "pretty_name": name,
        "license": license_name,
        "task_categories": ["text-generation"],
        "tags": ["rsr", "synthetic", "rejection-sampling", *formats],
        "size_categories": [size_category(rows)],
        "configs": [{"config_name": name, "data_files": [{"split": "train", "path": path}]}
                    for name, (path, _) in configs.items()],
    }
    return "---\n" + yaml.safe_dump(meta, sort_keys=False) + "---\n"


def _command(run: dict, ledger: str) -> str:
    if run["argv"]:
        return shlex.join(run["argv"])
    return f"rsr {run['command']} {ledger}  (from the library; its configuration below)"


def _pct(value) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def card_text(name: str, ledger: str, configs: dict, options: dict, runs: list, stats: dict,
              models: list, verdicts: list, sources: list, license_name: str) -> str:
    "The Markdown body of the dataset card."
    lines = [CARD_MARKER, f"# {name}", "",
             f"Training data made with rsr {__version__} (rejection sampling / best-of-N) from "
             f"the ledger `{ledger}`. Each config is one export format:", "",
             "| config | rows | file |", "| --- | ---: | --- |"]
    lines += [f"| `{c}` | {n:,} | `{path}` |" for c, (path, n) in configs.items()]
    shown = {k: v for k, v in options.items() if v not in (None, False, (), {})}
    lines += ["", f"Export options: `{json.dumps(shown, sort_keys=True)}`", "",
              "```python", "from datasets import load_dataset", "",
              f'ds = load_dataset("DATASET", "{next(iter(configs))}")', "```", "",
              "## How it was made", "",
              "Every command that wrote to the ledger, in order (secrets redacted):", ""]
    for run in runs:
        lines.append(f"{run['id']}. `{_command(run, ledger)}` ({run['command']}, {run['status']}, "
                     f"{run['started_at']}, rsr {run['rsr_version']})"
                     + (f": {run['summary']}" if run["summary"] else ""))
    lines += ["", "<details><summary>Full configurations</summary>", ""]
    for run in runs:
        lines += [f"Run {run['id']} (`{run['command']}`):", "", "```json",
                  json.dumps(run["config"], indent=2, sort_keys=True), "```", ""]
    lines += ["</details>", "", "## Models and arms", "",
              "| arm | model | sampler | prompts | rollouts | valid | completion tokens |",
              "| --- | --- | --- | ---: | ---: | ---: | ---: |"]
    lines += [f"| {m['arm']} | {m['model'] or '-'} | {m['sampler'] or '-'} | {m['prompts']:,} | "
              f"{m['rollouts']:,} | {m['valid']:,} | {m['completion_tokens']:,} |" for m in models]
    lines += ["", "## Verifiers", "", "| verifier | prompts | passed | failed | undecided | pass rate |",
              "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for v in verdicts:
        decided = v["passed"] + v["failed"]
        lines.append(f"| {v['verifier']} | {v['prompts']:,} | {v['passed']:,} | {v['failed']:,} | "
                     f"{v['undecided']:,} | {_pct(v['passed'] / decided if decided else None)} |")
    prompts, rollouts, draws = stats["prompts"], stats["rollouts"], stats["draws"]
    lines += ["", "## Counts", "",
              f"- prompts: {prompts['total']:,} ({prompts['satisfied']:,} satisfied, "
              f"{prompts['exhausted']:,} exhausted, {prompts['pending']:,} pending; "
              f"target {stats['target']}, verifier {stats['verifier'] or 'none'})",
              f"- rollouts: {rollouts['total']:,} ({rollouts['valid']:,} valid, "
              f"{rollouts['truncated']:,} truncated, {rollouts['errored']:,} errored, "
              f"{rollouts['empty']:,} empty)",
              f"- pass rate: {_pct(stats['pass_rate']['rate'])}",
              "- pass@k: " + (", ".join(f"pass@{p['k']} {_pct(p['pass_at_k'])}"
                                        for p in stats["pass_at_k"]) or "-"),
              "", "## Early stop", "",
              f"{draws['spent']:,} rollouts drawn of a budget of "
              f"{draws['budget_without_early_stop']:,} without early stop "
              f"({stats['max_rollouts']} per prompt): early stop saved {draws['saved']:,} "
              f"({_pct(draws['saved_fraction'])}).", "",
              "## Pass rates", "", f"![Prompts by pass rate]({CHART_FILE})", "",
              "| pass rate | prompts |", "| --- | ---: |"]
    lines += [f"| {b} | {n:,} |" for b, n in stats["pass_rate_buckets"].items()]
    lines += ["", "## License", "", f"`{license_name}`, from the prompts' sources:", "",
              "| source | license | prompts |", "| --- | --- | ---: |"]
    lines += [f"| {s['source'] or '-'} | {s['license'] or 'unknown'} | {s['prompts']:,} |"
              for s in sources]
    return "\n".join(lines) + "\n"


def histogram_svg(buckets: dict) -> str:
    "The pass-rate histogram as a small SVG (no plotting library needed)."
    from .datasette_plugin.svg import bar_chart

    shown = {k: v for k, v in buckets.items() if k != "no verdicts" or v}
    return str(bar_chart(shown, "Prompts by pass rate", "pass rate", "prompts"))


def publish(db, folder, formats: list, options: dict, ledger: str = "run.db",
            name: str | None = None) -> Published:
    """Write the dataset folder: one config per format (export options as the
    command line gives them), the card, the histogram and the runs."""
    folder = Path(folder)
    if not formats:
        raise ConfigError("Give at least one --format to publish")
    check_folder(folder)
    folder.mkdir(parents=True, exist_ok=True)
    done = Published(folder)
    configs = {}
    for fmt in dict.fromkeys(formats):
        formatter = get_formatter(fmt)
        if getattr(formatter, "plans", False) or not hasattr(formatter, "rows"):
            raise ConfigError(f"--format {fmt} is not training data; it cannot be published")
        export_options = make_options(db, options, formatter)
        path = Path(fmt) / "train.jsonl"
        (folder / fmt).mkdir(exist_ok=True)
        count = export(db, formatter, export_options, folder / path)
        if count == 0:
            raise RsrError(explain_empty(db, fmt, export_options)["message"])
        configs[fmt] = (path.as_posix(), count)
        done.files.append(path.as_posix())
    stats = ledger_stats(db, options.get("verifier"))
    license_name, sources = licenses(db)
    runs = run_rows(db)
    name = name or Path(ledger).stem
    card = front_matter(name, configs, license_name, list(configs),
                        max(n for _, n in configs.values()))
    card += card_text(name, Path(ledger).name, configs, options, runs, stats,
                      list(db.query(MODELS_SQL)), list(db.query(VERDICTS_SQL)), sources,
                      license_name)
    for file_name, text in (("README.md", card), (CHART_FILE, histogram_svg(stats["pass_rate_buckets"])),
                            (RUNS_FILE, json.dumps(runs, indent=2, default=str) + "\n")):
        (folder / file_name).write_text(scrub(text), encoding="utf-8")
        done.files.append(file_name)
    done.configs = {c: n for c, (_, n) in configs.items()}
    return done


def hub_api():
    """A huggingface_hub HfApi with the token from the environment (HF_TOKEN) or
    huggingface-cli login: checked before anything is written or sent."""
    try:
        import huggingface_hub
    except ImportError:
        raise RsrError("--push-to-hub needs huggingface_hub: pip install huggingface_hub") from None
    token = huggingface_hub.get_token()
    if not token:
        raise RsrError("--push-to-hub needs a Hugging Face token: set HF_TOKEN "
                       "(or run huggingface-cli login); it is never written anywhere")
    return huggingface_hub.HfApi(token=token)


def push_to_hub(api, folder, repo: str, private: bool = False) -> str:
    """Upload the folder as a dataset repository (api from hub_api()); returns
    the repository's URL. The token stays in the client, never in the folder."""
    api.create_repo(repo, repo_type="dataset", private=private, exist_ok=True)
    api.upload_folder(folder_path=str(folder), repo_id=repo, repo_type="dataset",
                      commit_message=f"rsr publish (rsr {__version__})")
    return f"https://huggingface.co/datasets/{repo}"

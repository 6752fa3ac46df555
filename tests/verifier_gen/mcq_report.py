"""The mcq and mcq-multi rows of docs/verifiers.md's accuracy table, computed
from the corpus (hand-written, held-out, real outputs, generated) each time
cog renders the page, so the figures stay true."""

import json
from collections import defaultdict
from pathlib import Path

from rsr.verifiers import get_verifier

from . import mcq

CORPUS = Path(__file__).resolve().parent.parent / "verifier_corpus"
SOURCES = [
    ("hand-written", "mcq.jsonl", "mcq"),
    ("hand-written", "mcq_multi.jsonl", "mcq-multi"),
    ("held-out", "mcq_heldout.jsonl", None),
    ("held-out", "mcq_heldout2.jsonl", None),
    ("model phrasings", "mcq_models.jsonl", None),
    ("real outputs", "mcq_real.jsonl", None),
]


def labelled_cases():
    "Every mcq and mcq-multi case as (source, kind, case)."
    rows = []
    for source, name, verifier in SOURCES:
        path = CORPUS / name
        if not path.exists():
            continue
        for line in path.read_text().splitlines():
            case = json.loads(line)
            case.setdefault("verifier", verifier)
            rows.append((source, case.get("kind", "all"), case))
    rows += [("generated", case["kind"], case) for case in mcq.cases()]
    return rows


def _verdict(case):
    metadata = {"answer": case["gold"], **case.get("metadata", {})}
    prompt = [{"role": "user", "content": case["prompt"]}] if case.get("prompt") else None
    return get_verifier(case["verifier"])(case["response"], metadata, prompt=prompt)


def accuracy():
    "{(task, source, kind): [right, cases]} over the whole corpus."
    counts = defaultdict(lambda: [0, 0])
    for source, kind, case in labelled_cases():
        right = _verdict(case).passed is case["expected"]
        for key in ((case["verifier"], source, kind), (case["verifier"], "all", "")):
            counts[key][0] += right
            counts[key][1] += 1
    return counts


def accuracy_table():
    "The markdown table: task, source, kind, cases, right, accuracy."
    lines = ["| task | cases from | kind | cases | right | accuracy |", "| --- | --- | --- | ---: | ---: | ---: |"]
    counts = accuracy()
    order = {"hand-written": 0, "held-out": 1, "model phrasings": 2, "real outputs": 3, "generated": 4,
             "all": 5}
    for (task, source, kind), (right, total) in sorted(
            counts.items(), key=lambda item: (item[0][0], order[item[0][1]], item[0][2])):
        label = "**all**" if source == "all" else source
        lines.append(f"| `{task}` | {label} | {kind} | {total:,} | {right:,} | {right / total:.1%} |")
    return "\n".join(lines) + "\n"

"""The `math` rows of docs/verifiers.md: accuracy per source and kind, and
math-verify on the same cases, computed from the corpus each time cog renders
the page, so the figures stay true.

math-verify has no reasoning split of its own, so it is given the final answer
as rsr.reasoning leaves it; its verdict counts as right when it passes exactly
the cases labelled True (it has no undecided verdict).
"""

import json
from collections import defaultdict
from functools import lru_cache
from pathlib import Path

from rsr.reasoning import final_answer
from rsr.verifiers import get_verifier, safe_call

from . import maths

CORPUS = Path(__file__).resolve().parent.parent / "verifier_corpus"
SOURCES = [
    ("hand-written", "math.jsonl"),
    ("held-out", "math_heldout.jsonl"),
    ("real outputs", "math_real.jsonl"),
]
ORDER = {"hand-written": 0, "held-out": 1, "real outputs": 2, "generated": 3, "all": 4}


def labelled_cases():
    "Every math case as (source, kind, case)."
    rows = []
    for source, name in SOURCES:
        path = CORPUS / name
        if path.exists():
            rows += [(source, "all", json.loads(line)) for line in path.read_text().splitlines()]
    rows += [("generated", case["kind"], case) for case in maths.cases()]
    return rows


def math_verify_passes(response, gold):
    """math-verify's verdict on the final answer, or None when it is not installed.
    Its timeouts are generous so that the table does not depend on the machine's
    load: only inputs it can never finish (exponent towers) reach them."""
    try:
        from math_verify import parse, verify
    except ImportError:
        return None
    try:
        answer = parse(final_answer(response) or "", parsing_timeout=5)
        return bool(verify(parse("$" + gold + "$", parsing_timeout=5), answer, timeout_seconds=5))
    except Exception:  # its own failures count as "not verified"
        return False


@lru_cache(maxsize=1)
def accuracy():
    "{(source, kind): [cases, rsr right, math-verify right]} over the whole corpus."
    verifier = get_verifier("math")
    counts = defaultdict(lambda: [0, 0, 0])
    for source, kind, case in labelled_cases():
        ours = safe_call(verifier, case["response"], {"answer": case["gold"]}).passed is case["expected"]
        theirs = math_verify_passes(case["response"], case["gold"])
        theirs = None if theirs is None else theirs is (case["expected"] is True)
        for key in ((source, kind), ("all", "")):
            counts[key][0] += 1
            counts[key][1] += ours
            counts[key][2] += bool(theirs)
    return dict(counts)


def accuracy_table():
    "The markdown table: source, kind, cases, rsr right and accuracy, math-verify right and accuracy."
    lines = ["| cases from | kind | cases | rsr `math` | accuracy | math-verify | accuracy |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    for (source, kind), (n, ours, theirs) in sorted(accuracy().items(), key=lambda i: (ORDER[i[0][0]], i[0][1])):
        name = "**all**" if source == "all" else source
        lines.append(f"| {name} | {kind} | {n:,} | {ours:,} | {100 * ours / n:.1f}% | {theirs:,} | {100 * theirs / n:.1f}% |")
    return "\n".join(lines) + "\n"

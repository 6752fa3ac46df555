"""Verification throughput, and rsr's math verifier beside math-verify.

Builds 10,000 GSM8K-style maths rollouts (from data/gsm8k_test.jsonl
golds), 10,000 MMLU-style multiple-choice rollouts and 10,000 JEEBench-style
multiple-answer ones (`mcq-multi`), half right and half
wrong, in the phrasings models use, then times:

- the Scorer alone (what `rsr sample` calls inline), per workers setting;
- `rsr verify` end to end on a ledger (reading, scoring, writing scores).

With --compare it also scores the whole math corpus (tests/verifier_corpus/math*.jsonl
and the generated cases of tests/verifier_gen/maths.py) and the MATH-500 reference
solutions with math-verify (if installed) and with rsr's `math`, and reports how
many verdicts match the labels and each one's throughput.

    python bench/verify_bench.py --workers 0 1 2
    python bench/verify_bench.py --compare
    python bench/verify_bench.py --pathological
"""

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data"
sys.path.insert(0, str(ROOT / "tests"))

from rsr import open_db  # noqa: E402
from rsr.verification import Scorer, verify_rollouts  # noqa: E402
from rsr.verifiers import get_verifier  # noqa: E402

MATH_TEMPLATES = [
    "Let's compute step by step.\n{work}\nSo the answer is $\\boxed{{{answer}}}$.",
    "<think>{work} Maybe {other}?</think>\n{work}\nThe final answer is {answer}.",
    "{work}\n#### {answer}",
    "{work} In total that makes {answer} dollars.",
    "{work}\nTherefore the result is \\boxed{{{answer_commas}}}.",
]
MCQ_TEMPLATES = [
    "Let me think about each option.\nA is unlikely. B seems plausible.\nAnswer: {letter}",
    "<think>Maybe it is {other}.</think>The correct option is {letter}.",
    "Based on the passage, I conclude the answer is **{letter}**.",
    '{{"answer": "{letter}"}}',
    "After checking, the answer is ({letter}).",
    "Let's go through the options.\n{echo}\n\nOption {other} can be ruled out, and the others do not "
    "fit the passage as well. The remaining choice matches every detail of the question, so "
    "it must be the one.\n\n**Answer: {letter}**\n\nExplanation: option {other} is incorrect.",
]
MCQ_MULTI_TEMPLATES = [
    "Checking each statement in turn.\nAnswer: {letters}",
    "<think>Maybe only {other}.</think>The correct options are {commas}.",
    "(A) and the rest need care; {other} is wrong.\n\nFinal answer: \\boxed{{{letters}}}",
    '{{"answer": {json}}}',
]


def read_jsonl(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


def math_rollouts(n, rng):
    rows = read_jsonl(DATA / "gsm8k_test.jsonl")
    items = []
    for i in range(n):
        row = rows[i % len(rows)]
        gold = row["metadata"]["answer"]
        right = i % 2 == 0
        value = int(gold) if right else int(gold) + rng.randint(1, 9)
        work = " ".join(f"{rng.randint(2, 99)} * {rng.randint(2, 9)} = {rng.randint(100, 999)}." for _ in range(4))
        text = rng.choice(MATH_TEMPLATES).format(
            work=work, answer=value, answer_commas=f"{value:,}", other=rng.randint(1, 500))
        items.append((text, {"answer": gold}, row["messages"]))
    return items


def mcq_rollouts(n, rng):
    rows = read_jsonl(DATA / "mcq_mmlu.jsonl")
    items = []
    for i in range(n):
        row = rows[i % len(rows)]
        gold = row["metadata"]["answer"]
        letter = gold if i % 2 == 0 else rng.choice([c for c in "ABCD" if c != gold])
        echo = "\n".join(f"{k}. {t}" for k, t in zip("ABCD", row["metadata"]["choices"]))
        text = rng.choice(MCQ_TEMPLATES).format(
            letter=letter, other=rng.choice([c for c in "ABCD" if c != letter]), echo=echo)
        items.append((text, row["metadata"], row["messages"]))
    return items


def mcq_multi_rollouts(n, rng):
    rows = read_jsonl(DATA / "mcq_multi_jeebench.jsonl")
    items = []
    for i in range(n):
        row = rows[i % len(rows)]
        gold = sorted(row["metadata"]["answer"])
        if i % 2 == 0:
            letters = gold
        elif len(gold) > 1:
            letters = gold[:-1]  # a subset fails
        else:
            letters = sorted(gold + [next(c for c in "ABCD" if c not in gold)])
        other = rng.choice([c for c in "ABCD" if c not in letters] or ["D"])
        text = rng.choice(MCQ_MULTI_TEMPLATES).format(
            letters="".join(letters), commas=", ".join(letters), json=json.dumps(letters), other=other)
        items.append((text, row["metadata"], row["messages"]))
    return items


def time_scorer(name, items, workers):
    verifier = get_verifier(name)
    with Scorer(verifier, workers=workers) as scorer:
        scorer.score(items[:50])  # start workers, warm caches
        started, cpu = time.perf_counter(), time.process_time()
        verdicts = scorer.score(items)
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    passed = sum(v.passed is True for v in verdicts)
    return seconds, cpu, passed


def time_verify_command(name, items, workers, folder):
    from helpers import add_prompt, add_rollout

    path = Path(folder) / f"bench-{name}-{workers}.db"
    db = open_db(path)
    with db.atomic():
        for i, (text, metadata, messages) in enumerate(items):
            add_prompt(db, f"p{i}", messages[0]["content"], metadata["answer"],
                       **{k: v for k, v in metadata.items() if k != "answer"})
            add_rollout(db, f"p{i}", 0, text)
    with Scorer(get_verifier(name), workers=workers) as scorer:
        started = time.perf_counter()
        counts = verify_rollouts(db, scorer)
        seconds = time.perf_counter() - started
    return seconds, counts.passed


def compare_math():
    from verifier_gen.math_report import labelled_cases

    from rsr.reasoning import final_answer

    corpus = [case for _, _, case in labelled_cases()]
    math500 = read_jsonl(DATA / "math500.jsonl")
    ours = get_verifier("math")
    report = {}

    def ours_fn(response, gold):
        return ours(response, {"answer": gold}).passed

    checkers = {"rsr math": ours_fn}
    try:
        from math_verify import parse, verify

        def mv_fn(response, gold):
            try:  # given the final answer: math-verify has no reasoning split
                return bool(verify(parse("$" + gold + "$"), parse(final_answer(response) or "")))
            except Exception:  # math-verify's own failures count as "not verified"
                return False

        checkers["math-verify"] = mv_fn
    except ImportError:
        print("math-verify not installed: comparing rsr only", file=sys.stderr)
    for label, fn in checkers.items():
        started = time.perf_counter()
        verdicts = [fn(c["response"], c["gold"]) for c in corpus]
        corpus_seconds = time.perf_counter() - started
        # rsr is right when its verdict equals the label (None for undecided);
        # math-verify, which never abstains, when it passes exactly the True ones.
        if label == "rsr math":
            right = sum(v is c["expected"] for v, c in zip(verdicts, corpus))
        else:
            right = sum(v is (c["expected"] is True) for v, c in zip(verdicts, corpus))
        started = time.perf_counter()
        self_ok = sum(fn(r["metadata"]["solution"], r["metadata"]["answer"]) is True for r in math500)
        shifted_wrong = sum(
            fn(r["metadata"]["solution"], math500[(i + 1) % 500]["metadata"]["answer"]) is not True
            for i, r in enumerate(math500))
        m500_seconds = time.perf_counter() - started
        report[label] = {
            "corpus_right": f"{right}/{len(corpus)}",
            "corpus_per_s": round(len(corpus) / corpus_seconds),
            "math500_self_verified": f"{self_ok}/{len(math500)}",
            "math500_shifted_rejected": f"{shifted_wrong}/{len(math500)}",
            "math500_per_s": round(2 * len(math500) / m500_seconds),
        }
    return report


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rollouts", type=int, default=10_000)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--compare", action="store_true", help="also compare with math-verify")
    parser.add_argument("--verifiers", nargs="+", default=["mcq", "mcq-multi", "math"],
                        choices=["mcq", "mcq-multi", "math"])
    parser.add_argument("--pathological", action="store_true",
                        help="time mcq and mcq-multi on the huge inputs of tests/test_verifiers_mcq_gen.py")
    args = parser.parse_args()
    if args.pathological:
        from test_verifiers_mcq_gen import PATHOLOGICAL

        prompt = [{"role": "user", "content": "Unit of force?\nA. Joule\nB. Newton\nC. Watt\nD. Pascal"}]
        for name, text in PATHOLOGICAL.items():
            for verifier in ("mcq", "mcq-multi"):
                started = time.perf_counter()
                get_verifier(verifier)(text, {"answer": "B"}, prompt=prompt)
                print(json.dumps({"input": name, "chars": len(text), "verifier": verifier,
                                  "ms": round(1000 * (time.perf_counter() - started), 1)}))
        return
    rng = random.Random(0)
    build = {"mcq": mcq_rollouts, "mcq-multi": mcq_multi_rollouts, "math": math_rollouts}
    suites = {name: build[name](args.rollouts, rng) for name in args.verifiers}
    results = {"cpus": os.cpu_count(), "rollouts": args.rollouts, "runs": []}
    with tempfile.TemporaryDirectory() as folder:
        for name, items in suites.items():
            for workers in args.workers:
                seconds, cpu, passed = time_scorer(name, items, workers)
                command_seconds, command_passed = time_verify_command(name, items, workers, folder)
                assert passed == command_passed == args.rollouts // 2, (passed, command_passed)
                results["runs"].append({
                    "verifier": name, "workers": workers,
                    "scorer_per_s": round(len(items) / seconds),
                    # In-process scoring per second of this process's CPU: the figure
                    # that holds when other work shares the cores.
                    **({"scorer_per_cpu_s": round(len(items) / cpu)} if workers == 0 else {}),
                    "rsr_verify_per_s": round(len(items) / command_seconds),
                    "passed": passed,
                })
                print(json.dumps(results["runs"][-1]), file=sys.stderr)
    if args.compare:
        results["math_comparison"] = compare_math()
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

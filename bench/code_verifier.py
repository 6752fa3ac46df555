"""The code verifier's throughput: HumanEval's canonical solutions run in the sandbox.

Each check is one sandboxed process (new namespaces, a throwaway uid, limits,
a clean-up that kills what it started), so the figure is what a process per
program costs on this machine. Times verify_batch over --problems canonical
solutions (each as a chat model writes it: the whole function in a ```python
block), once per --workers setting, and `rsr verify` end to end on a ledger.

    python bench/code_verifier.py --workers 1 2
    python bench/code_verifier.py --problems 20 --workers 2
"""

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

from common import figure, machine  # noqa: E402

from rsr import open_db  # noqa: E402
from rsr.verification import Scorer, verify_rollouts  # noqa: E402
from rsr.verifiers import get_verifier, verify_batch  # noqa: E402


def problems(count):
    "The first count HumanEval problems of data/humaneval.jsonl, repeated past 164."
    lines = (HERE.parent / "data" / "humaneval.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    return [records[i % len(records)] for i in range(count)]


def response(problem):
    metadata = problem["metadata"]
    return f"```python\n{metadata['prompt']}{metadata['canonical_solution']}```\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--problems", type=int, default=164)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    items = problems(args.problems)
    metadatas = [p["metadata"] for p in items]
    responses = [response(p) for p in items]
    print(f"{machine()}, load {os.getloadavg()[0]:.1f}; {len(items)} HumanEval canonical solutions")
    for workers in args.workers:
        started = time.perf_counter()
        verdicts = verify_batch("code", responses, metadatas, workers=workers)
        seconds = time.perf_counter() - started
        passed = sum(v.passed is True for v in verdicts)
        print(f"  workers {workers}: {passed}/{len(items)} passed in {seconds:.2f} s")
        figure(f"code verifier, {workers} worker(s), solutions/s", len(items) / seconds, "/s")
    with tempfile.TemporaryDirectory(prefix="rsr-bench-") as folder:
        db = open_db(os.path.join(folder, "bench.db"))
        for i, (problem, text) in enumerate(zip(items, responses)):
            prompt_id = f"{problem['id']}-{i}"
            db.execute("insert into prompts (id, messages, metadata) values (?, ?, ?)",
                       [prompt_id, json.dumps(problem["messages"]), json.dumps(problem["metadata"])])
            db.execute("insert into rollouts (prompt_id, sample_index, step, response, model, sampler)"
                       " values (?, 0, 1, ?, 'bench', 'bench')", [prompt_id, text])
        workers = max(args.workers)
        with Scorer(get_verifier("code"), workers=workers) as scorer:
            started = time.perf_counter()
            counts = verify_rollouts(db, scorer)
            seconds = time.perf_counter() - started
        print(f"  rsr verify, {workers} worker(s): {counts.summary()}")
        figure(f"rsr verify --verifier code --workers {workers}, rollouts/s", counts.scored / seconds, "/s")


if __name__ == "__main__":
    main()

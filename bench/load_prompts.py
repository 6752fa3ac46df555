"""Loading prompts: `rsr load` of 100,000 chat-shaped records, then again (adds 0).

    python bench/load_prompts.py                # 100,000 prompts
    python bench/load_prompts.py --prompts 1000
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import figure, machine


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=100_000)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="rsr-bench-"))
    source = folder / "prompts.jsonl"
    with open(source, "w") as f:
        for i in range(args.prompts):
            f.write(json.dumps({
                "id": f"p{i:07d}",
                "messages": [{"role": "user", "content": f"Question {i}: what is {i} + {i % 97}? "
                              "Please reason step by step, and put your final answer within \\boxed{}."}],
                "metadata": {"answer": str(i + i % 97), "source": "synthetic", "index": i},
            }) + "\n")
    db = folder / "run.db"
    timings = []
    for _ in range(2):
        start = time.perf_counter()
        result = subprocess.run([sys.executable, "-m", "rsr", "load", str(db), str(source)],
                                capture_output=True, text=True)
        timings.append(time.perf_counter() - start)
        if result.returncode != 0:
            raise SystemExit(result.stderr)
        print(result.stderr.strip())
    print(f"# {machine()}; {args.prompts:,} prompts, {source.stat().st_size / 1e6:.1f} MB of JSONL")
    figure("rsr load, first time (wall, with start-up)", timings[0], "s",
           10 if args.prompts >= 100_000 else None, higher_is_better=False)
    figure("rsr load, again (adds nothing)", timings[1], "s")
    for path in folder.iterdir():
        path.unlink()
    folder.rmdir()


if __name__ == "__main__":
    main()

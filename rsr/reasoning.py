"""Separating a model's reasoning from its final answer.

Reasoning models write their chain of thought in markers: `<think>…</think>`
(DeepSeek-R1, Qwen3, QwQ), often with the opening tag in the chat template so
the output starts inside it and only `</think>` appears; `<thinking>`,
`<reasoning>`; `<|begin_of_thought|>…<|end_of_thought|>` with the answer in
`<|begin_of_solution|>…<|end_of_solution|>` (Sky-T1, OpenThoughts). The final
answer is what follows the reasoning. A response cut off inside its reasoning
has no final answer at all: graders must never read an answer out of thinking.
"""

import re

_OPEN_TAGS = ("think", "thinking", "reasoning", "thought")
_BLOCK_RE = re.compile(
    r"<(?P<tag>" + "|".join(_OPEN_TAGS) + r")>(?P<body>.*?)</(?P=tag)>",
    re.S | re.I,
)
_UNCLOSED_RE = re.compile(r"^\s*<(?:" + "|".join(_OPEN_TAGS) + r")>", re.I)
_OPEN_RE = re.compile(r"<(?:" + "|".join(_OPEN_TAGS) + r")>", re.I)
_CLOSE_RE = re.compile(r"</(?:" + "|".join(_OPEN_TAGS) + r")>", re.I)
_THOUGHT_RE = re.compile(
    r"<\|begin_of_thought\|>(?P<body>.*?)(?:<\|end_of_thought\|>|$)", re.S
)
_SOLUTION_RE = re.compile(
    r"<\|begin_of_solution\|>(?P<body>.*?)(?:<\|end_of_solution\|>|$)", re.S
)


def split_reasoning(text):
    """Split a completion into (reasoning, final_answer).

    reasoning is None when the text has no reasoning markers. A completion that
    opens a reasoning block and never closes it has final answer "".
    """
    if text is None:
        return None, None
    if "<" not in text:
        return None, text  # every marker starts with "<"
    if "<|begin_of_thought|>" in text or "<|begin_of_solution|>" in text:
        thoughts = [m.group("body").strip() for m in _THOUGHT_RE.finditer(text)]
        solution = _SOLUTION_RE.search(text)
        if solution:
            final = solution.group("body").strip()
        elif "<|end_of_thought|>" in text:
            final = text.rsplit("<|end_of_thought|>", 1)[1].strip()
        else:
            final = ""
        return "\n\n".join(t for t in thoughts if t) or None, final
    reasoning_parts = []
    rest = text
    # Leading text before a lone closing tag is reasoning whose opening tag
    # lived in the chat template.
    first_close = _CLOSE_RE.search(rest)
    first_open = _OPEN_RE.search(rest)
    if first_close and (first_open is None or first_close.start() < first_open.start()):
        reasoning_parts.append(rest[: first_close.start()].strip())
        rest = rest[first_close.end() :]
    found = False
    for match in _BLOCK_RE.finditer(rest):
        found = True
        reasoning_parts.append(match.group("body").strip())
    if found:
        rest = _BLOCK_RE.sub("", rest)
    unclosed = _OPEN_RE.search(rest)
    if unclosed:
        # An opened block that never closed: everything after it is reasoning.
        reasoning_parts.append(rest[unclosed.end() :].strip())
        rest = rest[: unclosed.start()]
    if not reasoning_parts:
        return None, text
    return "\n\n".join(p for p in reasoning_parts if p), rest.strip()


def final_answer(text):
    "The part of a completion a grader may read: everything but the reasoning."
    return split_reasoning(text)[1]

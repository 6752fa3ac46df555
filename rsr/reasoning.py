"""Separating a model's reasoning from its final answer.

Reasoning models write their chain of thought between markers, and the final
answer after them (or inside an answer marker):

- `<think>…</think>` (DeepSeek-R1, Qwen3, QwQ, GLM, Phi-4-reasoning), often with
  the opening tag in the chat template, so the output starts inside it and only
  `</think>` appears; an empty block when thinking is switched off;
  `<thinking>`, `<reasoning>`, `<thought>` (EXAONE);
- `◁think▷…◁/think▷` (Kimi), `<|START_THINKING|>…<|END_THINKING|>` with
  `<|START_RESPONSE|>…<|END_RESPONSE|>` (Command A), `[THINK]…[/THINK]`
  (Magistral), `<seed:think>…</seed:think>` (Seed-OSS);
- `<think>…</think><answer>…</answer>` (R1-Zero-style RL templates, Hunyuan);
- `<|begin_of_thought|>…<|end_of_thought|>` with the answer in
  `<|begin_of_solution|>…<|end_of_solution|>` (Sky-T1, OpenThoughts);
- GPT-OSS harmony channels: `<|channel|>analysis<|message|>…<|end|>` then
  `<|start|>assistant<|channel|>final<|message|>…` (ended by `<|return|>`, or
  not), also as engines print it with special tokens dropped
  (`analysis…assistantfinal…`);
- plain-text sections: a response that opens with a "Thinking:" heading and
  later has a "Final answer:" heading.

The final answer is what follows the reasoning. A response cut off inside its
reasoning has no final answer at all ("", never None): graders must never read
an answer out of thinking. An API's separate `reasoning_content` never reaches
the response text in the first place (see rsr.client).
"""

import re

# (opening, closing) reasoning markers. Tags are matched case-insensitively.
REASONING_MARKERS = (
    ("<think>", "</think>"),
    ("<thinking>", "</thinking>"),
    ("<reasoning>", "</reasoning>"),
    ("<thought>", "</thought>"),
    ("<seed:think>", "</seed:think>"),
    ("\u25c1think\u25b7", "\u25c1/think\u25b7"),
    ("<|START_THINKING|>", "<|END_THINKING|>"),
    ("[THINK]", "[/THINK]"),
    ("<|begin_of_thought|>", "<|end_of_thought|>"),
)
# (opening, closing) markers around the final answer, where a format has them.
ANSWER_MARKERS = (
    ("<answer>", "</answer>"),
    ("<|begin_of_solution|>", "<|end_of_solution|>"),
    ("<|START_RESPONSE|>", "<|END_RESPONSE|>"),
    ("[BEGIN FINAL RESPONSE]", "[END FINAL RESPONSE]"),
)


def _alternation(markers):
    return "|".join(re.escape(m) for m in sorted(markers, key=len, reverse=True))


_OPEN_RE = re.compile(_alternation(o for o, _ in REASONING_MARKERS), re.I)
_CLOSE_RE = re.compile(_alternation(c for _, c in REASONING_MARKERS), re.I)
_ANSWER_RE = re.compile(
    "|".join(
        re.escape(o) + r"(?P<a%d>.*?)(?:" % i + re.escape(c) + r"|\Z)"
        for i, (o, c) in enumerate(ANSWER_MARKERS)
    ),
    re.S | re.I,
)
_ANY_MARKER_CHARS = "<[\u25c1"
_HARMONY_TOKEN_RE = re.compile(r"<\|(?:start|end|return|call|channel|message|constrain)\|>")
_HARMONY_STRIPPED_RE = re.compile(r"\A\s*analysis(?P<reasoning>.*?)assistantfinal(?P<final>.*)\Z", re.S)
# "Thinking:" / "**Reasoning**" / "## Thought process" opening the response ...
_HEADING_END = r"\b[ \t]*(?::[ \t]*(?:\*\*)?|\*\*[ \t]*:?|$)"
_SECTION_OPEN_RE = re.compile(
    r"\A(?:#{1,4}[ \t]*)?(?:\*\*[ \t]*)?(?:thinking|reasoning|thoughts?|thought process|chain of thought)"
    + _HEADING_END,
    re.I | re.M,
)
# ... and a later "Final answer:" / "## Answer" / "Response:" heading at a line start.
_SECTION_FINAL_RE = re.compile(
    r"^[ \t]*(?:#{1,4}[ \t]*)?(?:\*\*[ \t]*)?(?:final answer|final response|answer|response)" + _HEADING_END,
    re.I | re.M,
)


def _join(parts):
    return "\n\n".join(p for p in (part.strip() for part in parts) if p) or None


def split_harmony(text):
    """(reasoning, final) for a GPT-OSS harmony response: analysis and
    commentary channels are reasoning, the last final channel is the answer."""
    reasoning, finals = [], []
    for segment in text.split("<|channel|>")[1:]:
        channel, _, body = segment.partition("<|message|>")
        body = re.split(r"<\|(?:end|return|call|start)\|>", body, maxsplit=1)[0]
        name = channel.split("<|constrain|>")[0].split()[0].strip() if channel.strip() else ""
        (finals if name == "final" else reasoning).append(body)
    return _join(reasoning), finals[-1].strip() if finals else ""


def _answer_blocks(rest):
    "The final answer inside answer markers, or None where rest has none."
    found = [m for m in _ANSWER_RE.finditer(rest)]
    if not found:
        return None
    bodies = [next(g for g in m.groups() if g is not None) for m in found]
    answers = [b.strip() for b in bodies if b.strip()]
    return answers[-1] if answers else ""


def _split_sections(text):
    "(reasoning, final) for 'Thinking: ... Final answer: ...' sections, or None."
    start = len(text) - len(text.lstrip())
    opening = _SECTION_OPEN_RE.match(text, start)
    if not opening:
        return None
    headings = list(_SECTION_FINAL_RE.finditer(text, opening.end()))
    # The last "Final answer" heading, else the last "Answer" heading.
    strong = [h for h in headings if re.search(r"final", h.group(0), re.I)]
    if not headings:
        return None
    final = (strong or headings)[-1]
    body = text[final.end() :].strip()
    return _join([text[opening.end() : final.start()]]), text[final.start() :].strip() if body else ""


def split_reasoning(text):
    """Split a completion into (reasoning, final_answer).

    reasoning is None when the text has no reasoning markers. A completion that
    opens a reasoning block and never closes it has final answer "".
    """
    if text is None:
        return None, None
    if "<|channel|>" in text:
        return split_harmony(text)
    stripped = _HARMONY_STRIPPED_RE.match(text)
    if stripped:
        return _join([stripped.group("reasoning")]), stripped.group("final").strip()
    if not any(c in text for c in _ANY_MARKER_CHARS):
        sections = _split_sections(text)
        return sections if sections else (None, text)
    reasoning, rest = [], text
    # Text before a closing marker that no opening marker precedes is reasoning
    # whose opening tag lived in the chat template.
    first_close, first_open = _CLOSE_RE.search(rest), _OPEN_RE.search(rest)
    if first_close and (first_open is None or first_close.start() < first_open.start()):
        reasoning.append(rest[: first_close.start()])
        rest = rest[first_close.end() :]
    found = bool(reasoning)
    kept = []
    while True:
        opening = _OPEN_RE.search(rest)
        if not opening:
            kept.append(rest)
            break
        found = True
        kept.append(rest[: opening.start()])
        closing = _CLOSE_RE.search(rest, opening.end())
        if closing is None:  # cut off while thinking: no final answer after it
            reasoning.append(rest[opening.end() :])
            rest = ""
            kept.append("")
            break
        reasoning.append(rest[opening.end() : closing.start()])
        rest = rest[closing.end() :]
    rest = "".join(kept)
    answer = _answer_blocks(rest)
    if answer is not None:
        return _join(reasoning), answer
    if not found:
        sections = _split_sections(text)
        return sections if sections else (None, text)
    if _HARMONY_TOKEN_RE.search(rest):
        rest = _HARMONY_TOKEN_RE.sub("", rest)
    return _join(reasoning), rest.strip()


def final_answer(text):
    "The part of a completion a grader may read: everything but the reasoning."
    return split_reasoning(text)[1]

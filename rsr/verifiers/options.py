"""The options of a multiple-choice question: their letters and their texts.

They come from the prompt's metadata (`choices` / `options`, a list or a
{letter: text} dict) or else from the option lines of the prompt's last user
message ("A. Joule", "(B) Newton", "C) 4.5 m/s", "D: Pascal", also several on
one line: "(A) 1 (B) 2 (C) 3"). Letters must run from A without a gap, so a
stray "I." line in a question is not an option. Without either, A-J are valid
and no option texts are known.

normalize() is the one text form both the option texts and a response are
compared in: lower case, markup (`*`, `$`, braces, brackets, LaTeX commands'
backslashes) turned into spaces, one space between words. fold() is the
length-preserving half of it that the reader scans responses in.
"""

import re
from functools import lru_cache

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
DEFAULT_LETTERS = "ABCDEFGHIJ"

# Markup and full-width punctuation that never changes what an answer says.
_FOLD = str.maketrans({
    **{c: " " for c in "*_$#>`{}[]()\"|\\~（）【】「」『』《》"},
    "：": ":", "，": ",", "；": ";", "、": ",", "。": ".", "！": "!", "？": "?",
    "’": "'", "‘": "'", "“": " ", "”": " ", "\u00a0": " ", "−": "-",
})
_SPACES_RE = re.compile(r"\s+")
# An option line: a letter, then ". ", ") ", ": " or "(A) " and its text.
_OPTION_LINE_RE = re.compile(
    r"^[ \t>*-]*(?:\*\*)?[\(\[（]?(?P<letter>[A-Z])(?:\*\*)?"
    r"(?:(?:[\)\]][.:]?|[.:]|\s*[-–—])(?:\*\*)?[ \t]+|[）：．、](?:\*\*)?[ \t]*)"  # full-width marks need no space
    r"(?P<text>\S.*?)[ \t]*$",
    re.M,
)
# Several options on one line: "(A) 1 (B) 2 (C) 3".
_INLINE_OPTION_RE = re.compile(r"(?:^|\s)\((?P<letter>[A-Z])\)\s+(?P<text>.+?)(?=\s+\([A-Z]\)\s|$)", re.M)


def fold(text):
    "text in lower case with markup as spaces; same length, so positions carry over."
    folded = text.lower().translate(_FOLD)
    if len(folded) != len(text):  # a rare character whose lower case is longer
        folded = "".join(c.lower()[:1] or " " for c in text).translate(_FOLD)
    return folded


def normalize(text):
    "The form option texts and answers are compared in."
    return _SPACES_RE.sub(" ", fold(str(text))).strip(" .;,:")


_normalize_option = lru_cache(maxsize=65536)(normalize)  # the same options come back per rollout


class Options:
    "The letters a question offers and, where known, each one's text (normalized)."

    __slots__ = ("letters", "texts")

    def __init__(self, letters, texts=None):
        self.letters = letters
        self.texts = texts or {}

    def __repr__(self):
        return f"Options({self.letters!r}, {self.texts!r})"


def question_options(metadata, prompt=None):
    "The Options of a question, from metadata, else the prompt's option lines, else A-J."
    for key in ("choices", "options"):
        options = metadata.get(key)
        if isinstance(options, list) and 2 <= len(options) <= 26:
            try:
                return _list_options(tuple(options))
            except TypeError:  # unhashable option values
                return Options(LETTERS[: len(options)], _texts(zip(LETTERS, options)))
        if isinstance(options, dict) and options and all(
            isinstance(k, str) and len(k) == 1 and k.upper() in LETTERS for k in options
        ):
            pairs = sorted((k.upper(), v) for k, v in options.items())
            return Options("".join(k for k, _ in pairs), _texts(pairs))
    text = prompt_text(prompt)
    if text:
        return _prompt_options(text)
    return Options(DEFAULT_LETTERS)


@lru_cache(maxsize=4096)
def _list_options(options):
    return Options(LETTERS[: len(options)], _texts(zip(LETTERS, options)))


def _texts(pairs):
    texts = {}
    for letter, text in pairs:
        if isinstance(text, (str, int, float)) and not isinstance(text, bool):
            norm = _normalize_option(text)
            if norm:
                texts[letter] = norm
    return texts


def prompt_text(prompt):
    "The text of the prompt's last user message (prompt is a string or chat messages)."
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, list):
        for message in reversed(prompt):
            if isinstance(message, dict) and message.get("role") == "user":
                content = message.get("content")
                if isinstance(content, list):  # OpenAI content parts
                    content = " ".join(p.get("text", "") for p in content if isinstance(p, dict))
                return content if isinstance(content, str) else ""
    return ""


@lru_cache(maxsize=4096)
def _prompt_options(text):
    found = {}
    for match in _OPTION_LINE_RE.finditer(text):
        found.setdefault(match.group("letter"), match.group("text"))
    if len(found) < 2:
        for match in _INLINE_OPTION_RE.finditer(text):
            found.setdefault(match.group("letter"), match.group("text"))
    # Options are consecutive letters from A: a stray "I." line is not an option.
    letters = ""
    for letter in LETTERS:
        if letter not in found:
            break
        letters += letter
    if len(letters) < 2:
        return Options(DEFAULT_LETTERS)
    return Options(letters, _texts((letter, found[letter]) for letter in letters))

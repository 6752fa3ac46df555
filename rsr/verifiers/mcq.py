"""Multiple-choice verifiers: `mcq` (one letter) and `mcq-multi` (a set of letters).

Extraction reads the final answer only and looks for *committed* answers:
"Answer: B", "The correct option is B.", "\\boxed{B}", `{"answer": "B"}`,
"**B**" on the last line, "I'll go with (B)", a line holding only "B)"... When a
response revises itself, the last committed answer wins. A letter is read only
as a whole token (never the capital of "A careful reading" or "Based on"), a
lowercase letter only where it cannot be an English word ("answer: b." but not
"the answer is a prime"), and only letters that are options of the question
count: from metadata `choices`/`options`, else from the option lines of the
prompt ("A. ...", "(B) ..."), else A-J.
"""

import re

from . import Verdict, Verifier, variant_name

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
DEFAULT_LETTERS = "ABCDEFGHIJ"
# Answers are committed at the end; a megabyte of text is read from its tail.
MAX_CHARS = 100_000

_PREFIX_RE = re.compile(
    r"""(?ix)
    (?: \b(?:final\s+|correct\s+|right\s+|best\s+)?answers?\b\**
        (?:\s*\((?:s|single|letters?)\))?
        \s*(?:is|are|would\s+be|should\s+be|must\s+be|will\s+be|=)?\s*\**\s*
        (?:[:=\-–—]\s*)?\**\s*(?:(?:options?|choices?|letters?)\b\s*[:=]?\s*)?
      | \b(?:correct|right|best)\s+(?:options?|choices?)\s*(?:is|are)?\s*(?:[:=\-]\s*)?
      | \b(?:i\s+(?:would\s+|will\s+)?(?:choose|pick|select|go\s+with)
          |i'?ll\s+(?:choose|pick|select|go\s+with))\s+(?:options?\s+|choices?\s+)?
      | \b(?:it's|it\s+is|that's|that\s+is)\s+(?:options?\s+|choices?\s+)?
    )""",
)
_BOXED_RE = re.compile(r"\\(?:boxed|fbox)\s*\{")
_JSON_RE = re.compile(r"""["']answers?["']\s*:\s*["']""", re.I)
_SUFFIX_RE = re.compile(
    r"""(?ix)\b(?:options?\s+|choices?\s+)?(?P<letters>\(?[A-Za-z]\)?(?:\s*(?:,|and|&)\s*\(?[A-Za-z]\)?)*)
    \s+(?:is|are)\s+(?:the\s+)?(?:correct|right)\b(?!\s+(?:because|if|only|when))""",
)
# A line that holds only an answer: "B", "(B)", "B.", "**B**", "A, C". Only lines
# of at most _LINE_MAX characters are tried, so the pattern stays cheap.
_LINE_RE = re.compile(
    r"[ \t>#*]*(?:\\textbf\{|\\text\{)?[\(\[]?[ \t]*"
    r"(?P<letters>[A-Za-z]{1,10}(?:(?:[ \t]*[,&][ \t]*|[ \t]+and[ \t]+|[ \t]+)[A-Za-z]{1,10})*)"
    r"[ \t]*[\)\]]?\}?[.:]?[ \t*]*"
)
_LINE_MAX = 40
_BOLD_RE = re.compile(r"\*\*\s*\(?(?P<letters>[A-Za-z](?:\s*,?\s*[A-Za-z])*)\)?[.:]?\s*\*\*(?!\w)")
_OPTION_LINE_RE = re.compile(r"^[ \t]*\(?([A-Z])[\).:][ \t]+\S", re.M)

_OPENERS = " \t$*([{"
_CLOSERS = ")]}*$"
_SEPARATOR_RE = re.compile(r"\s*(?:,\s*(?:and\s+)?|;\s*|&\s*|\+\s*|/\s*|\band\b\s*|\bor\b\s*)")
_ACCEPT_AFTER_RE = re.compile(
    r"""(?x)[ \t]*(?:$|\n|[.,;:!?](?:\s|$)|[\-–—"']|
        \s+(?:because|since|as|which|with|for|is|are|was|were|seems|and\s+(?:the|this|that)|\()\b)"""
)
_WORD_RE = re.compile(r"[A-Za-z]+")
_LETTER_RE = re.compile(r"[A-Za-z]")
_NEXT_LETTER_RE = re.compile(r"[A-Za-z](?![A-Za-z])|[A-Z]+(?![A-Za-z])")
_VERB_AFTER_RE = re.compile(r"\s+(?:is|are|was|were)\b")
_AND_RE = re.compile(r"\band\b")
_LATEX_WRAPPERS = ("\\textbf{", "\\text{", "\\mathrm{", "\\mathbf{", "\\boxed{")


def valid_letters(metadata, prompt=None):
    "The option letters of a question: from metadata, else from the prompt's option lines."
    for key in ("choices", "options"):
        options = metadata.get(key)
        if isinstance(options, list) and 2 <= len(options) <= 26:
            return LETTERS[: len(options)]
        if isinstance(options, dict) and options and all(
            isinstance(k, str) and len(k) == 1 and k.upper() in LETTERS for k in options
        ):
            return "".join(sorted(k.upper() for k in options))
    text = _prompt_text(prompt)
    if text:
        found = sorted(set(_OPTION_LINE_RE.findall(text)))
        # Options are consecutive letters from A: a stray "I." line is not an option.
        run = ""
        for letter in LETTERS:
            if letter not in found:
                break
            run += letter
        if len(run) >= 2:
            return run
    return DEFAULT_LETTERS


def _prompt_text(prompt):
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, list):
        users = [m.get("content") for m in prompt if isinstance(m, dict) and m.get("role") == "user"]
        if users and isinstance(users[-1], str):
            return users[-1]
    return ""


def gold_letters(gold):
    "The gold answer as a sorted string of capital letters ('B', 'AC'), or None."
    if gold is None:
        return None
    if isinstance(gold, int) and not isinstance(gold, bool):
        return LETTERS[gold] if 0 <= gold < 26 else None
    if isinstance(gold, (list, tuple)):
        letters = [str(g).strip().upper() for g in gold]
    else:
        letters = re.findall(r"[A-Za-z]", re.sub(r"(?i)\b(?:and|or)\b", " ", str(gold)))
    letters = sorted({letter.upper() for letter in letters})
    return "".join(letters) or None


def _skip_openers(text, i):
    decorated = False
    while i < len(text):
        if text[i] in _OPENERS:
            decorated = decorated or text[i] in "([{*"
            i += 1
            continue
        for wrapper in _LATEX_WRAPPERS:
            if text.startswith(wrapper, i):
                i += len(wrapper)
                decorated = True
                break
        else:
            break
    return i, decorated


def _read_letters(text, i, multi):
    """Letters starting at text[i] (decorations allowed around them), or None.

    Returns (letters, end) where letters keeps the case it was written in.
    """
    i, decorated = _skip_openers(text, i)
    letters = []
    while True:
        match = _WORD_RE.match(text, i, i + 12)
        if not match:
            return None
        word = match.group()
        if len(word) > 1:
            # A run of capitals ("AC") is a set only in mcq-multi, and only whole.
            if not (multi and word.isupper() and len(set(word)) == len(word)):
                return None
        letters.extend(word)
        i += len(word)
        j = i
        while j < len(text) and text[j] in ")]}":
            j += 1
        separator = _SEPARATOR_RE.match(text, j)
        if multi and separator:
            k, _ = _skip_openers(text, separator.end())
            if _NEXT_LETTER_RE.match(text, k, k + 12):
                i = k
                continue
        break
    end = i
    closed = False
    while end < len(text) and text[end] in _CLOSERS:
        closed = closed or text[end] in ")]}*"
        end += 1
    if not (decorated or closed):
        if not _ACCEPT_AFTER_RE.match(text, end):
            last = letters[-1]
            follow = text[end : end + 2]
            # A bare capital other than A or I followed by a space is a letter
            # ("Answer: B 4"); "A"/"I" followed by a word are English words.
            if not (last.isupper() and last not in "AI" and follow[:1] in (" ", "\t")):
                return None
        elif letters[-1].islower() and _VERB_AFTER_RE.match(text, end):
            return None
    return letters, end


def extract_letters(text, valid, multi=False):
    """The last committed answer in text as (letters, how, position), or None.

    letters is an upper-case string ("B", or "AC" in multi mode) of valid letters.
    """
    text = text[-MAX_CHARS:]
    candidates = []

    def consider(found, how, position):
        if found is None:
            return
        letters = [letter.upper() for letter in found[0]]
        if not letters or any(letter not in valid for letter in letters):
            return
        if not multi and len(letters) != 1:
            return
        candidates.append((position, how, "".join(sorted(set(letters)))))

    for match in _PREFIX_RE.finditer(text):
        found = _read_letters(text, match.end(), multi)
        consider(found, "answer phrase", found[1] if found else 0)
    for match in _BOXED_RE.finditer(text):
        found = _read_letters(text, match.end(), multi)
        if found and "}" in text[match.end() : found[1] + 1]:
            consider(found, "boxed", found[1])
    for match in _JSON_RE.finditer(text):
        found = _read_letters(text, match.end(), multi)
        if found and text[found[1] : found[1] + 1] in ("'", '"'):
            consider(found, "json", found[1])
    # "B is correct": the pattern needs "correct" or "right", and is the slowest
    # scan here, so it runs only on text that has one of them.
    lowered = text.lower()
    suffixes = _SUFFIX_RE.finditer(text) if "correct" in lowered or "right" in lowered else ()
    for match in suffixes:
        letters = _LETTER_RE.findall(_AND_RE.sub(" ", match.group("letters")))
        if all(letter.isupper() for letter in letters) or "(" in match.group("letters"):
            consider((letters, match.end()), "is correct", match.end())
    offset = 0
    for line in text.split("\n"):
        end = offset + len(line)
        if len(line) <= _LINE_MAX:
            match = _LINE_RE.fullmatch(line)
            if match:
                words = _AND_RE.sub(" ", match.group("letters")).replace(",", " ").replace("&", " ").split()
                if all(len(w) == 1 or (multi and w.isupper()) for w in words):
                    letters = [c for w in words for c in w]
                    if len(letters) == 1 or multi:
                        consider((letters, end), "answer line", end)
        offset = end + 1
    last_line_start = text.rstrip().rfind("\n") + 1
    for match in _BOLD_RE.finditer(text, last_line_start):
        letters = _LETTER_RE.findall(match.group("letters"))
        consider((letters, match.end()), "bold", match.end())
    if not candidates:
        return None
    position, how, letters = max(candidates, key=lambda c: c[0])
    return letters, how, position


class MultipleChoice(Verifier):
    "One letter, compared with metadata.answer."

    name = "mcq"
    description = "Multiple choice, one letter: 'Answer: B', '(B)', '\\boxed{B}', JSON; last committed answer"
    multi = False

    def check(self, answer, metadata, *, prompt=None):
        gold = gold_letters(metadata.get("answer"))
        if gold is None:
            return Verdict(None, None, None, {"reason": "no gold answer"}, "no gold answer")
        valid = "".join(sorted(set(valid_letters(metadata, prompt)) | set(gold)))
        found = extract_letters(answer, valid, self.multi)
        if found is None:
            return Verdict(False, 0.0, None, {"reason": "no answer found", "gold": gold, "valid": valid})
        letters, how, _ = found
        return self.grade(letters, gold, {"gold": gold, "valid": valid, "found_by": how})

    def grade(self, letters, gold, details):
        passed = letters == gold
        details["reason"] = "matches gold" if passed else "different letter"
        return Verdict(passed, float(passed), letters, details)


class MultipleChoiceMulti(MultipleChoice):
    "A set of letters; exact set match passes, partial=True scores the Jaccard overlap."

    name = "mcq-multi"
    description = "Multiple choice, a set of letters ('AC', 'A, C', 'A and C'); exact set; partial: Jaccard"
    multi = True
    partial = False

    def configure(self, partial=False, **options):
        if options:
            return super().configure(**options)
        copy = type(self)()
        copy.partial = _as_bool(partial)
        copy.name = variant_name("mcq-multi", {"partial": copy.partial})
        return copy

    def grade(self, letters, gold, details):
        mine, theirs = set(letters), set(gold)
        passed = mine == theirs
        jaccard = len(mine & theirs) / len(mine | theirs)
        details["reason"] = "same set" if passed else "different set"
        details["jaccard"] = round(jaccard, 6)
        return Verdict(passed, jaccard if self.partial else float(passed), letters, details)


def _as_bool(value):
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)

"""Multiple-choice verifiers: `mcq` (one letter) and `mcq-multi` (a set of letters).

The options come from the question (metadata `choices`/`options`, else the
option lines of the prompt, else A-J; see options.py) and the reader
(choices.py) finds what the final answer commits to, by letter or by option
text, taking the last chosen statement and leaving out what it rejects. A
verdict is undecided (passed None, with the reason) when a careful grader
could not decide either: a hedge between options, two different firm answers,
or no final answer at all (an empty response, reasoning with nothing after it).
"""

import re
from functools import lru_cache

from .base import Verdict, Verifier, undecided, variant_name
from .choices import read_choice
from .options import LETTERS, Options, question_options


def gold_letters(gold):
    "The gold answer as a sorted string of capital letters ('B', 'AC'), or None."
    if gold is None:
        return None
    if isinstance(gold, str):
        return _gold_text(gold)
    if isinstance(gold, int) and not isinstance(gold, bool):
        return LETTERS[gold] if 0 <= gold < 26 else None
    if isinstance(gold, (list, tuple)):
        letters = [str(g).strip().upper() for g in gold]
    else:
        letters = re.findall(r"[A-Za-z]", re.sub(r"(?i)\b(?:and|or)\b", " ", str(gold)))
    letters = sorted({letter.upper() for letter in letters})
    return "".join(letters) or None


@lru_cache(maxsize=4096)
def _gold_text(gold):
    letters = re.findall(r"[A-Za-z]", re.sub(r"(?i)\b(?:and|or)\b", " ", gold))
    return "".join(sorted({letter.upper() for letter in letters})) or None


def valid_letters(metadata, prompt=None):
    "The option letters of a question: from metadata, else the prompt's option lines, else A-J."
    return question_options(metadata, prompt).letters


class MultipleChoice(Verifier):
    "One letter, compared with metadata.answer."

    name = "mcq"
    description = "Multiple choice, one letter: the last committed choice, by letter or option text"
    multi = False

    def check(self, answer, metadata, *, prompt=None):
        gold = gold_letters(metadata.get("answer"))
        if gold is None:
            return undecided("no gold answer", reason="no gold answer")
        options = question_options(metadata, prompt)
        valid = "".join(sorted(set(options.letters) | set(gold)))
        details = {"gold": gold, "valid": valid}
        if not answer.strip():
            return undecided("no final answer", reason="no final answer", **details)
        reading = read_choice(answer, Options(valid, options.texts), self.multi)
        details["found_by"] = reading.how
        if reading.undecided:
            return undecided(reading.how, reason=reading.how, **details)
        if reading.letters is None:
            details["reason"] = reading.how
            return Verdict(False, 0.0, None, details)
        return self.grade(reading.letters, gold, details)

    can_vote = True

    def vote_answer(self, answer, metadata, *, prompt=None):
        "The letter (or, for mcq-multi, sorted letters) the answer commits to, else None."
        if not answer.strip():
            return None
        reading = read_choice(answer, question_options(metadata, prompt), self.multi)
        if reading.undecided or not reading.letters or (len(reading.letters) > 1 and not self.multi):
            return None
        return "".join(sorted(reading.letters))

    def grade(self, letters, gold, details):
        passed = letters == gold
        if len(letters) > 1:
            details["reason"] = "several letters for a one-letter question"
        else:
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

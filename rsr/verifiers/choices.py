"""Reading which option(s) a final answer commits to.

The reader does not look for a list of answer sentences. It finds every place
the text names an option, by letter ("B", "(b)", "**C**", "ACD", "A, C and D")
or by the option's own text ("Newton", "Vitamin C", "3.5 m/s"), and gives each
a polarity from the words around it:

- chosen: after an answer cue ("answer", "correct option is", "I'd pick",
  "故选", "la respuesta es", "\\boxed{", a JSON "answer" key), before a verdict
  ("... is correct", "✓"), or alone on its line ("**B. Newton**");
- rejected: after a negation ("not", "can't be", "rule out", "over",
  "Incorrect:") or before one ("... is wrong", "✗");
- hedged: joined by "or", or several letters in a sentence that says it cannot
  decide ("torn between", "either", "not sure");
- neutral: everything else (letters discussed in passing, echoed option lists).

The answer is the last chosen statement, less what the text rejects after it.
It is undecided when that statement is a hedge, or when two different answers
are both stated firmly with nothing that marks the later one as a revision
("wait", "actually", "final answer"...). An option named right after a retraction
of an answer is the new answer, and an answer taken back with nothing named after it
no longer stands (revisions.py). With no chosen statement the reader
falls back on elimination (every option but one rejected) and on the last
sentence naming exactly one option by letter or text.
"""

import re
from dataclasses import dataclass
from functools import lru_cache

from .cues import (
    _ALL_BUT_RE,
    _ANNOUNCE_RE,
    _CONNECTIVES,
    _EXAMPLE_RE,
    _FILLER,
    _FINAL_RE,
    _HEDGE_CLAUSE_RE,
    _HEDGE_WORDS,
    _LINE_END_VERDICT_RE,
    _LINE_OK,
    _NEG_CUE_RE,
    _NEXT_VERDICT_RE,
    _OR_WORDS,
    _POSITIVE,
    _POST_COMPARE_RE,
    _POST_HEDGE_RE,
    _POST_NEG_RE,
    _POST_POS_RE,
    _SENTENCE_END_RE,
    _STRONG_CUE_RE,
    _SUBJECT_RE,
    _TEXT_CUE_RE,
    _TEXT_FILLER_RE,
    _WEAK_CUE_RE,
)
from .layout import _bold, _in_answer_column, _line_end, _line_start
from .options import fold, normalize
from .revisions import conflict, revise, withdrawn

# Answers come at the end: a long response is read from its tail.
MAX_CHARS = 20_000
# How far around a mention its cue words are looked for.
_WINDOW = 80

_MENTION_RE = re.compile(r"(?<![A-Za-z0-9_\\À-ɏ])(?:[A-Z]{2,10}|[A-Za-z])(?![A-Za-z0-9_À-ɏ])")
_TOKEN_RE = re.compile(r"[^\W\d_]+(?:'[a-z]+)?|\d+|[^\w\s]")
# Patterns of the hot path, compiled once (a module-level re call pays a cache lookup each time).
_FOLLOWING_WORD_RE = re.compile(r"[ \t]+([a-z']+)")
_JOINED_LOWER_RE = re.compile(r"[ \t]+(?:and|or)[ \t]+\(?[a-z]\b")
_SENTENCE_INSIDE_RE = re.compile(r"[.!?] \w")
_NOT_RE = re.compile(r"\bnot\b|n't")
_SEP_RE = re.compile(
    r"[ \t']*(?:[,;/&+][ \t']*)?(?:(?P<word>and|or|y|o|et|ou|und|oder|和|与|及|或|或者|以及)[ \t']*)?"
    r"(?:(?:maybe|perhaps|possibly|also|even)[ \t]+)?"
)


@dataclass
class Group:
    "Option letters named together ('A, C and D'), with where and how they stand."

    start: int
    end: int
    letters: list
    has_or: bool = False
    polarity: str = "neutral"  # chosen, rejected, hedged, neutral
    strength: str = ""  # strong, weak, line, verdict
    final: bool = False
    line: int = 0
    own_text: bool = False
    label: bool = False  # the letter labels its line: "A. ...", "(B) ...", "C) ..."
    listed: bool = False  # one of several labelled lines: an option list
    contradicts: str = ""  # the option whose text follows this letter's label
    revision: bool = False  # named right after a retraction of an earlier answer


def _mentions(text, valid):
    """(start, end, letters, word_like) for each token of text that can name options;
    word_like marks an "A" or "I" that reads as an English word unless it is
    joined to another letter ("C and A look plausible")."""
    found = []
    for match in _MENTION_RE.finditer(text):
        word, start, end = match.group(), match.start(), match.end()
        if len(word) > 1:
            if len(set(word)) == len(word) and all(c in valid for c in word):
                found.append((start, end, tuple(word), False))
            continue
        letter = word.upper()
        if letter not in valid:
            continue
        before = text[start - 1 : start]
        after = text[end : end + 1]
        if after in ("'", "’") and text[end + 1 : end + 2].isalpha():
            continue  # "I'm", "A's"
        if word.islower():
            if before in ("'", "’") or not _lowercase_is_letter(text, start, end):
                continue
        elif word in "AI" and after in (" ", "\t"):
            following = _FOLLOWING_WORD_RE.match(text[end : end + 20])
            if following and following.group(1) not in _CONNECTIVES and not (before and before in "([*{"):
                found.append((start, end, (letter,), True))  # "A careful reading", "I think"
                continue
        found.append((start, end, (letter,), False))
    return found


def _lowercase_is_letter(text, start, end):
    "A lowercase letter names an option only in brackets or before punctuation or the end."
    if text[start - 1 : start] == "(" or text[end : end + 1] == ")":
        return True
    rest = text[end : end + 8]
    if not rest.strip() or rest[:1] == "\n":
        return True
    if rest[:1] in ",;:!?*$\"'}]" or (rest[:1] == "." and not rest[1:2].isalpha()):
        return True
    return bool(_JOINED_LOWER_RE.match(rest + text[end + 8 : end + 12]))


def _groups(text, folded, mentions):
    "Mentions joined by separators ('A, C and D', '(A)(C)', 'A、C') into groups."
    groups = []
    for start, end, letters, word_like in mentions:
        if groups:
            last = groups[-1]
            gap = folded[last.end : start]
            if len(gap) <= 12 and "\n" not in gap:
                sep = _SEP_RE.fullmatch(gap)
                # a word-like "I" joins a letter by "and"/"or", not by a comma: after
                # "..., H," an "I" with a verb is the pronoun
                if sep and (sep.group("word") or not word_like):
                    last.end = end
                    last.letters.extend(letters)
                    last.has_or = last.has_or or sep.group("word") in _OR_WORDS
                    continue
        if not word_like:
            groups.append(Group(start, end, list(letters)))
    return groups


def _boundary_before(folded, start, floor):
    "Where the clause that ends at start begins (a line, sentence or previous group)."
    low = max(floor, start - _WINDOW)
    window = folded[low:start]
    cut = max(window.rfind("\n"), window.rfind(". "), window.rfind("! "), window.rfind("? "),
              window.rfind("; "))
    return low + cut + 1 if cut >= 0 else low


def _boundary_after(folded, end):
    if folded[end : end + 1] in (".", ")") and folded[end + 1 : end + 2] == " ":
        end += 1  # the dot of a label ("A. ...") ends no sentence
    match = _SENTENCE_END_RE.search(folded, end, end + _WINDOW)
    return match.start() if match else min(len(folded), end + _WINDOW)


def _strip_own_text(clause, texts, letters, at_end):
    "clause without the group's own option text next to it ('B. Newton', 'Newton (B)')."
    if len(letters) != 1 or letters[0] not in texts:
        return clause, False
    own = texts[letters[0]]
    if own.partition(" ")[0] not in clause:
        return clause, False  # the cheap test first: most clauses hold no option text
    squeezed = " ".join(clause.split())
    if at_end and squeezed.endswith(own) and (len(squeezed) == len(own) or not squeezed[-len(own) - 1].isalnum()):
        return squeezed[: -len(own)], True
    probe = squeezed.lstrip(" .:)-–—,")
    if not at_end and probe.startswith(own) and not probe[len(own) : len(own) + 1].isalnum():
        return probe[len(own) :], True
    return clause, False


_INTERJECTIONS = {"no", "nope", "non", "nein"}
_PAUSES = {",", ".", "!", "—", "–", "-", ":", ";"}


def _read_before(tokens):
    "(cue, negated, hedged) from the tokens before a mention, walking back over filler."
    cue, negated, hedged = "", False, False
    i = len(tokens)
    while i > 0:
        tail = " ".join(tokens[max(0, i - 5) : i])
        match = _NEG_CUE_RE.search(tail)
        if match and i < len(tokens) and (tokens[i] in _PAUSES if match.group() in _INTERJECTIONS
                                          else tokens[i] in (",", ";", ".")):
            # an interjected "no," takes back what came before, and a negation before a
            # comma ends the previous option's clause: neither negates the next option
            i -= 1
            continue
        if match:
            negated = True
            i -= max(1, len(match.group().split()))
            continue
        match = _STRONG_CUE_RE.search(tail)
        if match:
            return ("final" if _FINAL_RE.search(tail) else "strong"), negated, hedged
        if _WEAK_CUE_RE.search(tail):
            cue = cue or "weak"
        token = tokens[i - 1]
        if token in _HEDGE_WORDS:
            hedged = True
        elif token not in _FILLER:
            break
        i -= 1
    return cue, negated, hedged


def _classify(text, folded, groups, texts, multi, valid):
    "Set each group's polarity and strength from its clause."
    longest = max(80, max(map(len, texts.values()), default=0) + 20)
    previous_end = 0
    lines = folded[: groups[0].start].count("\n") if groups else 0
    line_mark = groups[0].start if groups else 0
    last_line_start = text.rstrip().rfind("\n") + 1
    for group in groups:
        lines += folded.count("\n", line_mark, group.start)
        line_mark = group.start
        group.line = lines
        begin = _boundary_before(folded, group.start, previous_end)
        finish = _boundary_after(folded, group.end)
        previous_end = group.end
        before, own_before = _strip_own_text(folded[begin : group.start], texts, group.letters, True)
        after, own_after = _strip_own_text(folded[group.end : finish], texts, group.letters, False)
        group.own_text = own_before or own_after
        group.label = _is_label(text, group)
        rest = _rest_of_line(text, folded, group, longest)
        if rest is not None and len(group.letters) == 1:
            if rest and rest != texts.get(group.letters[0]):
                group.contradicts = next((k for k, t in texts.items() if t == rest), "")
            if rest and (rest == texts.get(group.letters[0]) or group.contradicts):
                after = ""  # "B. False, False": an option's text, not a verdict
        if group.label and rest is not None and not _SUBJECT_RE.match(after):
            # The words after a label are an option's text, not a verdict on it: the
            # verdict ends the line ("— yes", "❌") or fills the next one.
            verdict = "" if rest in texts.values() else _line_end_verdict(rest, texts)
            after = verdict or _next_line_verdict(folded, group.end)
        tokens = _TOKEN_RE.findall(before)
        cue, negated, hedged = _read_before(tokens)
        several = len(set(group.letters)) > 1
        after = after.lstrip(" )]}*$.")
        if after.startswith("?") or (not after.strip() and folded[finish : finish + 1] == "?"):
            continue  # a question: "Is it B or D?"
        if _EXAMPLE_RE.search(folded, begin, group.start):
            continue  # the answer format quoted: "(for example 'Answer: AC')"
        if negated and multi and _ALL_BUT_RE.search(" ".join(tokens)):
            # "all except B": the other options are chosen
            group.letters = [letter for letter in valid if letter not in group.letters]
            group.polarity, group.strength = "chosen", "strong"
            continue
        if negated:
            group.polarity = "rejected" if not _POST_POS_RE.match(after) else "neutral"
            continue
        if _POST_NEG_RE.match(after):
            group.polarity = "rejected"
            continue
        clause = folded[begin:finish]
        if group.has_or or (several and not multi and (
                hedged or _POST_HEDGE_RE.match(after) or _HEDGE_CLAUSE_RE.search(clause))):
            group.polarity, group.strength = "hedged", cue or "weak"
            continue
        if cue in ("strong", "final"):
            group.polarity, group.strength, group.final = "chosen", "strong", cue == "final"
        elif _POST_POS_RE.match(after):
            group.polarity, group.strength = "chosen", "verdict"
        elif _in_answer_column(text, group):
            group.polarity, group.strength = "chosen", "strong"
        elif _alone(text, folded, group, texts) or (
                not tokens and not after.strip(" .!") and len(group.letters) == 1):
            group.polarity, group.strength = "chosen", "line"  # its line, or its sentence ("No. B.")
        elif cue == "weak" and not _SUBJECT_RE.match(after):
            group.polarity, group.strength = "chosen", "weak"
        elif not tokens and _POST_COMPARE_RE.match(after):
            group.polarity, group.strength = "chosen", "weak"
        elif group.start >= last_line_start and _bold(text, group):
            group.polarity, group.strength = "chosen", "weak"
        elif group.label and rest is not None and _names_option(rest, texts.get(group.letters[0])):
            # "D. 4" heading its line; a labelled sentence or paragraph discusses the option
            group.polarity, group.strength = "chosen", "line"
    _neutralise_lists(folded, groups)


_LABEL_BEFORE_RE = re.compile(r"[ \t>*•-]*\**[\(\[]?$")
_LABEL_AFTER_RE = re.compile(r"\**[.):\]]\**(?:\s|$)")


def _is_label(text, group):
    "True when the letter opens its line as a label: 'A. ...', '(B) ...', '**C)** ...'."
    if len(group.letters) > 1:
        return False  # several letters opening a line start a sentence, not a label
    line_start = _line_start(text, group.start)
    return bool(_LABEL_BEFORE_RE.match(text, line_start, group.start)
                and group.start - line_start < 8 and _LABEL_AFTER_RE.match(text, group.end))


def _rest_of_line(text, folded, group, limit=80):
    """What follows "B." / "B)" / "B:" on the group's line, normalized ('' when
    nothing does); None when no such mark follows or the rest is a paragraph."""
    if not _LABEL_AFTER_RE.match(text, group.end):
        return None
    line_end = _line_end(folded, group.end)
    raw = folded[group.end : line_end if line_end >= 0 else len(folded)]
    rest = normalize(raw.lstrip(" .:)]*")).strip()
    if len(rest) > limit or _SENTENCE_INSIDE_RE.search(rest):
        return None
    return rest


def _line_end_verdict(rest, texts):
    "'correct' or 'incorrect' from a verdict that ends a labelled line, or ''."
    match = _LINE_END_VERDICT_RE.search(rest)
    if not match:
        return ""
    if match.start("verdict") == 0 and any(match.group("verdict") in t.split() for t in texts.values()):
        return ""  # "D. True" where the options are "True, False" pairs: a garbled option text
    return "correct" if match.group("verdict") in _POSITIVE else "incorrect"


def _next_line_verdict(folded, end):
    "The verdict that the line after a labelled line gives it, or an empty string."
    line_end = _line_end(folded, end)
    if line_end < 0 or folded[line_end] != "\n":
        return ""
    following = folded[line_end : line_end + 60].lstrip()
    match = _NEXT_VERDICT_RE.match(following)
    if not match:
        return ""
    return ("not " if match.group("not") else "") + match.group("verdict")


def _names_option(rest, own):
    "True when a label's line holds no more than an option's text, or a few words."
    words = rest.split()
    if len(words) <= 3 or own is None or rest == own:
        return True
    own_words = own.split()
    shared = len(set(words) & set(own_words))
    return shared * 2 >= len(own_words) and len(words) <= 1.5 * len(own_words) + 2


def _alone(text, folded, group, texts):
    "True when the group, with its own option text, is all its line says."
    line_start = _line_start(folded, group.start)
    line_end = _line_end(folded, group.end)
    line_end = len(folded) if line_end < 0 else line_end
    if line_end - line_start > 200 or "|" in text[line_start:line_end]:
        return False  # a table row, or a paragraph
    head, _ = _strip_own_text(folded[line_start : group.start], texts, group.letters, True)
    tail, _ = _strip_own_text(folded[group.end : line_end], texts, group.letters, False)
    tail_tokens = _TOKEN_RE.findall(tail)
    # "Option C:" heads what follows, and "A. 1500 A." ends in a unit: neither answers
    return all((t in _LINE_OK and len(t) > 1) or t.isdigit() or not t.isalnum()
               for t in _TOKEN_RE.findall(head)) and not any(t.isalnum() or t == ":" for t in tail_tokens)


def _neutralise_lists(folded, groups):
    """Labelled lines in ascending letters ('A. ...' then 'B. ...', blank lines
    between allowed) are an option list, echoed or discussed, not answers;
    unless the line before the list announces the answer ('The correct options
    are:'), when the list is that answer."""
    run = []
    for group in [g for g in groups if g.label and len(g.letters) == 1] + [None]:
        if group is not None and run and group.letters[0] > run[-1].letters[0] and (
                group.line - run[-1].line <= 4):
            run.append(group)
            continue
        if len(run) >= 2:
            head_end = folded.rfind("\n", 0, run[0].start)
            head_start = folded.rfind("\n", 0, max(head_end, 0)) + 1
            head = folded[head_start:head_end] if head_end > 0 else ""
            cue, _, _ = _read_before(_TOKEN_RE.findall(head))
            if not _ANNOUNCE_RE.search(head):
                cue = ""
            plain = [item for item in run if item.strength == "line"]
            # Where the other items are judged or discussed, the one plain item is chosen.
            keep = plain[0] if len(plain) == 1 else None
            for item in run:
                item.listed = item is not keep
                if item.strength == "line" and item is not keep:
                    item.polarity, item.strength = "neutral", ""
            if cue in ("strong", "final"):
                first = run[0]
                first.letters = [item.letters[0] for item in run if item.polarity != "rejected"]
                first.polarity, first.strength, first.contradicts = "chosen", "strong", ""
        run = [group] if group is not None else []


def _text_choices(folded, texts, groups):
    """Options named by their text after an answer cue ('the answer is Newton')
    as extra groups."""
    if not texts:
        return []
    starts = {g.start for g in groups}
    found = []
    for match in _TEXT_CUE_RE.finditer(folded):
        position = match.end()
        window = folded[position : position + 200]
        skipped = _TEXT_FILLER_RE.match(window)
        negated = bool(_NOT_RE.search(skipped.group()))
        if position + skipped.end() in starts:
            continue
        probe = " ".join(window[skipped.end() :].split())
        best = None
        for letter, option in texts.items():
            if probe.startswith(option) and not probe[len(option) : len(option) + 1].isalnum():
                if best is None or len(option) > len(texts[best]):
                    best = letter
        if best is None:
            continue
        strength = "weak" if match.group("weak") else "strong"
        group = Group(position, position + len(texts[best]), [best])
        group.polarity = "rejected" if negated else "chosen"
        group.strength, group.final = strength, bool(_FINAL_RE.search(match.group()))
        found.append(group)
    return found


_INVALID_LABEL_RE = re.compile(r"[ \t>*•-]*\**[\(\[]?([A-Z])\**[.):\]]")


def _conclusion(text, folded, options, groups, multi):
    """The options named in the last sentence, by letter or text, as one group;
    None when it names none, or when it is a line of an option list."""
    stripped = folded.rstrip(" \n.!")
    line = stripped.rfind("\n") + 1
    cut = max(line - 1, stripped.rfind(". "), stripped.rfind("! "), len(stripped) - 400)
    start = cut + 1  # a conclusion is one sentence, not a page
    if any(g.listed and g.start >= line for g in groups):
        return None
    label = _INVALID_LABEL_RE.match(text, line)
    if label and label.group(1) not in options.letters:
        return label.group(1)  # "E. ..." where E is no option
    sentence = " " + " ".join(stripped[start:].split()) + " "
    letters = {letter for g in groups if g.start >= start and g.polarity != "rejected"
               for letter in g.letters}
    out = {letter for g in groups if g.start >= start and g.polarity == "rejected" for letter in g.letters}
    spans = []
    for letter, option in options.texts.items():
        if letter not in out:
            for match in re.finditer(r"(?<![\w.])" + re.escape(option) + r"(?![\w])", sentence):
                spans.append((match.start(), match.end(), letter))
    for begin, end, letter in spans:
        # "abelian group" names one option, not also the option "group" inside it
        if not any(b <= begin and end <= e and (b, e) != (begin, end) for b, e, _ in spans):
            letters.add(letter)
    if not letters or (len(letters) > 1 and not multi):
        return None
    group = Group(start, len(folded), sorted(letters))
    group.polarity, group.strength = "chosen", "weak"
    return group


def _letters_in_option_texts(folded, texts):
    """Spans of the text that quote an option's text holding a lone letter
    ("6 A", "Vitamin C", "Both A and B"): letters there are the text's, not choices."""
    spans = []
    for option in texts.values():
        pattern = _lone_letter_pattern(option)
        if pattern is not None:
            spans.extend(match.span() for match in pattern.finditer(folded))
    return spans


@lru_cache(maxsize=8192)
def _lone_letter_pattern(option):
    "A pattern finding option in folded text when it holds a lone letter (not a bare 'a'), else None."
    if " " not in option or not re.search(r"(?<![\w.])[a-z](?![\w])", option):
        return None
    return re.compile(r"(?<![\w.])" + r"\s+".join(map(re.escape, option.split())) + r"(?![\w])")


@dataclass
class Reading:
    "What the reader found: letters (sorted, upper case) or None, and why."

    letters: str | None
    how: str
    undecided: bool = False


def read_choice(text, options, multi=False):
    "The Reading of a final answer against Options (letters and texts)."
    text = text[-MAX_CHARS:]
    folded = fold(text)
    masked = _letters_in_option_texts(folded, options.texts)
    mentions = [m for m in _mentions(text, options.letters) if not any(a <= m[0] < b for a, b in masked)]
    groups = _groups(text, folded, mentions)
    _classify(text, folded, groups, options.texts, multi, options.letters)
    groups += _text_choices(folded, options.texts, groups)
    groups.sort(key=lambda g: g.start)
    revise(folded, groups, _WINDOW)
    chosen = [g for g in groups if g.polarity in ("chosen", "hedged")]
    rejected = [g for g in groups if g.polarity == "rejected"]
    if multi:
        answers = [g for g in chosen if g.strength != "verdict"]
        if not answers and chosen:
            return _verdicts(folded, groups)
        chosen = answers
    if not chosen:
        return _fallback(text, folded, options, groups, rejected, multi)
    last = chosen[-1]
    if last.polarity == "hedged":
        return Reading(None, "hedged between " + ", ".join(dict.fromkeys(last.letters)), True)
    taken_back = withdrawn(folded, last, groups)
    if taken_back:
        return Reading(None, taken_back, taken_back != "answer retracted")
    letters = set(last.letters)
    later_rejections = {letter for g in rejected if g.start > last.end for letter in g.letters}
    if letters & later_rejections:
        letters -= later_rejections
        if not letters:
            return Reading(None, "answer retracted")
    two = conflict(folded, chosen, last, rejected, multi)
    if two:
        return Reading(None, two, True)
    if last.contradicts:
        return Reading(None, f"letter {last.letters[0]} with the text of option {last.contradicts}", True)
    return Reading("".join(sorted(letters)), _how(last))


def _how(group):
    return {"strong": "answer statement", "verdict": "verdict", "line": "answer line",
            "weak": "conclusion"}.get(group.strength, group.strength)


def _verdicts(folded, groups):
    """mcq-multi with no answer statement: the options whose last verdict is positive;
    undecided when the sentence of the last verdict says it cannot tell."""
    last = [g for g in groups if g.polarity == "chosen"][-1]
    start = max(folded.rfind(". ", 0, last.start), folded.rfind("\n", 0, last.start)) + 1
    ends = [e for e in (folded.find(". ", last.end), folded.find("\n", last.end)) if e >= 0]
    if _HEDGE_CLAUSE_RE.search(folded, start, min(ends, default=len(folded))):
        return Reading(None, "hedged verdicts", True)
    state = {}
    for group in groups:
        if group.polarity in ("chosen", "rejected"):
            for letter in group.letters:
                state[letter] = group.polarity == "chosen"
    letters = "".join(sorted(letter for letter, chosen in state.items() if chosen))
    return Reading(letters or None, "verdicts")


def _fallback(text, folded, options, groups, rejected, multi):
    if not multi and rejected:
        out = {letter for g in rejected for letter in g.letters}
        left = [letter for letter in options.letters if letter not in out]
        if len(left) == 1 and len(out) >= 2:
            return Reading(left[0], "elimination")
    group = _conclusion(text, folded, options, groups, multi)
    if isinstance(group, str):
        return Reading(None, f"{group} is not an option", True)
    if group is not None:
        return Reading("".join(group.letters), "last sentence")
    return Reading(None, "no answer found")

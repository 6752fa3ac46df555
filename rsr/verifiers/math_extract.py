"""Locating the final answer of a maths response (the `math` verifier's reading).

The response has had its reasoning removed (rsr.reasoning). What is left is
read the way a grader reads it, most explicit signal first:

1. `\\boxed{}` / `\\fbox{}`: the last one; boxes side by side (`\\boxed{1}` and
   `\\boxed{2}`) are one answer listing both; a box holding a sentence is read
   as a sentence.
2. A JSON object with an `answer` field.
3. The last answer statement: "the final answer is", "Answer:", "####", a
   "Final answer" heading with the answer below it, and the same in Chinese,
   Spanish, French and German. Two statements with different answers and no
   correction between them ("wait", "actually", "I made a mistake") are
   undecided.
4. Otherwise the concluding sentence: the last sentence that starts with a
   conclusion word ("so", "therefore", "in total", ...), else the last sentence
   with mathematics in it that is not a check ("Let me verify", "If ...").

From the located region the answer is its mathematics: the `$...$` span (or
spans joined by "and"/"or"), else a bold span, else what follows the last
"is"/"="/":", cut before approximations ("≈ 12.57") and trailing words. A hedge
("not sure", "either 7 or 8", "could also be") makes the verdict undecided.
"""

import bisect
import json
import re
from dataclasses import dataclass

_BOXED_RE = re.compile(r"\\(?:boxed|fbox)\s*(\{)?")
# Markers that a later answer replaces an earlier one.
_CORRECTION_RE = re.compile(
    r"\b(?:wait|actually|however|correction|mistake|oops|sorry|i was wrong|scratch that|instead|"
    r"re-?check(?:ing)?|recalculat\w*|let me redo|on second thought|no,|not \S+ but)\b"
    r"|\b(?:espera|en realidad|attendez|en fait|moment|eigentlich|korrektur)\b|等等|更正|其实",
    re.I,
)
_HEDGE_RE = re.compile(
    r"\b(?:not (?:entirely |completely |quite |very |100% )?(?:sure|certain|confident)|unsure|uncertain|"
    r"could also be|might (?:also )?be|may also be|or possibly|or maybe|or perhaps|"
    r"i (?:can't|cannot) decide|hard to say|either way|but (?:it )?(?:could|might|may) be)\b|不确定|也可能",
    re.I,
)
_EITHER_RE = re.compile(r"\b(?:either|entweder|soit|o bien)\b", re.I)

# Answer statements: the phrase, then the answer (to the end of the line).
_STATEMENT_RE = re.compile(
    r"(?:"
    r"\bfinal\s+(?:answer|result)s?(?:\s+(?:is|are|would be|will be))?"
    r"|\b(?:the|my|our)\s+(?:correct\s+|exact\s+)?(?:answer|result)\s+(?:is|are|would be|will be)"
    r"|\banswer\s+(?:is|=)"
    r"|^[ \t>*#_$-]*(?:\\text\{[ \t]*)?(?:answer|result|solution|ans)\b[ \t]*(?:\*\*[ \t]*)?[:=]"
    r"|^[ \t]*####"
    r"|la\s+respuesta(?:\s+final|\s+correcta)?\s+es|respuesta(?:\s+final)?\s*:"
    r"|la\s+r[ée]ponse(?:\s+finale|\s+correcte)?\s+est|r[ée]ponse(?:\s+finale)?\s*:"
    r"|die\s+(?:endg[üu]ltige\s+|richtige\s+)?(?:antwort|l[öo]sung)\s+(?:ist|lautet)"
    r"|(?:antwort|endergebnis|ergebnis|l[öo]sung)\s*:"
    r"|最终答案(?:是|为)?\s*[:：]?|答案(?:是|为|應為|应为)?\s*[:：]?|故选|所以答案"
    r")"
    r"[ \t]*(?:\*\*[ \t]*)?(?:[:：=][ \t]*)?(?:\*\*)?",
    re.I | re.M,
)
# Statements that name a result rather than commit to an answer.
_WEAK_RE = re.compile(r"(?:the|my|our)\s+(?:correct\s+|exact\s+)?result\s+(?:is|are|would be|will be)", re.I)
# A heading that announces the answer on the following lines.
_HEADING_RE = re.compile(
    r"^[ \t]*(?:#{1,6}[ \t]*|\*\*[ \t]*)(?:final\s+)?(?:answer|result|solution|respuesta|r[ée]ponse|antwort|答案)"
    r"[ \t*:]*$",
    re.I | re.M,
)
_CONCLUSION_RE = re.compile(
    r"^\W*\u2234|^\W*(?:so|thus|therefore|hence|then|in total|altogether|in conclusion|in summary|overall|"
    r"this means|which means|consequently|finally|por lo tanto|entonces|as[ií] que|donc|ainsi|"
    r"par cons[ée]quent|also|daher|somit|folglich|insgesamt|所以|因此|故|综上)\b",
    re.I,
)
_CHECK_RE = re.compile(
    r"^\W*(?:check|checking|verify|verifying|verification|let me|let's|double[- ]check|if|note|"
    r"since|because|as a check|sanity|for example|e\.g\.|comprobaci[óo]n|v[ée]rification|probe)\b",
    re.I,
)
_MATH_SPAN_RE = re.compile(r"(?<!\\)\$\$(.+?)\$\$|(?<!\\)\$(.+?)(?<!\\)\$|\\\((.+?)\\\)|\\\[(.+?)\\\]", re.S)
_BOLD_RE = re.compile(r"\*\*(.+?)\*\*|__(.+?)__", re.S)
_CONNECTOR_RE = re.compile(r"^[\s,;]*(?:(?:and|or|y|o|et|ou|und|oder|和|或|以及)[\s,;]*)?$", re.I)
_APPROX_RE = re.compile(r"\\approx|≈|\\sim(?![a-z])|~|\(approx|approximately|about|\\text\{\s*approx", re.I)
_COPULA_RE = re.compile(
    r"(?:\bis\b|\bare\b|\bequals?\b|\bbe\b|\bgives\b|\bget\b|\bes\b|\best\b|\bist\b|\bsind\b|"
    r"\bbetr[äa]gt\b|\blautet\b|是|为|為|=|:|：)",
    re.I,
)
_HAS_MATH_RE = re.compile(
    r"\d|\\[a-zA-Z]|[π√∞]|\$|\bpi\b|\b(?:zero|one|two|three|four|five|six|seven|eight|nine|ten)\b", re.I
)
# A run of mathematics inside prose: numbers, operators, brackets, commands,
# single-letter variables; words of two letters or more end it.
_TOKEN = (
    r"(?:\.?\d[\d,.'\u202f]*\d|\.?\d|[+\-\u2212\u00d7\u00b7*/^=<>\u2264\u2265()\[\]{},&\u03c0\u221a\u221e%\u00b0_|!]"
    r"|\\[a-zA-Z]+|\\[{}%$,\\]|(?<![A-Za-z])(?:[A-Za-z](?![ \t]+[A-Za-z]{2,})|pi|sqrt)(?![A-Za-z])"
    r"|[\u20ac$\u00a3\u00a5\u00b1\u00b2\u00b3\u211d\u2200-\u22ff])"
)
_RUN_RE = re.compile(_TOKEN + r"(?:[ \t]*" + _TOKEN + r")*")
_RUN_HAS_RE = re.compile(r"\d|[\u03c0\u221a\u221e]|\\[a-zA-Z]")
_PERCENT_WORD_RE = re.compile(r"\s*(?:percent|per cent|por ciento|pour cent|prozent|\\?%)", re.I)
_SENTENCE_END_RE = re.compile(r"(?<![\d\s])[.!?。！？](?=\s|$)|(?<=\d)\.(?=\s|$)|\n\s*\n|[。！？]")


@dataclass
class Extraction:
    "The answer a response gives (answer is None when it gives none), how it was found."

    answer: str | None
    how: str
    undecided: str | None = None
    # Earlier final answers that differ in writing and were never corrected: the
    # verdict is undecided unless they all get the same verdict as answer.
    alternatives: tuple = ()


def _closing_braces(text):
    "{index of an opening brace: index of its closing brace}, escaped braces skipped."
    pairs, stack = {}, []
    for i, char in enumerate(text):
        if char in "{}" and i and text[i - 1] == "\\":
            continue
        if char == "{":
            stack.append(i)
        elif char == "}" and stack:
            pairs[stack.pop()] = i
    return pairs


def braced(text, start):
    "The text inside the braces opening at text[start] ('{'), or None if unclosed."
    end = _closing_braces(text[start:]).get(0)
    return None if end is None else text[start + 1 : start + end]


def boxes(text):
    "[(start, end, content)] for every \\boxed{} / \\fbox{} in text."
    found, pairs = [], None
    for match in _BOXED_RE.finditer(text):
        if found and match.start() < found[-1][1]:
            continue  # a box inside a box
        if match.group(1):
            pairs = _closing_braces(text) if pairs is None else pairs
            close = pairs.get(match.start(1))
            if close is not None:
                found.append((match.start(), close + 1, text[match.start(1) + 1 : close]))
        else:  # \boxed 5
            bare = re.match(r"\s*([^\s$]+)", text[match.end() :])
            if bare:
                found.append((match.start(), match.end() + bare.end(), bare.group(1)))
    return found


def last_boxed(text):
    "The content of the last \\boxed{} or \\fbox{} in text, or None."
    found = boxes(text)
    return found[-1][2] if found else None


def _mask_math(text):
    """text with math spans' characters replaced by placeholders of equal length, and the
    dots of abbreviations (i.e., e.g.) too, for sentence splits."""
    text = _ABBREVIATION_RE.sub(lambda m: m.group(0).replace(".", "\x01"), text)
    return _MATH_SPAN_RE.sub(lambda m: "\x00" * len(m.group(0)), text)


_ABBREVIATION_RE = re.compile(r"\b(?:i\.e|e\.g|etc|approx|vs|cf|resp|ca|Nr|z\.B|d\.h)\.", re.I)


def _sentences(text):
    "[(start, end)] of the sentences of text, math spans never split."
    masked = _mask_math(text)
    spans, start = [], 0
    for match in _SENTENCE_END_RE.finditer(masked):
        spans.append((start, match.end()))
        start = match.end()
    spans.append((start, len(text)))
    return [(s, e) for s, e in spans if text[s:e].strip()]


def _span_content(match):
    return next(g for g in match.groups() if g is not None)


_ASIDE_RE = re.compile(r"\s*\((?=[^()]*[A-Za-z]{3,}\s+[A-Za-z]{2,})[^()]*\)")


def answer_from_text(text, either_ok=False, first=True):
    """(answer, hedge) from a region that states an answer: its mathematics, cleaned.
    first: the answer opens the region (after "is"), else it ends it."""
    text = text.strip()[-2000:]  # an answer is short, and ends its sentence
    hedge = _HEDGE_RE.search(text) or (not either_ok and _EITHER_RE.search(text))
    text = _ASIDE_RE.sub("", text)  # "$x = 2$ (the other root $x = -3$ is rejected)"
    spans = list(_MATH_SPAN_RE.finditer(text))
    if spans:
        # Spans joined by connectors are one list of answers: $x=1$ or $x=2$.
        group = [spans[0]]
        for prev, span in zip(spans, spans[1:]):
            if _CONNECTOR_RE.match(text[prev.end() : span.start()]):
                group.append(span)
            else:
                break
        answer = ", ".join(_span_content(s).strip() for s in group)
        tail = text[group[-1].end() :]
        percent = re.match(r"\s*(\\?%|percent\b|per cent\b)", tail, re.I)
        if percent:
            answer += r"\%"
        return _cut_approx(answer), hedge
    bold = [_span_content(m) for m in _BOLD_RE.finditer(text)]
    bold = [b for b in bold if _HAS_MATH_RE.search(b)]
    if bold:
        text = bold[-1]
    text = re.sub(r"\*\*|`|\\(?:boxed|fbox)\s*\{?", "", text)
    text = _NEGATED_RE.sub("", text)  # "24, not 25": the rejected value is no answer
    text = re.sub(r"\s*\(\s*[A-Za-z]{2,}[A-Za-z\s-]*\)", "", text)  # "12 (twelve)"
    text = re.sub(r"^\s*\(?[A-J]\)\s+(?=\S)|^\s*[A-J]\.\s+(?=[-\d(\\])", "", text)  # "(C) 12"
    text = _cut_approx(words_to_numbers(text))
    pieces = re.split(
        r"((?<![\s,])(?:\s*,)?\s+(?:and|or|[yo](?!\s*[=<>+*/^-])|et|ou|und|oder)\s+|(?<!\s)\s*[,;]\s+(?=\D))", text
    )
    parts, separators = pieces[::2], pieces[1::2]
    runs = [_math_run(p) for p in parts]
    if len(parts) > 1 and all(runs) and all(len(r) * 2 >= len(p.strip(" .")) for r, p in zip(runs, parts)):
        # "9 or 10" offers alternatives; "1, 2 and 3" lists answers.
        alternatives = all(re.fullmatch(r"\s*(?:or|o|ou|oder)\s*", sep) for sep in separators)
        return (" or " if alternatives else ", ").join(runs), hedge
    return _math_run(text, first) or re.sub(r"[\s.。,;:!]+$", "", text).strip(), hedge


def _balanced_prefix(run):
    "run cut before a bracket it opens and never closes: '18 (9' -> '18'."
    stack = []
    for i, char in enumerate(run):
        if char in "([":
            stack.append(i)
        elif char in ")]" and stack:
            stack.pop()
    if stack and run[: stack[0]].strip() and _RUN_HAS_RE.search(run[: stack[0]]):
        return run[: stack[0]].strip()
    return run


_NEGATED_RE = re.compile(r",?\s*\b(?:but\s+)?(?:not|rather than|instead of)\s+[^,.;]*", re.I)


def _math_run(text, first=True):
    "The first (or last) run of mathematics in prose (with its percent sign or word), or ''."
    found = [
        m for m in _RUN_RE.finditer(text) if _RUN_HAS_RE.search(m.group(0))
        # an exponent right after a word belongs to a unit: 12 cm^2
        and not (m.group(0).startswith("^") and m.start() and text[m.start() - 1].isalpha())
    ]
    if not found:
        return ""
    chosen = found[0] if first else found[-1]
    run = re.sub(r"^[=:,}\s]+|[=,.\s]+$", "", chosen.group(0).strip())
    run = _balanced_prefix(run)
    if _PERCENT_WORD_RE.match(text[chosen.end() :]) and not run.endswith("%"):
        run += r"\%"
    return run


_NUMBER_WORDS = {
    w: i for i, w in enumerate(
        "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
        "fifteen sixteen seventeen eighteen nineteen".split())
}
_TENS = "twenty thirty forty fifty sixty seventy eighty ninety".split()
_NUMBER_WORDS.update({w: 10 * i for i, w in enumerate(_TENS, 2)})
_SCALES = {"hundred": 100, "thousand": 1000, "million": 10**6, "billion": 10**9}
_WORDS_RE = re.compile(
    r"\b(?:(?:%s)(?:[\s-]+(?:and[\s-]+)?)?)+\b"
    % "|".join(sorted(list(_NUMBER_WORDS) + list(_SCALES), key=len, reverse=True)),
    re.I,
)


_DENOMINATORS = {"half": 2, "halves": 2, "third": 3, "quarter": 4, "fourth": 4, "fifth": 5, "sixth": 6,
                 "seventh": 7, "eighth": 8, "ninth": 9, "tenth": 10}
_FRACTION_WORDS_RE = re.compile(
    r"\b(one|a|two|three|four|five|six|seven|eight|nine)[\s-]+(%s)s?\b" % "|".join(_DENOMINATORS), re.I
)


def words_to_numbers(text):
    "Numbers written as English words turned into digits: 'twenty-five' -> '25', 'two thirds' -> '2/3'."
    text = _FRACTION_WORDS_RE.sub(
        lambda m: f"{_NUMBER_WORDS.get(m[1].lower(), 1)}/{_DENOMINATORS[m[2].lower()]}", text)
    def value(match):
        total = current = 0
        for word in re.findall(r"[a-z]+", match.group(0).lower()):
            if word in _NUMBER_WORDS:
                current += _NUMBER_WORDS[word]
            elif word == "hundred":
                current *= 100
            elif word in _SCALES:
                total += current * _SCALES[word]
                current = 0
        trailing = " " if match.group(0)[-1:].isspace() else ""
        return str(total + current) + trailing

    return _WORDS_RE.sub(value, text)


def _cut_approx(s):
    match = _APPROX_RE.search(s)
    if match and match.start() > 0 and _HAS_MATH_RE.search(s[: match.start()]):
        s = s[: match.start()]
    return s.strip().rstrip(",;")


def _after_copula(sentence):
    """(region, anchored): what a concluding sentence says the answer is, after its
    first "is" (then after the last "=" of a chain) or its last "=" / ":"; anchored
    is False when the sentence has none and the whole sentence is the region."""
    spans = list(_MATH_SPAN_RE.finditer(sentence))
    bold = [m for m in _BOLD_RE.finditer(sentence) if _HAS_MATH_RE.search(_span_content(m))]
    if bold and not spans:
        return _span_content(bold[-1]), True
    masked = _mask_math(sentence)
    copulas = [m for m in _COPULA_RE.finditer(masked) if _HAS_MATH_RE.search(sentence[m.end() :])]
    if spans:
        # Several spans: from the first one after the last "is" / ":" outside them.
        after = [span for span in spans if copulas and span.start() >= copulas[-1].end()]
        first = (after or spans)[0]
        return (sentence[first.start() :] if len(spans) > 1 else first.group(0)), True
    words = [m for m in copulas if m.group(0)[0].isalpha() or m.group(0) in "\u662f\u4e3a\u70ba"]
    if words:
        region = sentence[words[0].end() :]  # "The total is 4 + 6 = 10": what it is
        chain = [m for m in copulas if m.group(0) == "=" and m.start() >= words[0].end()]
        if re.search(r",|\band\b|\bor\b", masked[words[0].end() :]):
            chain = []  # "are x = -3 and x = 1/2" is a list, not a chain
        return (sentence[chain[-1].end() :] if chain else region), True
    if copulas:
        return sentence[copulas[-1].end() :], True
    return sentence, False


def _json_answer(text):
    for match in re.finditer(r"\{[^{}]*\"(?:final_answer|answer|result)\"\s*:", text):
        end = text.find("}", match.end())
        while end != -1:
            raw = text[match.start() : end + 1]
            for candidate in (raw, raw.replace("\\", "\\\\")):
                try:
                    value = json.loads(candidate)
                except ValueError:
                    continue
                for key in ("final_answer", "answer", "result"):
                    if key in value:
                        got = value[key]
                        if isinstance(got, list):
                            return ", ".join(str(g) for g in got)
                        return str(got)
            end = text.find("}", end + 1)
    return None


def _statement_answer(text, match):
    """(answer text, same_line) after a statement phrase: the rest of its sentence,
    else the next line (a heading with the answer below it)."""
    rest = text[match.end() : match.end() + 2000]  # an answer is short
    line = rest.split("\n", 1)[0]
    same_line = bool(re.search(r"\w", line))
    if not same_line:
        lines = [part for part in rest.split("\n") if part.strip()]
        following = [part for part in lines if _HAS_MATH_RE.search(part)] or lines
        line = following[0] if following else ""
    ends = _sentences(line)
    return (line[: ends[0][1]] if ends else line), same_line


_NOT_AN_ANSWER_RE = re.compile(
    r"^\W*(?:to|of|for|in|on|within|with|can|could|will|would|should|must|may|might|is|are|be|was|"
    r"were|that|which|we|you|it|this|and|but|so|as|at|by|from|into|here|there|now|then)\b",
    re.I,
)


def _word_answer(region):
    "True when a region without mathematics can still be an answer: a few words (Evelyn, no solution)."
    words = re.findall(r"\w+", region)
    return 0 < len(words) <= 4 and not _NOT_AN_ANSWER_RE.match(region)


def _differ(a, b):
    return re.sub(r"[\s$*{}.]|\\[,!; ]", "", a) != re.sub(r"[\s$*{}.]|\\[,!; ]", "", b)


def _escape_currency(text):
    "Dollar signs of amounts ($5 for apples and $7) escaped, so they never pair up as maths."
    out, i = [], 0
    while True:
        match = _MATH_SPAN_RE.search(text, i)
        if not match:
            out.append(text[i:])
            return "".join(out)
        content = _span_content(match)
        prose = re.sub(r"\\(?:text|mbox|mathrm|begin|end|operatorname)\{[^{}]*\}|\\[a-zA-Z]+", "", content)
        if match.group(2) is not None and (
            re.search(r"[A-Za-z]{3,}", prose) or (content[:1].isdigit() and content[-1:] in " =+-*")
        ):
            out.append(text[i : match.start()] + "\\$")
            i = match.start() + 1
        else:
            out.append(text[i : match.end()])
            i = match.end()


def extract(text, either_ok=False):
    "An Extraction of the final answer from a response whose reasoning is already removed."
    if text is None or not text.strip():
        return Extraction(None, "empty final answer", "empty final answer")
    text = re.sub(r"<<[^<>\n]*>>", "", text)  # GSM8K calculator annotations: <<48/2=24>>24
    text = _escape_currency(re.sub(r"```[a-zA-Z]*\n?", "", text))
    found = [box for box in boxes(text) if box[2].strip()]  # "put it within \\boxed{}" is no answer
    if found:
        return _from_boxes(text, found, either_ok)
    value = _json_answer(text)
    if value is not None and value.strip():
        return Extraction(value.strip(), "json")
    statements = [m for m in _STATEMENT_RE.finditer(text)]
    statements += [m for m in _HEADING_RE.finditer(text)]
    statements.sort(key=lambda m: m.start())
    answers = []
    for match in statements:
        region, same_line = _statement_answer(text, match)
        if not _HAS_MATH_RE.search(region) and not _word_answer(region):
            continue  # "the final answer can be represented ...", "... to the problem"
        answer, hedge = answer_from_text(region, either_ok)
        if answer:
            answers.append((match, answer, hedge, same_line))
    if answers and _WEAK_RE.fullmatch(answers[-1][0].group(0).strip(" \t*:=")):
        later = _from_conclusion(text[answers[-1][0].end() :], either_ok, concluding_only=True)
        if later.answer:
            return later  # "The result is X. Therefore, X = 1."
    if answers:
        match, answer, hedge, _ = answers[-1]
        if hedge:
            return Extraction(answer, "answer statement", "hedge between answers")
        corrections = [m.start() for m in _CORRECTION_RE.finditer(text)]
        alternatives = []
        for earlier, value, _, same_line in reversed(answers[:-1]):
            corrected = bisect.bisect_left(corrections, earlier.end()) < bisect.bisect_left(corrections, match.start())
            if corrected:
                break
            # A heading's answer is read from the next line: a later statement refines it.
            if same_line and _differ(value, answer) and value not in alternatives:
                alternatives.append(value)
        return Extraction(answer, "answer statement", alternatives=tuple(alternatives[:5]))
    return _from_conclusion(text, either_ok)


def _from_boxes(text, found, either_ok):
    # Boxes side by side, joined only by "and"/"or"/commas, are one answer.
    group = [found[-1]]
    for box in reversed(found[:-1]):
        between = re.sub(r"[$\\()\[\]]|\bx\s*=", " ", text[box[1] : group[0][0]])
        if _CONNECTOR_RE.match(between):
            group.insert(0, box)
        else:
            break
    contents = [_box_content(b[2], either_ok) for b in group]
    answer = ", ".join(c for c in contents if c)
    sentence = _sentence_around(text, group[-1][0], group[-1][1])
    if _HEDGE_RE.search(sentence) or _HEDGE_RE.search(group[-1][2]):
        return Extraction(answer, "boxed", "hedge between answers")
    return Extraction(answer, "boxed")


def _box_content(inner, either_ok):
    "A box's answer; a box holding a sentence (\\boxed{\\text{The answer is } 12}) is read as one."
    words = re.sub(r"\\(?:text|mbox|textbf|mathrm)\{([^{}]*)\}", r"\1", inner)
    outside = re.sub(r"\\[a-zA-Z]+(?:\{[^{}]*\})?", " ", words)
    if not re.search(r"[A-Za-z]{2,}\s+[A-Za-z]{2,}", outside):
        return inner
    statement = list(_STATEMENT_RE.finditer(words))
    region = words[statement[-1].end() :] if statement else _after_copula(words)[0]
    region = re.sub(r"[\s.,;]+$", "", region).strip()
    if not re.search(r"[A-Za-z]{2,}", re.sub(r"\\[a-zA-Z]+(?:\{[^{}]*\})?", " ", region)):
        return region  # what follows the phrase is all mathematics
    answer, _ = answer_from_text(region, either_ok)
    return answer or inner


def _sentence_around(text, start, end):
    for s, e in _sentences(text):
        if s <= start < e:
            return text[s : max(e, end) + 80]
    return text[start : end + 80]


def _from_conclusion(text, either_ok, concluding_only=False):
    sentences = [text[s:e] for s, e in _sentences(text)]
    with_math = [s for s in sentences if _HAS_MATH_RE.search(s)]
    if not with_math:
        return Extraction(None, "no answer found")
    concluding = [s for s in with_math if _CONCLUSION_RE.search(s.replace("**", ""))]
    if concluding_only and not concluding:
        return Extraction(None, "no concluding sentence")
    if concluding:
        chosen = concluding[-1]
    else:
        plain = [s for s in with_math if not _CHECK_RE.search(s.replace("**", ""))]
        chosen = (plain or with_math)[-1]
    # "..., so she has 8 apples": the clause after a conclusion word inside the sentence.
    chosen = _ASIDE_RE.sub("", chosen)
    clauses = re.split(r"[,;]\s+(?:so|thus|therefore|hence)\s+", chosen, flags=re.I)
    region, anchored = _after_copula(clauses[-1])
    # "So she has 150 stickers now, 30 more than ...": a conclusion names its answer first.
    answer, hedge = answer_from_text(region, either_ok, first=anchored or bool(concluding) or len(clauses) > 1)
    hedge = hedge or _HEDGE_RE.search(chosen)
    if not answer:
        return Extraction(None, "no answer found")
    return Extraction(answer, "concluding sentence", "hedge between answers" if hedge else None)

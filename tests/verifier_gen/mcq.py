"""Generated mcq and mcq-multi cases: option sets x prompt layouts x answer surface
forms x surrounding text x reasoning wrappers x languages, and the near misses
that must fail, the hedges and the empty answers that must stay undecided.

Every label follows from how the case is built: a form states a letter (or a
set), the case passes when that is the gold and fails when it is another.
A new surface form is one line in SINGLE_FORMS or MULTI_FORMS.

Placeholders in a single form: {L} the letter, {l} it in lower case, {T} its
option text. In a multi form: {run} "ACD", {comma} "A, C, D", {and} "A, C and D",
{spaces} "A C D", {json} '["A", "C", "D"]', {parens} "(A), (C) and (D)",
{y}/{et}/{und} the Spanish/French/German "and", {dun} "A、C、D", {rest} the
letters not chosen, joined by commas.
"""

import json
import random

from .wrappers import CUT_WRAPPERS, WRAPPERS

OPTION_SETS = [
    ("Which of the following is the SI unit of force?", ["Joule", "Newton", "Watt", "Pascal"]),
    ("A deficiency of which vitamin causes scurvy?", ["Vitamin A", "Vitamin B12", "Vitamin C", "Vitamin D"]),
    ("A car accelerates from rest at 0.7 m/s^2 for 5 s. What is its speed then?",
     ["2.5 m/s", "3.5 m/s", "4.5 m/s", "None of the above"]),
    ("Which gas makes up most of Earth's atmosphere?",
     ["Oxygen", "Carbon dioxide", "Argon", "Nitrogen", "Hydrogen"]),
    ("What is the capital of Australia?",
     ["Sydney", "Melbourne", "Perth", "Brisbane", "Adelaide", "Hobart", "Darwin", "Canberra",
      "Cairns", "Geelong"]),
    ("Find the degree of the extension Q(sqrt(2), sqrt(3)) over Q.", ["0", "4", "2", "6"]),
    ("中国的首都是哪里？", ["上海", "北京", "广州", "深圳"]),
    ("What current flows through the 2 Ω resistor?", ["1.5 A", "6 A", "2.1 A", "4.2 A"]),
    ("Which statement about the enzyme is true?",
     ["It raises the activation energy", "It is consumed by the reaction",
      "It lowers the activation energy", "All of the above"]),
]
MULTI_SETS = [
    ("Which statements about ideal gases are correct? (one or more options may be correct)",
     ["PV = nRT holds at every pressure", "Internal energy depends on volume",
      "Molecules exert no intermolecular forces", "Cp - Cv = R for one mole"]),
    ("Select all prime numbers.", ["2", "9", "11", "15", "17"]),
    ("Which of these are noble gases?", ["Helium", "Nitrogen", "Neon", "Argon"]),
]

LAYOUTS = [
    ("dot lines", lambda q, opts: q + "\n\n" + "\n".join(f"{k}. {t}" for k, t in opts)),
    ("paren lines", lambda q, opts: q + "\n" + "\n".join(f"({k}) {t}" for k, t in opts)),
    ("half paren lines", lambda q, opts: q + "\n" + "\n".join(f"{k}) {t}" for k, t in opts)),
    ("colon lines", lambda q, opts: q + "\nOptions:\n" + "\n".join(f"{k}: {t}" for k, t in opts)),
    ("inline", lambda q, opts: q + " " + " ".join(f"({k}) {t}" for k, t in opts)),
    ("mmlu template", lambda q, opts: "Answer the following multiple choice question. The last line "
        "of your response should be of the following format: 'Answer: $LETTER'.\n\n" + q + "\n\n"
        + "\n".join(f"{k}. {t}" for k, t in opts)),
    ("full-width marks", lambda q, opts: q + "\n" + "\n".join(f"{k}．{t}" for k, t in opts)),
    ("metadata choices", None),
]

# One line per surface form of a single choice.
SINGLE_FORMS = [
    "Answer: {L}", "ANSWER: {L}", "answer: {l}", "**Answer:** {L}", "**Answer: {L}**",
    "The answer is {L}.", "The answer is ({L}).", "the answer is ({L})", "The best answer is {L}.",
    "The correct answer is **{L}) {T}**.", "Correct answer: {L}", "Final Answer: {L}",
    "Final answer: **({L})**", "The correct option is option {L}.", "The correct option is ({l}).",
    "\\boxed{{{L}}}", "$\\boxed{{\\text{{{L}}}}}$", "Therefore, the final answer is $\\boxed{{{L}}}$.",
    "\\[\n\\boxed{{\\text{{({L}) {T}}}}}\n\\]", "\\textbf{{{L}}}", '{{"answer": "{L}"}}',
    "{{'answer': '{L}'}}", '```json\n{{"answer": "{L}", "confidence": 0.9}}\n```',
    "{L}", "({L})", "{L})", "**{L}**", "**{L}. {T}**", "{L}) {T}", "{L}. {T}", "Answer: {L}. {T}",
    "Answer: {L} ({T})", "The answer is {T}.", "So the answer must be {T}.", "I'd go with {L}.",
    "I choose {L}.", "I'll pick ({L}).", "My choice: {L}", "Option {L} is correct.",
    "({L}) is the correct answer.", "{L} is the right one.", "So ({L}) is correct.",
    "### Final Answer\n{L}", "## Answer\n\n**{L}**", "| Question | Answer |\n|---|---|\n| 1 | {L} |",
    "Correct choice: {L} — {T}", "The answer: $({L})$", "→ **{L}**", "{L} ✓",
    "Final Answer: The final answer is {L}. I hope it is correct.",
    "答案：{L}", "答案是 {L}。", "故选{L}。", "正确答案是{L}", "所以答案为（{L}）。", "正解は{L}です。",
    "La respuesta correcta es la {L}.", "Respuesta: {L}", "La bonne réponse est {L}.",
    "Réponse : {L}", "Die richtige Antwort ist {L}.", "Antwort: {L}", "Ответ: {L}", "Resposta: {L}",
]
# Text before the answer, in the final section: {W} a wrong letter, {TW} its text.
LEADS = [
    "",
    "Let me look at each option.\n\n",
    "Option {W} ({TW}) does not fit the question.\n\n",
    "It is not {W}.\n",
    "{W} looks tempting at first, but it does not hold up.\n\n",
    "The options are:\n{echo}\n\n",
    "{W}. {TW}\n\nThis is incorrect.\n\n",
    "{W}) {TW} is incorrect.\n\n",
    "Step 1: read the question.\nStep 2: compare the options.\n\n",
]
# Text after the answer: explanations that name other options.
TAILS = [
    "",
    "\n\nExplanation: {W} ({TW}) is wrong here.",
    "\n\nNote that option {W} is incorrect.",
    "\n\n{W} can be ruled out because it describes something else.",
    "\n\n{W}. {TW} is a different thing altogether, so it cannot be the answer.",
]
REASONING = [
    "The answer is {W}. Hmm, let me keep checking the other options.",
    "Answer: {W}? Maybe. {W} seems right, option {W}.",
    '{{"answer": "{W}"}} is my first guess.',
]


TRAP_KINDS = {True: "revision, elimination, comparative", False: "retracted or rejected gold",
              None: "hedge or conflict"}


def _foreign(form):
    "True for a form in another language than English."
    return not form.isascii() or form.split()[0] in ("La", "Le", "Las", "Les", "Die", "Respuesta:",
                                                      "Antwort:", "Resposta:")


def _options(option_set, count=None):
    question, texts = option_set
    letters = "ABCDEFGHIJ"[: len(texts)]
    return question, list(zip(letters, texts))


def _prompt(layout, question, opts):
    name, build = layout
    if build is None:
        return None, {"choices": [t for _, t in opts]}
    return build(question, opts), {}


def _single(form, letter, texts):
    return form.format(L=letter, l=letter.lower(), T=texts[letter])


def single_cases():
    "Labelled mcq cases."
    rng = random.Random(15)
    cases = []

    def add(opts, layout, response, gold, expected, trap, kind):
        question = OPTION_SETS_BY_ID[opts]
        prompt, metadata = _prompt(layout, *_options(question))
        case = {"verifier": "mcq", "response": response, "gold": gold, "expected": expected,
                "trap": trap, "kind": kind}
        if prompt:
            case["prompt"] = prompt
        if metadata:
            case["metadata"] = metadata
        cases.append(case)

    for i, form in enumerate(SINGLE_FORMS):
        for j in range(3):
            set_id = (i + j) % len(OPTION_SETS)
            question, opts = _options(OPTION_SETS[set_id])
            texts = dict(opts)
            letters = [k for k, _ in opts]
            layout = LAYOUTS[(i + 2 * j) % len(LAYOUTS)]
            gold = rng.choice(letters)
            wrong = rng.choice([k for k in letters if k != gold])
            lead = LEADS[(i + j) % len(LEADS)]
            tail = TAILS[(i * 3 + j) % len(TAILS)]
            if "{echo}" in lead and "{T}" not in form:
                lead = lead.replace("{echo}", "\n".join(f"{k}. {t}" for k, t in opts))
            elif "{echo}" in lead:
                lead = ""
            fill = {"W": wrong, "TW": texts[wrong]}
            around = (lead.format(**fill), tail.format(**fill))
            right = around[0] + _single(form, gold, texts) + around[1]
            kind = "language" if _foreign(form) else "surface form"
            add(set_id, layout, right, gold, True, f"single form {i}: {form!r} / {layout[0]}", kind)
            # The same form stating another letter fails; the lead and tail keep naming {W}.
            other = rng.choice([k for k in letters if k not in (gold, wrong)])
            fill2 = {"W": wrong, "TW": texts[wrong]}
            wrong_text = lead.format(**fill2) + _single(form, other, texts) + tail.format(**fill2)
            add(set_id, layout, wrong_text, gold, False, f"single form {i}, other letter / {layout[0]}",
                kind + ", other letter")
    for name, wrap in WRAPPERS:
        for k, form in enumerate(SINGLE_FORMS[::6]):
            set_id = k % len(OPTION_SETS)
            question, opts = _options(OPTION_SETS[set_id])
            texts, letters = dict(opts), [x for x, _ in opts]
            gold = letters[(k + len(name)) % len(letters)]
            wrong = letters[(k + len(name) + 1) % len(letters)]
            reasoning = REASONING[k % len(REASONING)].format(W=wrong)
            final = _single(form, gold, texts)
            add(set_id, LAYOUTS[k % 6], wrap(final, reasoning), gold, True, f"wrapper {name}, form {form!r}",
                "reasoning wrapper")
            # The gold named only in the reasoning never counts.
            add(set_id, LAYOUTS[k % 6], wrap(_single(form, wrong, texts), reasoning.replace(wrong, gold)),
                gold, False, f"wrapper {name}, gold only in reasoning", "gold only in reasoning")
    for name, cut in CUT_WRAPPERS:
        for k in range(3):
            question, opts = _options(OPTION_SETS[k])
            gold = opts[k][0]
            add(k, LAYOUTS[k], cut(f"So the answer is {gold}. Answer: {gold}"), gold, None,
                f"cut {name}: no final answer", "no final answer")
    _single_traps(rng, add)
    return cases


def _single_traps(rng, add):
    "Revisions, hedges, conflicts, eliminations and comparatives, for every option set."
    traps = [
        # (template, which letter passes: "G" gold passes, None undecided, "fail" fails)
        ("Answer: {W}\nWait, I misread the question. Answer: {G}", True),
        ("Answer: {G}\nWait, I misread the question. Answer: {W}", False),
        ("The answer is {W}.\nHmm, actually {W} is wrong. The correct answer is {G}.", True),
        ("I first thought ({W}), but on reflection the correct option is {G}.", True),
        ("\\boxed{{{W}}} is wrong; the right one is \\boxed{{{G}}}", True),
        ("Not {G}. The answer is {W}.", False),
        ("It can't be {X}, {Y} or {W}, so it must be {G}.", True),
        ("It can't be {X}, {Y} or {G}, so it must be {W}.", False),
        ("{G} over {W}: the other one fails the second condition.", True),
        ("I prefer {W} over {G}.", False),
        ("Option {W} is incorrect. Option {G} is correct.", True),
        ("Option {G} is incorrect. Option {W} is correct.", False),
        ("It's either {G} or {W}, I'm not sure which.", None),
        ("Answer: {G} or {W}", None),
        ("I'm torn between ({G}) and ({W}).", None),
        ("Both {G} and {W} look plausible; I can't decide.", None),
        ("Answer: {G}\nAnswer: {W}", None),
        ("Answer: {W}\n\nThe answer is {G}.", None),
        ("Is it {G} or {W}? Checking both... Final answer: {G}", True),
        ("Is it {G} or {W}? Checking both... Final answer: {W}", False),
        ("Answer: {G}\n\nLet me double-check: yes, that holds.\n\nAnswer: {G}", True),
        ("{G} is the only option that survives; {W}, {X} and {Y} all fail.", True),
        ("Answer: {W}\nWait, no, ({G}).", True),
        ("Answer: {G}\nWait, no, ({W}).", False),
        ("The answer is {W}. Actually, make that {G}.", True),
        ("The answer is {G}. No, scratch that: it's {W}.", False),
        ("**Answer: {W}**\n\nCorrection: it should be {G}, I misread the question.", True),
        ("Answer: {G}. Wait, no.", False),
        ("Answer: {G}\n\nHmm, actually, I'm not sure anymore.", None),
        ("Respuesta: {W}\n\nEspera, no: es la {G}.", True),
        ("答案：{G}\n\n不对，应该选{W}。", False),
        ("Answer: {G}\n\nWait, let me verify with {W}.", True),
        ("Answer: {G}\n\nActually, compare with {W} once more.", True),
        ("{W} and {X} do not hold; {G} does.", True),
        ("{G} is false and {W} is true.", False),
    ]
    for set_id, option_set in enumerate(OPTION_SETS):
        question, opts = _options(option_set)
        letters = [k for k, _ in opts]
        for t, (template, expected) in enumerate(traps):
            g, w, x, y = rng.sample(letters, 4)
            response = template.format(G=g, W=w, X=x, Y=y)
            layout = LAYOUTS[(set_id + t) % (len(LAYOUTS) - 1)]
            add(set_id, layout, response, g, expected, f"trap {t}: {template!r}", TRAP_KINDS[expected])


OPTION_SETS_BY_ID = dict(enumerate(OPTION_SETS))
MULTI_SETS_BY_ID = dict(enumerate(MULTI_SETS))

MULTI_FORMS = [
    "Answer: {run}", "Answer: {comma}", "Answer: {and}", "Answer: {spaces}", "answer: {lower}",
    "Final answer: {and}", "The correct options are {comma}.", "The correct options are {parens}.",
    "Options {and} are correct.", "Statements {and} are correct; {rest} is incorrect.",
    '{{"answer": {json}}}', '{{"answer": "{run}"}}', "[{quoted}]", "\\boxed{{{run}}}",
    "\\boxed{{{comma}}}", "$\\boxed{{\\text{{{comma}}}}}$", "**{run}**", "**Answer:** {semi}",
    "Final Answer: {adjacent}", "Correct: {comma}\nIncorrect: {rest}", "{comma}",
    "So the answer is {parens}.\n\nNote that {rest} is wrong.", "The correct answers are {comma}. {rest} is incorrect.",
    "Answer: {comma} (not {rest_or})", "正确答案是 {run}。", "故选 {dun}", "答案：{run}",
    "Las opciones correctas son {y}.", "Les bonnes réponses sont {et}.",
    "Die richtigen Antworten sind {und}.", "Ответ: {run}",
    "Statements {parens} hold; {rest} do not.", "{comma} are the right ones; {rest} is wrong.",
    "{and} are true, while {rest} are false.", "Answer: {rest}\nWait, no, that is backwards. Answer: {comma}",
    "Answer: {rest}. Actually, make that {run}.", "Las afirmaciones {y} son correctas; {rest} no.",
    "Les affirmations {et} sont vraies, {rest} sont fausses.",
]


def _multi_fill(chosen, letters):
    chosen = sorted(chosen)
    rest = [k for k in letters if k not in chosen] or ["none"]

    def joined(word):
        return chosen[0] if len(chosen) == 1 else ", ".join(chosen[:-1]) + f" {word} " + chosen[-1]

    return {
        "run": "".join(chosen), "comma": ", ".join(chosen), "and": joined("and"),
        "spaces": " ".join(chosen), "lower": ", ".join(c.lower() for c in chosen),
        "json": json.dumps(chosen), "quoted": ", ".join(f'"{c}"' for c in chosen),
        "semi": "; ".join(chosen), "adjacent": "".join(f"({c})" for c in chosen),
        "rest": ", ".join(rest), "rest_or": " or ".join(rest), "dun": "、".join(chosen),
        "y": joined("y"), "et": joined("et"), "und": joined("und"),
    }


def _parens_and(chosen):
    chosen = sorted(chosen)
    if len(chosen) == 1:
        return f"({chosen[0]})"
    return ", ".join(f"({c})" for c in chosen[:-1]) + f" and ({chosen[-1]})"


def multi_cases():
    "Labelled mcq-multi cases, with the Jaccard score partial=True must give."
    rng = random.Random(1515)
    cases = []

    def add(set_id, layout, response, gold, chosen, trap, kind, expected=None):
        question, opts = _options(MULTI_SETS[set_id])
        prompt, metadata = _prompt(layout, question, opts)
        passed = set(gold) == set(chosen) if expected is None and chosen is not None else expected
        case = {"verifier": "mcq-multi", "response": response, "gold": "".join(sorted(gold)),
                "expected": passed, "trap": trap, "kind": kind}
        if chosen is not None:
            g, c = set(gold), set(chosen)
            case["partial_score"] = len(g & c) / len(g | c)
        else:
            case["partial_score"] = None
        if prompt:
            case["prompt"] = prompt
        if metadata:
            case["metadata"] = metadata
        cases.append(case)

    for i, form in enumerate(MULTI_FORMS):
        for j in range(4):
            set_id = (i + j) % len(MULTI_SETS)
            question, opts = _options(MULTI_SETS[set_id])
            letters = [k for k, _ in opts]
            gold = sorted(rng.sample(letters, rng.randint(2, len(letters) - 1)))
            if j == 0:
                chosen = gold
            elif j == 1:
                chosen = gold[:-1]  # a subset
            elif j == 2:
                chosen = sorted(set(gold) | {rng.choice([k for k in letters if k not in gold])})
            else:
                chosen = gold
            fill = _multi_fill(chosen, letters)
            fill["parens"] = _parens_and(chosen)
            response = form.format(**fill)
            layout = LAYOUTS[(i + j) % len(LAYOUTS)]
            kind = ["exact", "subset", "superset", "exact"][j]
            family = "language" if _foreign(form) else "surface form"
            add(set_id, layout, response, gold, chosen, f"multi form {i} ({kind}): {form!r} / {layout[0]}",
                family if kind == "exact" else f"{family}, {kind}")
    for name, wrap in WRAPPERS:
        for k, form in enumerate(MULTI_FORMS[::5]):
            set_id = k % len(MULTI_SETS)
            question, opts = _options(MULTI_SETS[set_id])
            letters = [x for x, _ in opts]
            gold = sorted(letters[: 2 + k % 2])
            fill = _multi_fill(gold, letters)
            fill["parens"] = _parens_and(gold)
            reasoning = f"Maybe the answer is {''.join(letters)}. Answer: {', '.join(letters)}"
            add(set_id, LAYOUTS[k % 6], wrap(form.format(**fill), reasoning), gold, gold,
                f"multi wrapper {name}, form {form!r}", "reasoning wrapper")
            wrong = sorted(letters[-2:])
            fill = _multi_fill(wrong, letters)
            fill["parens"] = _parens_and(wrong)
            add(set_id, LAYOUTS[k % 6], wrap(form.format(**fill), f"Answer: {', '.join(gold)}"), gold, wrong,
                f"multi wrapper {name}, gold only in reasoning", "gold only in reasoning")
    for name, cut in CUT_WRAPPERS:
        add(0, LAYOUTS[0], cut("So the answer is A, C and D. Answer: ACD"), "ACD", None,
            f"multi cut {name}: no final answer", "no final answer")
    for set_id, multi_set in enumerate(MULTI_SETS):
        question, opts = _options(multi_set)
        letters = [k for k, _ in opts]
        gold = sorted(letters[:2])
        more = sorted(letters[:3])
        g, m = ", ".join(gold), ", ".join(more)
        for t, (response, chosen, expected) in enumerate([
            (f"Answer: {m}\n\nCorrection: {letters[2]} is false. Final answer: {g}", gold, None),
            (f"Answer: {g}\n\nOn second thought {letters[2]} holds as well. Final answer: {m}", more, None),
            (f"Either {g} or {m}, I can't tell whether {letters[2]} applies.", None, None),
            (f"Answer: {g}\nAnswer: {m}", None, None),
            (f"{letters[0]} is correct. {letters[1]} is correct. {letters[2]} is not correct.", gold, None),
            (f"- ({letters[0]}) ✓\n- ({letters[1]}) ✓\n- ({letters[2]}) ✗", gold, None),
            (f"Most people pick {m}, but {letters[2]} is wrong.\n\nAnswer: {g}", gold, None),
            ("The correct options are:\n" + "\n".join(f"({k}) {t}" for k, t in opts[:2]), gold, None),
            ("\n".join(f"{k}. {t}" for k, t in opts) + f"\n\nAnswer: {g}", gold, None),
            (f"The last line must be of the following format: Answer: {''.join(more)}\n\nAnswer: {g}", gold, None),
            (f"I answer in the format asked (for example 'Answer: {''.join(more)}').\n\nAnswer: {g}", gold, None),
        ]):
            add(set_id, LAYOUTS[t % 6], response, gold, chosen, f"multi trap {t}",
                "hedge or conflict" if chosen is None else "revision or verdicts", expected)
    return cases


def cases():
    "Every generated case, mcq then mcq-multi."
    return single_cases() + multi_cases()

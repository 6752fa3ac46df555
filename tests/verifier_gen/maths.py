"""Generated `math` cases: answer kinds x surface forms x reasoning wrappers x
languages, plus near misses that must fail and undecided forms.

Every label comes from construction: a rendering of the gold is right, a near
miss is wrong, a hedge between the two or two different final answers is
undecided (None), an answer only inside the reasoning has no final answer.

    from verifier_gen.maths import cases
    for case in cases(): ...   # dicts: response, gold, expected, kind, surface, wrapper, trap

A new answer kind, surface form or wrapper is one line in KINDS, SURFACES or
verifier_gen.wrappers.WRAPPERS.
"""

import random

from .wrappers import CUT_WRAPPERS, WRAPPERS

# (kind, gold, renderings equal to the gold, near misses). A rendering is LaTeX
# unless it starts with "t:", which marks prose (used only in prose surfaces).
KINDS = [
    ("integer", "12", ["12", "+12", "012", "12.0", "t:twelve"], ["13", "-12", "21", "1.2"]),
    ("integer", "-7", ["-7", "t:\u22127", "-(7)", "- 7"], ["7", "-8", "-17"]),
    ("integer", "0", ["0", "t:zero", "-0"], ["1", "o"]),
    ("integer", "1000000", ["1000000", "1,000,000", "1{,}000{,}000", "1\\,000\\,000", "t:1 000 000",
                            "t:1.000.000", "t:1'000'000", "10^6", "t:one million"], ["100000", "1000001", "10^7"]),
    ("integer", "2024", ["2024", "2{,}024", "2,024"], ["2023", "2042", "20.24"]),
    ("integer", "123456789012", ["123456789012", "123,456,789,012"], ["123456789013", "123456789011", "12345678901"]),
    ("integer", "340282366920938463463374607431768211456", ["2^{128}", "340282366920938463463374607431768211456"],
     ["2^{127}", "340282366920938463463374607431768211457"]),
    ("integer", "25", ["25", "a + b = 13 + 12 = 25", "t:twenty-five", "5^2"], ["24", "26", "52"]),
    ("integer", "540", ["540", "540 \\text{ meters}", "t:540 meters"], ["720", "54", "541"]),
    ("decimal", "0.5", ["0.5", ".5", "\\frac{1}{2}", "1/2", "0.50", "\\frac12"], ["0.05", "5", "-0.5", "0.51"]),
    ("decimal", "3.14", ["3.14", "\\frac{157}{50}", "3.140"], ["\\pi", "3.1416", "3.15"]),
    ("decimal", "-2.75", ["-2.75", "-\\frac{11}{4}", "-2\\frac{3}{4}"], ["2.75", "-2.57", "-2.7"]),
    ("fraction", "\\frac{3}{4}", ["\\frac{3}{4}", "\\dfrac{3}{4}", "3/4", "0.75", "\\tfrac34", "\\frac{6}{8}"],
     ["\\frac{4}{3}", "0.74", "\\frac{3}{5}"]),
    ("fraction", "\\frac{7}{2}", ["\\frac{7}{2}", "3\\frac{1}{2}", "3.5", "7/2", "\\dfrac{7}{2}"], ["\\frac{2}{7}", "3\\frac{1}{3}"]),
    ("fraction", "-\\frac{5}{3}", ["-\\frac{5}{3}", "\\frac{-5}{3}", "\\frac{5}{-3}", "-5/3"], ["\\frac{5}{3}", "-\\frac{3}{5}"]),
    ("fraction", "\\frac{1}{2^{30}}", ["\\frac{1}{2^{30}}", "\\frac{1}{1073741824}", "2^{-30}"],
     ["\\frac{1}{2^{31}}", "\\frac{1}{2^{29}}", "\\frac{1}{1073741825}"]),
    ("repeating", "\\frac{4}{3}", ["1.\\overline{3}", "\\frac{4}{3}", "1\\frac{1}{3}"], ["1.3", "1.33", "1.\\overline{4}"]),
    ("repeating", "\\frac{1}{6}", ["0.1\\overline{6}", "\\frac{1}{6}"], ["0.16", "0.\\overline{16}"]),
    ("radical", "2\\sqrt{3}", ["2\\sqrt{3}", "\\sqrt{12}", "2\\sqrt3", "t:2\u221a3", "t:\u221a12"],
     ["\\sqrt{3}", "3\\sqrt{2}", "3.464", "2\\sqrt{5}"]),
    ("radical", "\\frac{\\sqrt{2}}{2}", ["\\frac{\\sqrt{2}}{2}", "\\frac{1}{\\sqrt{2}}", "\\frac{\\sqrt2}{2}"],
     ["\\sqrt{2}", "0.707", "\\frac{\\sqrt{3}}{2}"]),
    ("radical", "3 + \\sqrt{5}", ["3 + \\sqrt{5}", "\\sqrt{5} + 3", "\\sqrt5+3"], ["3 - \\sqrt{5}", "3\\sqrt{5}"]),
    ("pi", "4\\pi", ["4\\pi", "t:4\u03c0", "\\pi \\cdot 4", "4 \\pi", "t:4pi"], ["12.57", "4", "2\\pi", "\\frac{\\pi}{4}"]),
    ("pi", "\\frac{\\pi}{3}", ["\\frac{\\pi}{3}", "\\dfrac{\\pi}{3}", "\\pi/3", "t:\u03c0/3"], ["\\frac{\\pi}{6}", "1.047", "60"]),
    ("pi", "\\frac{3\\pi}{2}", ["\\frac{3\\pi}{2}", "\\frac{3}{2}\\pi", "1.5\\pi"], ["\\frac{2\\pi}{3}", "\\frac{3\\pi}{4}"]),
    ("log", "\\log_2 5", ["\\log_2 5", "\\log_{2}5", "\\frac{\\ln 5}{\\ln 2}"], ["\\log_5 2", "\\log_2 6", "2.32"]),
    ("log", "3", ["3", "\\log_2 8"], ["\\log_2 9", "8"]),
    ("trig", "-\\frac{\\sqrt{3}}{2}", ["-\\frac{\\sqrt{3}}{2}", "-\\frac{\\sqrt3}{2}", "\\frac{-\\sqrt{3}}{2}"],
     ["\\frac{\\sqrt{3}}{2}", "-\\frac{1}{2}", "-\\frac{\\sqrt{2}}{2}"]),
    ("trig", "\\frac{1}{2}", ["\\frac{1}{2}", "0.5", "\\sin 30^\\circ"], ["\\frac{\\sqrt{3}}{2}", "2"]),
    ("percent", "25\\%", ["25\\%", "25", "t:25%", "t:25 percent", "t:twenty-five percent", "25 \\%", "t:25 per cent"],
     ["0.25", "26\\%", "2.5\\%", "250\\%"]),
    ("percent", "12.5\\%", ["12.5\\%", "12.5", "t:12.5%", "\\frac{25}{2}\\%"], ["0.125", "12\\%", "1.25\\%"]),
    ("units", "10", ["10", "10 \\text{ cm}", "10\\text{cm}", "t:10 cm", "10 \\mbox{ units}", "10\\,\\text{m}^2"], ["100", "1"]),
    ("degrees", "60", ["60", "60^\\circ", "60^{\\circ}", "t:60\u00b0", "t:60 degrees"], ["30", "120", "600"]),
    ("money", "18", ["18", "\\$18", "t:$18", "18 \\text{ dollars}", "t:18 dollars", "\\$18.00", "t:\u20ac18"], ["17", "\\$81"]),
    ("money", "1.25", ["1.25", "\\$1.25", "t:$1.25", "\\frac{5}{4}"], ["1.52", "125", "\\$1.20"]),
    ("scientific", "3000000", ["3 \\times 10^6", "3\\times10^{6}", "t:3\u00d710^6", "3 \\cdot 10^{6}", "t:3e6"],
     ["3 \\times 10^7", "3 \\times 10^5", "30 \\times 10^6"]),
    ("scientific", "0.00025", ["2.5 \\times 10^{-4}", "0.00025", "\\frac{1}{4000}"], ["2.5 \\times 10^{-5}", "0.0025"]),
    ("set", "1, 2", ["1, 2", "2, 1", "\\{1, 2\\}", "x = 1, x = 2", "t:x = 1 or x = 2", "t:1 and 2", "x=1 \\text{ or } x=2"],
     ["1", "1, 2, 3", "-1, -2", "1, 3"]),
    ("set", "-2, 2", ["-2, 2", "\\pm 2", "2, -2", "x = \\pm 2", "\\{-2, 2\\}"], ["2", "-2", "-2, 2, 0", "-4, 4"]),
    ("set", "-3, \\frac{1}{2}", ["-3, \\frac{1}{2}", "\\frac12, -3", "\\left\\{-3, \\frac{1}{2}\\right\\}"],
     ["3, -\\frac{1}{2}", "-3", "-3, 2"]),
    ("interval", "(-\\infty, \\infty)", ["(-\\infty, \\infty)", "(-\\infty,\\infty)", "\\mathbb{R}", "t:all real numbers",
                                         "t:(\u2212\u221e, \u221e)", "\\left(-\\infty, \\infty\\right)"],
     ["[0, \\infty)", "(0, \\infty)", "(-\\infty, 0)"]),
    ("interval", "[2, 5)", ["[2, 5)", "[2,5)", "\\left[2, 5\\right)", "2 \\le x < 5", "x \\in [2, 5)"],
     ["[2, 5]", "(2, 5)", "(2, 5]", "[2, 6)"]),
    ("interval", "(-\\infty, -1) \\cup (1, \\infty)", ["(-\\infty, -1) \\cup (1, \\infty)", "(1, \\infty) \\cup (-\\infty, -1)",
                                                       "(-\\infty,-1)\\cup(1,\\infty)", "x < -1 \\text{ or } x > 1"],
     ["(-\\infty, -1] \\cup [1, \\infty)", "(-1, 1)", "(1, \\infty)"]),
    ("interval", "(3, \\infty)", ["(3, \\infty)", "x > 3", "3 < x", "(3,\\infty)"], ["[3, \\infty)", "x \\ge 3", "(-\\infty, 3)"]),
    ("tuple", "(3, \\frac{\\pi}{2})", ["(3, \\frac{\\pi}{2})", "\\left( 3, \\frac{\\pi}{2} \\right)", "(3,\\pi/2)"],
     ["(\\frac{\\pi}{2}, 3)", "(3, \\pi)", "(-3, \\frac{\\pi}{2})"]),
    ("tuple", "(1, -2)", ["(1, -2)", "(1,-2)", "t:(1, \u22122)", "\\left(1, -2\\right)"], ["(-2, 1)", "(1, 2)", "(-1, -2)"]),
    ("tuple", "(6, 31, -1)", ["(6, 31, -1)", "(6,31,-1)"], ["(6, -1, 31)", "(6, 31, 1)", "(6, 31)"]),
    ("vector", "\\begin{pmatrix} 1 \\\\ -2 \\end{pmatrix}", ["\\begin{pmatrix} 1 \\\\ -2 \\end{pmatrix}",
                                                            "\\begin{bmatrix}1\\\\-2\\end{bmatrix}"],
     ["\\begin{pmatrix} -2 \\\\ 1 \\end{pmatrix}", "\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}"]),
    ("matrix", "\\begin{pmatrix} 1 & 2 \\\\ 3 & 4 \\end{pmatrix}", ["\\begin{pmatrix} 1 & 2 \\\\ 3 & 4 \\end{pmatrix}",
                                                                  "\\begin{bmatrix}1&2\\\\3&4\\end{bmatrix}"],
     ["\\begin{pmatrix} 1 & 3 \\\\ 2 & 4 \\end{pmatrix}", "\\begin{pmatrix} 1 & 2 \\\\ 3 & 5 \\end{pmatrix}"]),
    ("complex", "-i", ["-i", "\\frac{1}{i}", "i^3", "0 - i"], ["i", "1 - i", "-1"]),
    ("complex", "3 + 4i", ["3 + 4i", "4i + 3", "3+4i", "(1+2i)^2 + 6"], ["3 - 4i", "4 + 3i", "-3 + 4i"]),
    ("complex", "6 - 5i", ["6 - 5i", "-5i + 6", "6-5i"], ["6 + 5i", "-6 - 5i", "5 - 6i"]),
    ("polynomial", "x^2 + 2x + 1", ["x^2 + 2x + 1", "(x+1)^2", "1 + 2x + x^2", "(x + 1)(x + 1)"],
     ["x^2 + 1", "(x-1)^2", "x^2 + 2x - 1"]),
    ("polynomial", "x^3 - 1", ["x^3 - 1", "(x-1)(x^2+x+1)", "-1 + x^3"], ["(x-1)^3", "x^3 + 1", "(x-1)(x^2-x+1)"]),
    ("polynomial", "p - q", ["p - q", "-q + p"], ["q - p", "p + q"]),
    ("equation", "y = 2x + 3", ["y = 2x + 3", "y = 3 + 2x", "2x - y + 3 = 0", "2x + 3", "2y = 4x + 6"],
     ["y = 2x - 3", "y = 3x + 2", "2x - 3"]),
    ("equation", "x = 5", ["x = 5", "5", "x=5"], ["x = -5", "6"]),
    ("inequality", "x > 3", ["x > 3", "3 < x", "(3, \\infty)"], ["x \\ge 3", "x < 3", "x > 4"]),
    ("inequality", "-1 \\le x \\le 4", ["-1 \\le x \\le 4", "[-1, 4]", "-1 \\leq x \\leq 4"], ["-1 < x < 4", "[-1, 4)", "[1, 4]"]),
    ("base", "1011_2", ["1011_2", "1011_{2}"], ["1101_2", "1011_3", "1111_2"]),
    ("base", "52_8", ["52_8", "52_{8}"], ["25_8", "52_9", "53_8"]),
    ("text", "\\text{Evelyn}", ["\\text{Evelyn}", "t:Evelyn", "\\text{evelyn}"], ["\\text{Bob}", "t:Evelin"]),
]

# Surface forms: (name, mode, template). {a} is the rendered answer; in "math"
# mode it sits inside LaTeX, in "text" mode in prose (LaTeX renderings then
# come wrapped in $...$). {w} is a wrong answer for forms that mention one.
SURFACES = [
    ("boxed", "math", "So the answer is $\\boxed{{{a}}}$."),
    ("boxed-bare", "math", "\\boxed{{{a}}}"),
    ("boxed-display", "math", "Putting it together:\n\\[\n\\boxed{{{a}}}\n\\]"),
    ("boxed-dollars", "math", "Therefore\n$$\\boxed{{{a}}}$$"),
    ("boxed-then-check", "math", "$\\boxed{{{a}}}$\n\nCheck: substituting back, 2 \\cdot 3 + 1 = 7 and 14 / 2 = 7, as required."),
    ("boxed-twice", "math", "We get $\\boxed{{{a}}}$.\n\nDouble-checking the computation again gives $\\boxed{{{a}}}$."),
    ("boxed-after-wrong", "math", "First I got $\\boxed{{{w}}}$, but wait, I made a mistake in step 2. Redoing it: $\\boxed{{{a}}}$."),
    ("fbox", "math", "Final: \\fbox{{${a}$}}"),
    ("boxed-sentence", "math", "\\boxed{{\\text{{The answer is }} {a}}}"),
    ("final-answer-is", "text", "Combining the steps, the final answer is {a}."),
    ("final-answer-colon", "text", "Final Answer: {a}"),
    ("final-answer-more-numbers", "text", "The final answer is {a}. This agrees with the estimate from step 3, where 17 + 26 = 43 and 8 \u00d7 9 = 72."),
    ("answer-colon-line", "text", "Step 1: 4 + 5 = 9.\nStep 2: 9 \u00d7 2 = 18.\n\nAnswer: {a}"),
    ("hashes", "text", "We add 3 and 4 to get 7, then scale.\n#### {a}"),
    ("the-answer-is", "text", "After simplifying, the answer is {a}"),
    ("therefore", "text", "There are 3 cases with 8 outcomes each, 24 in all.\n\nTherefore, the result is {a}."),
    ("plain-last-line", "text", "Working through the algebra carefully gives us the value.\n\n{a}"),
    ("bold", "text", "The result is **{a}**."),
    ("bold-final", "text", "**Final Answer:** {a}"),
    ("heading", "text", "## Solution\nWe simplify step by step: 2 + 2 = 4.\n\n### Final Answer\n\n{a}"),
    ("table", "text", "| quantity | value |\n|---|---|\n| first step | 4 |\n\n**Answer:** {a}"),
    ("code-fence", "text", "```\nAnswer: {a}\n```"),
    ("display-brackets", "math", "The final answer is\n\\[ {a} \\]"),
    ("display-dollars", "math", "The final answer is\n$$ {a} $$"),
    ("inline-paren", "math", "The answer is \\({a}\\)."),
    ("json", "json", '{{"answer": {j}}}'),
    ("json-fence", "json", '```json\n{{"reasoning": "short", "answer": {j}}}\n```'),
    ("self-correction", "text", "The answer is {w}. Wait, that's wrong: I dropped a term. The correct answer is {a}."),
    ("conclusion-then-hypothetical", "text", "So the answer is {a}. If the question had asked for twice that, we would need 144 instead."),
    ("zh-answer", "text", "\u6240\u4ee5\u7b54\u6848\u662f {a}\u3002"),
    ("zh-final", "text", "\u6700\u7ec8\u7b54\u6848\uff1a{a}"),
    ("zh-boxed", "math", "\u6545\u7b54\u6848\u4e3a $\\boxed{{{a}}}$\u3002"),
    ("es-answer", "text", "Por lo tanto, la respuesta es {a}."),
    ("es-final", "text", "Respuesta final: {a}"),
    ("fr-answer", "text", "Donc la r\u00e9ponse finale est {a}."),
    ("fr-final", "text", "R\u00e9ponse finale : {a}"),
    ("de-answer", "text", "Die Antwort lautet {a}."),
    ("de-final", "text", "Endergebnis: {a}"),
]

# Forms a careful grader cannot decide: (name, mode, template) with the right
# answer {a} and a wrong one {w}.
UNDECIDED_SURFACES = [
    ("hedge-either", "text", "The answer is either {a} or {w}, I'm not sure which."),
    ("hedge-not-sure", "text", "I think the answer is {a}, but I'm not sure; it might be {w}."),
    ("two-final-answers", "text", "Final answer: {a}\n\nFinal answer: {w}"),
    ("two-answers-boxed-hedge", "math", "$\\boxed{{{a}}}$, or possibly $\\boxed{{{w}}}$."),
]

REASONING = "Let me think. Maybe it is {w}? That gives \\boxed{{{w}}}. Final answer: {w}. Hmm, let me recompute."


def _plain(latex):
    "Whether a LaTeX rendering reads the same as prose (no $ needed)."
    return all(c.isdigit() or c in " .,-+/" for c in latex)


def render(rendering, mode):
    "A rendering in a surface of the given mode, or None when it does not fit there."
    prose = rendering.startswith("t:")
    value = rendering[2:] if prose else rendering
    if mode == "math":
        return None if prose else value
    if mode == "json":
        import json

        return json.dumps(value)
    return value if prose or _plain(value) else f"${value}$"


def fill(template, mode, answer, wrong):
    "The surface template filled with an answer (and a wrong one), or None."
    a = render(answer, mode)
    w = render(wrong, mode) if wrong is not None else ""
    if a is None or w is None:
        return None
    return template.format(a=a, w=w, j=a)


def cases(seed=0, per_rendering=6):
    "Every generated case (a list of dicts), the same list for the same seed."
    rng = random.Random(seed)
    out = []
    wrappers = [w for w in WRAPPERS]
    turn = 0

    def add(kind, gold, surface, response, expected, trap, wrapper="none", wrong=None):
        out.append({"response": response, "gold": gold, "expected": expected, "kind": kind,
                    "surface": surface, "wrapper": wrapper, "trap": trap})

    for k_index, (kind, gold, renderings, misses) in enumerate(KINDS):
        for r_index, rendering in enumerate(renderings + misses):
            right = r_index < len(renderings)
            wrong_pool = misses if right else renderings
            surfaces = rng.sample(SURFACES, per_rendering)
            for name, mode, template in surfaces:
                wrong = rng.choice(wrong_pool)
                text = fill(template, mode, rendering, wrong)
                if text is None:
                    continue  # a prose rendering has no place inside LaTeX
                wname, wrap = wrappers[turn % len(wrappers)]
                turn += 1
                reasoning = REASONING.format(w=render(wrong, "math") or "0")
                response = wrap(text, reasoning)
                add(kind, gold, name, response, right, f"{kind} {gold} as {rendering} in {name} / {wname}", wname)
        right, wrong = renderings[0], misses[0]
        if kind == "set":  # one box per solution, and one solution short
            elements = [e.strip() for e in right.split(",")]
            for joiner in (" and ", ", ", " or "):
                boxed = joiner.join(f"$\\boxed{{{e}}}$" for e in elements)
                add(kind, gold, "boxed-several", f"The solutions are {boxed}.", True, f"{kind} {gold}: {boxed}")
                boxed = joiner.join(f"$\\boxed{{{e}}}$" for e in elements[:-1])
                add(kind, gold, "boxed-several", f"The solutions are {boxed}.", False, f"{kind} {gold}: {boxed}")
        for name, mode, template in UNDECIDED_SURFACES:
            text = fill(template, mode, right, wrong)
            add(kind, gold, name, text, None, f"{kind} {gold}: {name}")
        # The right answer only inside the reasoning, and a wrong final answer.
        inside = REASONING.format(w=render(right, "math") or right[2:])
        for cname, cut in (CUT_WRAPPERS[(2 * k_index + j) % len(CUT_WRAPPERS)] for j in (0, 1)):
            add(kind, gold, "cut", cut(inside), None, f"{kind} {gold}: right answer only in cut reasoning / {cname}", cname)
        wname, wrap = WRAPPERS[2 + turn % (len(WRAPPERS) - 2)]
        final = fill("So the answer is $\\boxed{{{a}}}$.", "math", wrong, right)
        add(kind, gold, "boxed", wrap(final, inside), False,
            f"{kind} {gold}: right answer only in reasoning, wrong final / {wname}", wname)
    return out

"""The `math` verifier: extract a final answer and decide equivalence with sympy.

Extraction (final answer only) is rsr.verifiers.math_extract: the last
`\\boxed{}`, a JSON answer, the last answer statement (five languages), else the
concluding sentence; hedges, two final answers with different verdicts and an
empty final answer are undecided. Normalisation is rsr.verifiers.math_normalize.

Equivalence, in order, each step only where the previous could not decide:

1. Both sides are normalised (rsr.verifiers.math_normalize): `$`, `\\left`/
   `\\right`, `\\dfrac`, `\\frac12`, thousands separators in several locales,
   units, degrees, `\\%` and percent words, currency, Unicode symbols.
2. Structure: tuples and intervals keep order and brackets, `\\{...\\}` sets and
   bare comma lists do not, unions of intervals, matrices, `a \\pm b`.
3. Numbers that are exact rationals on both sides (integers, decimals,
   fractions, mixed numbers) are compared exactly with `fractions.Fraction`.
4. Anything else is parsed to sympy (LaTeX via latex2sympy2_extended, with
   decimals turned into exact fractions first) and compared exactly: rationals
   by equality, other numbers by `simplify(a - b) == 0`, then by agreement to
   40 significant digits; expressions by `simplify(a - b) == 0`.

There is no tolerance that makes 100000 equal 100001, 0.333 equal 1/3 or
1/2^60 equal 1/2^61. Inputs too large to evaluate safely (exponent towers such
as `10^{10^{10}}`, huge exponents or factorials) are refused before sympy sees
them and recorded as an error with passed NULL; a check that still runs too
long is stopped by the worker-process timeout (see rsr.verifiers.pool).
"""

import re
from fractions import Fraction
from functools import lru_cache

from .base import Verdict, Verifier
from .math_extract import extract, last_boxed  # noqa: F401 (last_boxed is API)
from .math_normalize import normalize

# Longest answer handed to sympy; longer ones are compared as text only.
MAX_SYMPY_CHARS = 400
# Largest exponent (or factorial argument) evaluated exactly.
MAX_EXPONENT = 10_000
MAX_DIGITS = 5_000


class TooLarge(Exception):
    "An answer too large to evaluate safely."


@lru_cache(maxsize=4096)
def is_list(gold):
    "True when a gold answer has several elements (a list or set, not a tuple)."
    return structure(normalize(gold))[0] in ("list", "set")


def is_plain_number(gold):
    return bool(re.fullmatch(r"\s*-?\$?\s*[\d,]*\.?\d+\s*", str(gold)))


# ----------------------------------------------------------------- structure

_OPEN = {"(": ")", "[": "]", "{": "}"}


def split_top(s, sep=","):
    "Split s at sep where no bracket or brace is open."
    parts, depth, start, i = [], 0, 0, 0
    while i < len(s):
        if s.startswith("\\{", i) or s.startswith("\\}", i):
            depth += 1 if s[i + 1] == "{" else -1
            i += 2
            continue
        char = s[i]
        if char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        elif depth == 0 and s.startswith(sep, i):
            parts.append(s[start:i].strip())
            start = i + len(sep)
        i += 1
    parts.append(s[start:].strip())
    return parts


def _enclosed(s, opener, closer):
    "True when s[0] is opener and its match is the last character."
    if not s or s[0] != opener or s[-1] != closer:
        return False
    depth = 0
    for i, char in enumerate(s):
        if char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
            if depth == 0 and i != len(s) - 1:
                return False
    return True


def structure(s):
    "A normalised answer as a nested tuple: ('set'|'tuple'|'list'|'matrix'|'union'|'eq'|'pm'|'scalar', ...)."
    s = s.strip()
    s = re.sub(r"^[\[(]\s*(\\begin\{(\w+)\}.*\\end\{\2\})\s*[\])]$", r"\1", s, flags=re.S)  # [\begin{array}...]
    matrix = re.fullmatch(r"\\begin\{([pbBvV]?matrix|array)\}(?:\{[lcr|]*\})?(.*)\\end\{\1\}", s, re.S)
    if matrix:
        rows = [r for r in re.split(r"\\\\", matrix.group(2)) if r.strip()]
        return ("matrix", tuple(tuple(structure(c.strip()) for c in r.split("&")) for r in rows))
    inequality = _interval_of_inequality(s)
    if inequality:
        return inequality
    pieces = re.split(r"\s+or\s+", s)
    if len(pieces) > 1 and all(_interval_of_inequality(p) for p in pieces):
        return ("union", tuple(sorted((_interval_of_inequality(p) for p in pieces), key=repr)))
    if "\\cup" in s:
        return ("union", tuple(sorted((structure(p.strip()) for p in s.split("\\cup")), key=repr)))
    membership = re.fullmatch(r"[a-zA-Z]\s*\\in\s*(.+)", s)
    if membership:
        return structure(membership.group(1))
    if s.startswith("\\{") and s.endswith("\\}"):
        return ("set", _unordered(split_top(s[2:-2])))
    if len(s) >= 2 and s[0] in "([" and s[-1] in ")]" and (
        _enclosed(s, s[0], s[-1]) or _enclosed(s[0] + s[1:-1] + _OPEN[s[0]], s[0], _OPEN[s[0]])
    ):
        parts = split_top(s[1:-1])
        if len(parts) > 1:
            return ("tuple", s[0] + s[-1], tuple(structure(p) for p in parts))
    parts = split_top(s)
    if len(parts) == 1 and re.search(r"\s(?:or|and)\s", s):
        parts = [p for p in re.split(r"\s+(?:or|and)\s+", s) if p]  # x = 1 or x = 2
    if len(parts) > 1:
        return ("list", _unordered(parts))
    sides = split_top(s, "=")
    if len(sides) == 2:
        lhs, rhs = sides
        return ("eq", lhs, rhs)
    if len(sides) > 2 and sides[-1]:
        return structure(sides[-1])  # a chain a + b = 7 + 5 = 12 ends in its answer
    pm = split_top(s, "\\pm")
    if len(pm) == 2 and pm[1]:
        left = pm[0] or "0"
        return ("set", _unordered([f"{left}+{pm[1]}", f"{left}-({pm[1]})"]), "pm")
    return ("scalar", s)


_REL = r"(<|>|\\le|\\ge)(?![a-zA-Z])"
_VAR = r"([a-zA-Z])"


def _interval_of_inequality(s):
    "x > 3, 3 < x, 1 < x \\le 4 as the interval structure they describe, else None."
    double = re.fullmatch(r"(.+?)\s*" + _REL + r"\s*" + _VAR + r"\s*" + _REL + r"\s*(.+)", s)
    if double and double[2] in ("<", r"\le") and double[4] in ("<", r"\le"):
        lo, hi = double[1], double[5]
        return ("tuple", ("(" if double[2] == "<" else "[") + (")" if double[4] == "<" else "]"),
                (structure(lo), structure(hi)))
    single = re.fullmatch(_VAR + r"\s*" + _REL + r"\s*([^<>=]+)", s)
    flipped = re.fullmatch(r"([^<>=]+?)\s*" + _REL + r"\s*" + _VAR, s)
    if single:
        relation, bound = single[2], single[3]
    elif flipped and not re.fullmatch(r"[a-zA-Z]", flipped[1].strip()):
        relation, bound = {"<": ">", ">": "<", r"\le": r"\ge", r"\ge": r"\le"}[flipped[2]], flipped[1]
    else:
        return None
    strict = relation in "<>"
    if relation in (">", r"\ge"):
        return ("tuple", ("(" if strict else "[") + ")", (structure(bound.strip()), structure(r"\infty")))
    return ("tuple", "(" + (")" if strict else "]"), (structure(r"-\infty"), structure(bound.strip())))


def _unordered(parts):
    "Structures of parts, sorted; a ± element counts as its two values."
    found = []
    for part in parts:
        if not part:
            continue
        item = structure(part)
        if item[0] == "set" and item[2:] == ("pm",):
            found.extend(item[1])
        else:
            found.append(item)
    return tuple(sorted(found, key=repr))


def _is_symbol(s):
    return bool(re.fullmatch(r"[a-zA-Z](?:_\{?\w+\}?)?|\\[a-zA-Z]+|[a-zA-Z]\([a-zA-Z]\)", s.strip()))


# -------------------------------------------------------------- equivalence

_RATIONAL_PATTERNS = (
    (re.compile(r"(-?)(\d+)"), lambda m: Fraction(int(m[2])) * (-1 if m[1] else 1)),
    (re.compile(r"-?\d*\.\d+|-?\d+\.\d*"), lambda m: Fraction(m[0])),
    (re.compile(r"(-?\d+(?:\.\d+)?)[eE]([+-]?\d{1,3})"), lambda m: Fraction(m[1]) * Fraction(10) ** int(m[2])),
    (re.compile(r"(-?)\\frac\{\s*(-?\d+(?:\.\d+)?)\s*\}\{\s*(-?\d+(?:\.\d+)?)\s*\}"),
     lambda m: (-1 if m[1] else 1) * Fraction(m[2]) / Fraction(m[3])),
    (re.compile(r"(-?\d+(?:\.\d+)?)\s*/\s*(-?\d+(?:\.\d+)?)"), lambda m: Fraction(m[1]) / Fraction(m[2])),
    # Repeating decimals: 0.\overline{3}, 1.1\overline{6}, 0.\dot{3}.
    (re.compile(r"(-?)(\d*)\.(\d*)\\(?:overline|dot)\{?(\d+)\}?"), lambda m: (-1 if m[1] else 1) * (
        Fraction(int(m[2] or 0)) + Fraction(int(m[3] or 0), 10 ** len(m[3]))
        + Fraction(int(m[4]), (10 ** len(m[4]) - 1) * 10 ** len(m[3])))),
    # Scientific notation: 3 \times 10^{6}, 2.5\cdot10^-3.
    (re.compile(r"(-?\d+(?:\.\d+)?)(?:\\times|\\cdot|\*|x)10\^\{?(-?\d{1,3})\}?"),
     lambda m: Fraction(m[1]) * Fraction(10) ** int(m[2])),
    # Mixed numbers: 1\frac{4}{5}, 137 \frac{1}{2}.
    (re.compile(r"(-?)(\d+)\s*\\frac\{\s*(\d+)\s*\}\{\s*(\d+)\s*\}"),
     lambda m: (-1 if m[1] else 1) * (int(m[2]) + Fraction(int(m[3]), int(m[4])))),
)


def as_rational(s):
    "s as an exact Fraction when it is a plain rational number, else None."
    s = s.replace(" ", "")
    if len(s) > MAX_DIGITS:
        return None
    for pattern, make in _RATIONAL_PATTERNS:
        match = pattern.fullmatch(s)
        if match:
            try:
                return make(match)
            except ZeroDivisionError:
                return None
    return None


_TOWER_RE = re.compile(r"\^\s*\{[^{}]*\^|\^\s*[\w.]+\s*\^|\*\*[^*]*\*\*")
_EXPONENT_RE = re.compile(r"(?:\^|\*\*)\s*\{?\s*\(?\s*(\d+(?:\.\d+)?)")
_FACTORIAL_RE = re.compile(r"(\d+)\s*!")


def check_size(s):
    "Raise TooLarge for answers whose evaluation could take unbounded time or memory."
    if len(s) > MAX_SYMPY_CHARS:
        raise TooLarge(f"answer longer than {MAX_SYMPY_CHARS} characters")
    if _TOWER_RE.search(s):
        raise TooLarge("exponent tower")
    for match in _EXPONENT_RE.finditer(s):
        if float(match.group(1)) > MAX_EXPONENT:
            raise TooLarge(f"exponent {match.group(1)} larger than {MAX_EXPONENT}")
    for inner in re.findall(r"(?:\(([^()]*)\)|\{([^{}]*)\})\s*!", s):
        if not re.fullmatch(r"\s*\d{1,3}\s*", "".join(inner)):
            raise TooLarge("factorial of an expression")
    for match in _FACTORIAL_RE.finditer(s):
        if int(match.group(1)) > 1000:
            raise TooLarge(f"factorial of {match.group(1)}")
    for digits in re.findall(r"\d+", s):
        if len(digits) > MAX_DIGITS:
            raise TooLarge(f"a number with more than {MAX_DIGITS} digits")


def _exact_decimals(s):
    "Decimals as exact LaTeX fractions, so sympy never sees a float: 0.25 -> \\frac{25}{100}."
    def fraction(match):
        whole, frac = match.group(1), match.group(2)
        return r"\frac{%s}{%s}" % (int(whole + frac) if (whole + frac) else 0, 10 ** len(frac))

    return re.sub(r"(?<![\d.])(\d*)\.(\d+)(?![\d.])", fraction, s)


_SYMPY_CACHE = {}


def to_sympy(s):
    "s parsed to a sympy expression (LaTeX or plain text), or None if it does not parse."
    if s in _SYMPY_CACHE:
        return _SYMPY_CACHE[s]
    check_size(s)
    from latex2sympy2_extended import latex2sympy

    text = _exact_decimals(s)
    try:
        expr = latex2sympy(text)
    except Exception:  # the parser raises bare Exceptions on input it cannot read
        expr = None
    if not _is_expr(expr):
        expr = _plain_sympy(text)
    if len(_SYMPY_CACHE) > 5000:
        _SYMPY_CACHE.clear()
    _SYMPY_CACHE[s] = expr
    return expr


def _is_expr(expr):
    import sympy

    return isinstance(expr, (sympy.Basic, sympy.MatrixBase)) and not isinstance(expr, str)


def _plain_sympy(s):
    import sympy
    from sympy.parsing.sympy_parser import (
        TokenError, convert_xor, implicit_multiplication_application, parse_expr,
        standard_transformations,
    )

    if not re.fullmatch(r"[\w\s+\-*/^().]+", s):
        return None
    try:
        return parse_expr(
            s, transformations=standard_transformations + (implicit_multiplication_application, convert_xor),
            evaluate=True, local_dict={"e": sympy.E, "pi": sympy.pi},
        )
    except (SyntaxError, TypeError, ValueError, AttributeError, NameError, TokenError):
        return None


def sympy_equal(a, b):
    "Exact equivalence of two sympy expressions (see the module docstring)."
    import sympy

    if isinstance(a, sympy.MatrixBase) or isinstance(b, sympy.MatrixBase):
        if not (isinstance(a, sympy.MatrixBase) and isinstance(b, sympy.MatrixBase)):
            return False
        if a.shape != b.shape:
            return False
        return all(sympy_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, (sympy.Eq, sympy.logic.boolalg.Boolean, sympy.Set)) or isinstance(
        b, (sympy.Eq, sympy.logic.boolalg.Boolean, sympy.Set)
    ):
        return a == b  # equations and relations are compared side by side before this
    if a == b:
        return True
    if a.is_Rational and b.is_Rational:
        return False
    if a.free_symbols != b.free_symbols and (a.is_number or b.is_number):
        return False
    if _differ_at_points(a, b):
        return False  # clearly different somewhere: no need to simplify
    if sympy.expand(a - b) == 0:
        return True
    diff = sympy.simplify(a - b)
    if diff == 0:
        return True
    if a.is_number and b.is_number:
        va, vb = sympy.N(a, 50), sympy.N(b, 50)
        if va.is_finite and vb.is_finite and va.is_comparable is not False:
            scale = max(abs(va), abs(vb), sympy.Integer(1))
            return bool(abs(va - vb) <= sympy.Float("1e-40", 50) * scale)
    return False


def _differ_at_points(a, b):
    """True when a and b evaluate to clearly different numbers (at a few rational
    points for their symbols): a cheap rejection before simplify. Never used to accept."""
    import sympy

    symbols = sorted(a.free_symbols | b.free_symbols, key=str)
    points = [{}] if not symbols else [
        {s: sympy.Rational(p + 3 * i, 7 + i) for i, s in enumerate(symbols)} for p in (2, 5)
    ]
    for point in points:
        try:
            va = complex(sympy.N(a.subs(point), 30))
            vb = complex(sympy.N(b.subs(point), 30))
        except (TypeError, ValueError, ZeroDivisionError, OverflowError):
            return False
        if any(v != v or abs(v) == float("inf") for v in (va, vb)):
            return False
        if abs(va - vb) > 1e-9 * max(1.0, abs(va), abs(vb)):
            return True
    return False


def _plain_text(s):
    return re.sub(r"[\s{}()\\]|text|mbox|mathrm", "", s).lower()


def scalar_equal(gold, answer, percent_gold=False):
    "Equivalence of two normalised scalar answers."
    if gold == answer or gold.replace(" ", "") == answer.replace(" ", ""):
        return True, "same text"
    g, a = as_rational(gold), as_rational(answer)
    if g is not None and a is not None:
        if g == a:
            return True, "equal rationals"
        return False, "different rationals"
    if re.search(r"\d_\{?\w", gold + answer):
        # Numbers in other bases (52_8) are compared as written.
        equal = _plain_text(gold) == _plain_text(answer)
        return equal, "same base-n number" if equal else "different base-n number"
    if re.fullmatch(r"[A-Za-z][A-Za-z ]*", gold) and len(gold) > 1:
        equal = _plain_text(gold) == _plain_text(answer)
        return equal, "same words" if equal else "different words"
    ga, aa = to_sympy(gold), to_sympy(answer)
    if ga is None or aa is None:
        equal = _plain_text(gold) == _plain_text(answer)
        return equal, "same text" if equal else "unparsable, different text"
    ga, aa = _imaginary(ga, aa)
    if sympy_equal(ga, aa):
        return True, "sympy equal"
    return False, "sympy different"


def _imaginary(*exprs):
    "The expressions with the symbol i read as the imaginary unit where either has it."
    import sympy

    i = sympy.Symbol("i")
    if any(isinstance(e, sympy.Basic) and i in e.free_symbols for e in exprs):
        return tuple(e.subs(i, sympy.I) if isinstance(e, sympy.Basic) else e for e in exprs)
    return exprs


def equal(gold, answer, percent_gold=False):
    "(equal, why) for two structures from structure()."
    kind = gold[0]
    if kind == "eq" and answer[0] != "eq":
        if _is_symbol(gold[1]):
            return equal(structure(gold[2]), answer, percent_gold)
        return False, "gold is an equation"
    if answer[0] == "eq" and kind != "eq":
        # x = 3 for 3, and a + b = 12 for 12: an answer written as what it equals.
        return equal(gold, structure(answer[2]), percent_gold)
    if kind == "scalar" and answer[0] in ("list", "set") and answer[1]:
        # The same value written twice (15\\frac{39}{40}, or \\frac{639}{40}) is that value.
        if all(equal(gold, element, percent_gold)[0] for element in answer[1]):
            return True, "every form given is equal"
    if {kind, answer[0]} == {"matrix", "tuple"}:
        # A vector written as a tuple: (3, -1) for a column or row matrix.
        matrix, other = (gold, answer) if kind == "matrix" else (answer, gold)
        cells = [c for row in matrix[1] for c in row]
        if len(matrix[1]) == 1 or all(len(row) == 1 for row in matrix[1]):
            pair = (cells, list(other[2])) if kind == "matrix" else (list(other[2]), cells)
            return _all_equal(*pair, percent_gold, ordered=True)
    if kind != answer[0]:
        # A one-element tuple or set never matches a bare scalar; lists and sets
        # written in different notations do.
        if {kind, answer[0]} == {"set", "list"}:
            return equal(("set", gold[1]), ("set", answer[1]), percent_gold)
        return False, f"{answer[0]} where gold is {kind}"
    if kind == "scalar":
        return scalar_equal(gold[1], answer[1], percent_gold)
    if kind == "eq":
        if _is_symbol(gold[1]) and _is_symbol(answer[1]) and gold[1] == answer[1]:
            return equal(structure(gold[2]), structure(answer[2]), percent_gold)
        forward = scalar_equal(f"{gold[1]}-({gold[2]})", f"{answer[1]}-({answer[2]})")[0]
        backward = scalar_equal(f"{gold[1]}-({gold[2]})", f"{answer[2]}-({answer[1]})")[0]
        same = forward or backward or _proportional(f"{gold[1]}-({gold[2]})", f"{answer[1]}-({answer[2]})")
        return same, "same equation" if same else "different equation"
    if kind == "tuple":
        if gold[1] != answer[1]:
            return False, f"brackets {answer[1]} where gold has {gold[1]}"
        return _all_equal(gold[2], answer[2], percent_gold, ordered=True)
    if kind == "matrix":
        if len(gold[1]) != len(answer[1]) or any(len(x) != len(y) for x, y in zip(gold[1], answer[1])):
            return False, "different matrix shape"
        return _all_equal([c for r in gold[1] for c in r], [c for r in answer[1] for c in r], percent_gold, True)
    return _all_equal(gold[1], answer[1], percent_gold, ordered=False)


def _proportional(gold, answer):
    "True when two expressions (equations moved to one side) differ by a constant factor."
    import sympy

    g, a = to_sympy(gold), to_sympy(answer)
    if g is None or a is None or not g.free_symbols or a == 0:
        return False
    ratio = sympy.simplify(g / a)
    return bool(ratio.is_number and ratio != 0)


def _all_equal(golds, answers, percent_gold, ordered):
    if len(golds) != len(answers):
        return False, f"{len(answers)} elements where gold has {len(golds)}"
    if ordered:
        for g, a in zip(golds, answers):
            if not equal(g, a, percent_gold)[0]:
                return False, "an element differs"
        return True, "all elements equal"
    remaining = list(answers)
    for g in golds:
        for i, a in enumerate(remaining):
            if equal(g, a, percent_gold)[0]:
                del remaining[i]
                break
        else:
            return False, "an element has no match"
    return True, "same elements"


def _percent(s):
    stripped = re.sub(r"\s*\\?%\s*$", "", s)
    return stripped, stripped != s


def compare(gold, answer):
    "(passed, why) for a gold answer and an extracted answer, both raw strings."
    g, percent_gold = _percent(normalize(gold))
    a = normalize(answer)
    sides = split_top(a, "=")
    if len(sides) > 2 and _percent(sides[-1])[1] and not percent_gold:
        a = "=".join(sides[:-1])  # 1/5 = 0.2 = 20%: the chain's value before it turns to percent
    a, _ = _percent(a)
    if g == a:
        return True, "same text"
    gold_structure = structure(g)
    if gold_structure[0] == "tuple":
        a = _assignments_as_tuple(a, gold_structure[1])
    return equal(gold_structure, structure(a), percent_gold)


def _assignments_as_tuple(s, brackets):
    "x = 3, y = -1 (variables in the order written) as the tuple (3, -1); anything else unchanged."
    parts = split_top(s)
    sides = [split_top(p, "=") for p in parts]
    if len(parts) < 2 or any(len(x) != 2 or not re.fullmatch(r"[a-zA-Z](?:_\d)?", x[0].strip()) for x in sides):
        return s
    return brackets[0] + ", ".join(x[1] for x in sides) + brackets[1]


def _solutions_of_one_unknown(options):
    """True for "x = 2 or x = -3": every alternative gives the same unknown a value,
    so together they are an equation's solutions (a list, compared as one), not a
    hedge between answers."""
    sides = [re.fullmatch(r"\s*([a-zA-Z])\s*=\s*([^=]+)", o) for o in options]
    return all(sides) and len({m[1] for m in sides}) == 1


class MathVerifier(Verifier):
    "Mathematical equivalence of the final answer with metadata.answer."

    name = "math"
    description = "Maths answers (\\boxed{}, answer statements, the concluding sentence) compared exactly with sympy"
    # sympy can run for a long time: checks run in worker processes with a hard timeout.
    inline = False
    needs_prompt = False

    can_vote = True

    def vote_answer(self, answer, metadata, *, prompt=None):
        "The extracted final answer; None for a hedge, two different answers or none."
        found = extract(answer)
        if found.undecided or found.answer is None:
            return None
        if found.alternatives and any(not self.same_answer(found.answer, other)
                                      for other in found.alternatives):
            return None
        return found.answer

    def same_answer(self, first, second):
        "Equal as compare() decides, with the first read as the gold; too large to decide is unequal."
        try:
            return compare(first, second)[0]
        except (TooLarge, RecursionError):
            return False

    def check(self, answer, metadata, *, prompt=None):
        gold = metadata.get("answer")
        if gold is None or str(gold).strip() == "":
            return Verdict(None, None, None, {"reason": "no gold answer"}, "no gold answer")
        gold = str(gold)
        found = extract(answer, either_ok=is_list(gold))
        details = {"gold": gold, "found_by": found.how}
        if found.undecided:
            details["reason"] = found.undecided
            return Verdict(None, None, found.answer, details, found.undecided)
        if found.answer is None:
            return Verdict(False, 0.0, None, {"reason": found.how, "gold": gold})
        try:
            passed, why = compare(gold, found.answer)
            options = re.split(r"\s+or\s+", found.answer) if " or " in found.answer else []
            if (len(options) > 1 and not is_list(gold) and not _solutions_of_one_unknown(options)
                    and len({compare(gold, o)[0] for o in options}) > 1):
                details["reason"] = "hedge between answers"
                return Verdict(None, None, found.answer, details, "hedge between answers")
            if any(compare(gold, other)[0] != passed for other in found.alternatives):
                details["reason"] = "two different final answers"
                details["alternatives"] = list(found.alternatives)
                return Verdict(None, None, found.answer, details, "two different final answers")
        except TooLarge as ex:
            details["reason"] = f"refused: {ex}"
            return Verdict(None, None, found.answer, details, f"too large to evaluate: {ex}")
        except RecursionError:
            details["reason"] = "refused: nested too deeply"
            return Verdict(None, None, found.answer, details, "too deeply nested to evaluate")
        details["reason"] = why
        return Verdict(passed, float(passed), found.answer, details)

"""Normalising a maths answer to a canonical LaTeX-ish string before it is
compared (the `math` verifier; see rsr.verifiers.maths): Unicode symbols,
thousands separators in several locales, units, degrees, currency, percent
words, number words, `\\mathbb{R}`, and LaTeX spelling variants."""

import re
from functools import lru_cache

from .math_extract import words_to_numbers

_UNICODE = {
    "\u2212": "-", "\u2013": "-", "\u2014": "-", "\u00d7": r"\times ", "\u22c5": r"\cdot ",
    "\u00b7": r"\cdot ", "\u03c0": r"\pi ", "\u221e": r"\infty ", "\u2264": r"\le ",
    "\u2265": r"\ge ", "\u00b0": r"^\circ", "\u00bd": r"\frac{1}{2}", "\u00bc": r"\frac{1}{4}",
    "\u00be": r"\frac{3}{4}", "\u00b1": r"\pm ", "\u2009": " ", "\u00a0": " ", "\u202f": " ",
    "\u00b2": "^2", "\u00b3": "^3", "\u211d": r"\mathbb{R}", "\u222a": r"\cup ", "\u2208": r"\in ",
    "\u20ac": "", "\u00a3": "", "\u00a5": "", "\u2234": "", "\u2229": r"\cap ", "\uff0c": ",",
    "\uff1a": ":", "\u2260": r"\ne ",
}
_PERCENT_WORDS_RE = re.compile(r"\s*\b(?:percent|per cent|por ciento|pour cent|prozent)\b", re.I)
_REALS_RE = re.compile(
    r"\\mathbb\s*\{?\s*R\s*\}?|\\(?:text|mbox)\{\s*all real numbers\s*\}|all real numbers|\\R\b"
)
_UNIT_WORDS = (
    "cm|mm|km|m|kg|g|mg|lb|lbs|oz|ft|feet|foot|in|inch|inches|yd|yards?|miles?|meters?|"
    "centimeters?|kilometers?|seconds?|secs?|s|minutes?|mins?|hours?|hrs?|days?|weeks?|"
    "months?|years?|dollars?|cents?|units?|degrees?|sq|square|cubic|liters?|l|ml|mph|"
    "people|students|apples|points|percent|pounds?|gallons?|marbles|pages|books"
)
_UNIT_TAIL_RE = re.compile(
    r"^(?P<value>.*?[\d}])\s*(?:\\(?:text|mbox|mathrm|textbf)\{\s*[^{}]*\}|\b(?:" + _UNIT_WORDS
    + r")\b\.?)(?:\s*\^\s*\{?[23]\}?)?\s*$"
)


@lru_cache(maxsize=8192)  # golds repeat across a prompt's rollouts
def normalize(text):
    "A canonical LaTeX-ish string for comparison (see the module docstring)."
    s = str(text).strip()
    for old, new in _UNICODE.items():
        s = s.replace(old, new)
    s = re.sub(r"\u221a\s*\(([^()]*)\)", r"\\sqrt{\1}", s)
    s = re.sub(r"\u221a\s*(\d+|[a-zA-Z])", r"\\sqrt{\1}", s)
    s = s.replace("\n", " ")
    s = re.sub(r"^\$+|\$+$", "", s).strip()
    s = re.sub(r"^\\\(|\\\)$|^\\\[|\\\]$", "", s).strip()
    s = _PERCENT_WORDS_RE.sub(r"\\%", s)
    s = re.sub(r"\\varnothing|\u2205|\\\{\s*\\\}", r"\\emptyset", s)
    s = re.sub(r"\\langle\s*(.*?)\s*\\rangle", r"(\1)", s)  # a vector <3, -1>
    # Set-builder notation: \{x \mid x > 3\} is its condition.
    s = re.sub(r"^\\\{\s*[a-zA-Z]\s*(?:\\in\s*[^|:]*?)?\s*(?:\\mid|\||:)\s*(.+?)\s*\\\}$", r"\1", s)
    s = _REALS_RE.sub(r"(-\\infty, \\infty)", s)
    s = s.replace("<=", r"\le ").replace(">=", r"\ge ")
    s = re.sub(r"\\(?:leq|leqslant)(?![a-zA-Z])", r"\\le", s)
    s = re.sub(r"\\(?:geq|geqslant)(?![a-zA-Z])", r"\\ge", s)
    s = re.sub(r"\\(?:displaystyle|textstyle|left|right|big|Big|bigg|Bigg)(?![a-zA-Z])", "", s)
    s = re.sub(r",\s*\\!\s*", ",", s).replace(r"\!", "").replace("{,}", ",")
    s = re.sub(r"\\[dt]frac", r"\\frac", s)
    # Thin spaces between digit groups are thousands separators: 1\,000.
    s = re.sub(r"(?<=\d)(?:(?<!\\)\\[,;: ]|~|\s)(?=\d{3}(?!\d))", "", s)
    s = re.sub(r"(?<!\\)\\[,;: ]|~|\\quad|\\qquad", " ", s)
    # Degrees inside a trigonometric function are an angle: \sin 30^\circ.
    s = re.sub(r"(\\(?:sin|cos|tan|cot|sec|csc)\s*\(?\s*)(\d+(?:\.\d+)?)\s*\^\s*\{?\s*\\circ\s*\}?",
               r"\1(\2\\pi/180)", s)
    s = re.sub(r"\^\s*\{?\s*\\circ\s*\}?|\\circ", "", s)
    s = re.sub(r"\\?\$", "", s)
    s = re.sub(r"\\text\{\s*\}", "", s)
    s = s.rstrip(" .")
    # Units written after a number: 15\mbox{ cm}^2, 5.4 \text{ cents}, 18 dollars.
    for _ in range(2):
        unit = _UNIT_TAIL_RE.match(s)
        if unit and not re.fullmatch(r"\\(?:text|mbox)\{.*\}", s):
            s = unit.group("value").strip()
    whole_text = re.fullmatch(r"\\(?:text|mbox|mathrm|textbf)\{([^{}]*)\}", s)
    if whole_text:
        s = whole_text.group(1).strip()
    s = re.sub(r"\\(?:text|mbox|mathrm|textbf)\{([^{}]*)\}", r"\1", s)
    # \frac12, \frac1{2}, \frac{1}2, \sqrt2
    s = re.sub(r"\\frac\s*(\d)\s*(\d)", r"\\frac{\1}{\2}", s)
    s = re.sub(r"\\frac\s*(\d)\s*\{", r"\\frac{\1}{", s)
    s = re.sub(r"\\frac\s*(\{[^{}]*\})\s*(\d)", r"\\frac\1{\2}", s)
    s = re.sub(r"\\sqrt\s*(\d)", r"\\sqrt{\1}", s)
    # Plain-text spellings: sqrt(2), pi.
    s = re.sub(r"(?<!\\)\bsqrt\s*\(([^()]*)\)", r"\\sqrt{\1}", s)
    s = re.sub(r"(?<![\\a-zA-Z])pi\b", r"\\pi", s)
    s = re.sub(r"\s+", " ", s).strip()
    s = re.sub(r"^[A-Z]\s*(?=\([^()]*,[^()]*\)$)", "", s)  # a named point: P(2, 3)
    if re.fullmatch(r"[A-Za-z][A-Za-z -]*", s):
        s = words_to_numbers(s).strip()  # "twelve" -> 12; other words stay words
    # 1,000,000 as a whole number (a bare comma list stays a list); 1.000.000
    # and 1.234,5 (dots group thousands); 1'000'000.
    if re.fullmatch(r"-?\d{1,3}(?:,\d{3})+(?:\.\d+)?", s):
        s = s.replace(",", "")
    elif re.fullmatch(r"-?\d{1,3}(?:\.\d{3}){2,}(?:,\d+)?|-?\d{1,3}(?:\.\d{3})+,\d+", s):
        s = s.replace(".", "").replace(",", ".")
    elif re.fullmatch(r"-?\d{1,3}(?:'\d{3})+(?:\.\d+)?", s):
        s = s.replace("'", "")
    return s

"""Where an option's mention stands on its line: the line's bounds (bounded, so a
huge response stays linear), a markdown table's answer column, bold."""

from .cues import _ANSWER_HEADER_RE
from .options import fold

_LONG_LINE = 300  # past this a line is a paragraph: no label, answer line or table row


def _line_start(text, position):
    "Where position's line starts, looking back at most _LONG_LINE characters."
    low = max(0, position - _LONG_LINE)
    cut = text.rfind("\n", low, position)
    return cut + 1 if cut >= 0 or low == 0 else low


def _line_end(text, position):
    "Where position's line ends, looking ahead at most _LONG_LINE characters (-1 when the text does)."
    cut = text.find("\n", position, position + _LONG_LINE)
    if cut >= 0 or position + _LONG_LINE < len(text):
        return cut if cut >= 0 else position + _LONG_LINE
    return -1


def _in_answer_column(text, group):
    "True for a group in a markdown table's cell under an 'Answer' header."
    line_start = _line_start(text, group.start)
    if "|" not in text[line_start : group.start]:
        return False
    column = text.count("|", line_start, group.start)
    header = line_start
    for _ in range(60):  # up to the first line of the table (a long one is no answer table)
        if header <= 0:
            break
        previous = text.rfind("\n", 0, header - 1) + 1
        if "|" not in text[previous : header - 1]:
            break
        header = previous
    if header == line_start:
        return False
    end = text.find("\n", header)
    cells = text[header : end if end >= 0 else len(text)].split("|")
    return column < len(cells) and bool(_ANSWER_HEADER_RE.match(fold(cells[column])))


def _bold(text, group):
    "True for a group in bold: '**B**', '**(B)**', '\\textbf{B}'."
    before = text[max(0, group.start - 9) : group.start].rstrip("( ")
    return before.endswith(("**", "\\textbf{")) and (text[group.end : group.end + 4].lstrip(").: ") or " ")[0] in "*}"

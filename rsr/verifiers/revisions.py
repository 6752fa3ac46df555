"""How an answer is revised after it is given: replaced by an option named right
after a retraction or second look, withdrawn by a retraction that names none, or
left standing against a second firm answer (a conflict). choices.py calls these on
its groups (option mentions with their polarity)."""

import re

from .cues import _FILLER, _HEDGE_CLAUSE_RE, _RETRACT_RE, _REVISE_RE, _REVISION_RE

_CLAUSE_END = frozenset(".,;:!—–-\n")
# Words that restate an answer after a revision: "make that C", "c'est C", "change it to C".
_WORD_RE = re.compile(r"[^\W\d_]+")
_RESTATE = frozenset("make change to c no wait nope".split())


def revise(folded, groups, window):
    """An answer taken back and replaced (an answer, then 'no, wait' or 'make that' and
    another letter): an option named within a few words after the revision, ending its
    clause, is the new choice."""
    answer = None
    for group in groups:
        if answer is not None and group.polarity == "neutral" and not group.label:
            gap = folded[max(answer.end, group.start - window) : group.start]  # a few words: no more
            cue = None
            for cue in _REVISE_RE.finditer(gap):
                pass
            after = folded[group.end : group.end + 3].lstrip(" )]}*$")
            if cue is not None and (not after or after[0] in _CLAUSE_END):
                between = gap[cue.end() :]
                words = _WORD_RE.findall(between)
                # "wait, no, it should be C", not "wait, let me check C"
                if "\n" not in between and len(words) <= 4 and (
                        all(w in _FILLER or w in _RESTATE for w in words) or between.rstrip().endswith(":")):
                    group.polarity, group.strength, group.revision = "chosen", "strong", True
        if group.polarity == "chosen" and group.strength in ("strong", "line"):
            answer = group


def withdrawn(folded, last, groups):
    """Why the last answer no longer stands, when the words right after it take it
    back (an answer line, then 'no, wait' alone) or doubt it (a second look, then 'not sure')
    and name no option; else None."""
    if last.revision or groups[-1].start > last.end:  # groups run in text order
        return None  # a revision's own reasons ("I misread") keep it
    near = folded[last.end : last.end + 40]
    if len(near.strip(" .!)*\n")) < 2:
        return None  # the answer ends the text: the common case, kept cheap
    if _RETRACT_RE.search(near):
        return "answer retracted"
    if _REVISE_RE.search(near) and _HEDGE_CLAUSE_RE.search(folded, last.end, last.end + 200):
        return "answer put in doubt"
    return None


def conflict(folded, chosen, last, rejected, multi):
    """A reason when two different firm answers stand with no revision between
    them: a correction, a "final answer", or a rejection of the earlier one."""
    firm = ("strong", "line") if multi else ("strong", "line", "verdict")
    if last.strength not in firm:
        return None
    for earlier in reversed(chosen[:-1]):
        if set(earlier.letters) == set(last.letters) or earlier.polarity == "hedged":
            continue
        if last.revision or earlier.strength not in ("strong", "line") or (last.final and not earlier.final):
            return None
        if _REVISION_RE.search(folded, earlier.end, last.start) or any(
                earlier.end <= g.start < last.start and set(g.letters) & set(earlier.letters)
                for g in rejected):
            return None
        return "two different answers: " + "".join(sorted(set(earlier.letters))) + " and " + "".join(
            sorted(set(last.letters)))
    return None

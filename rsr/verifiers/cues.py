"""The words the mcq reader knows: answer cues, negations, hedges, verdicts and
revision markers, in the languages answers come in. choices.py decides what
they mean; this module only lists them. Every pattern here matches against
text folded by options.fold (lower case, markup as spaces)."""

import re

_OR_WORDS = {"or", "o", "ou", "oder", "或", "或者"}
# Words after a bare "A" or "I" that make it an option, not an English word.
_CONNECTIVES = {
    "is", "was", "because", "since", "as", "which", "with", "for", "and", "or",
    "seems", "looks", "appears", "only", "also", "would", "should", "must", "can",
    "fits", "matches", "holds", "gives", "y", "et", "und", "o", "ou", "oder", "are", "were",
    "has", "have", "does", "look", "seem", "appear", "cannot", "can't", "isn't", "doesn't",
    "fails", "works", "states", "says", "shows", "describes", "correctly", "alone", "too",
    "over", "rather", "instead", "not", "vs", "versus", "than", "seems", "wins", "remains",
    "es", "son", "est", "sont", "ist", "sind", "hold", "holds", "do", "does", "doesn't", "don't",
}

_ANSWER_NOUN = (
    r"answers?|respuestas?|r[ée]ponses?|antwort(?:en)?|l[öo]sung(?:en)?|respostas?|risposta|ответ"
)
_OPTION_NOUN = (
    r"options?|choices?|alternatives?|selections?|letters?|opci[oó]n|opciones|alternativas?"
    r"|choix|optionen|auswahl|wahl|op[cç][aã]o|op[cç][oõ]es|opzione|вариант"
)
_EQ = r"(?:is|are|was|=|:|-|–|—|es|son|est|sont|ist|sind|would be|should be|must be|will be|has to be|seems to be|é)"
_ADJ = (
    r"(?:final|correct|right|best|true|only|most appropriate|most likely|proper|valid|accurate"
    r"|correct[ao]s?|bonnes?|juste|richtigen?|korrekten?|правильный|верный)"
)
_VERB = (
    r"choose|chose|pick|picked|select|selected|go with|going with|opt for|mark|circle|prefer"
    r"|vote for|settle on|stick with|elijo|escojo|selecciono|me quedo con|je choisis|je prends"
    r"|je retiens|ich wähle|ich nehme"
)
_B = r"(?:^|(?<= ))"  # a cue starts at a token
# Cues are matched against the tokens just before a mention, joined by spaces.
_STRONG_CUE_RE = re.compile(
    _B + "(?:" + "|".join([
        # "answer", "final answer:", "correct answer is", "la respuesta correcta es"
        f"(?:{_ADJ} )?(?:{_ANSWER_NOUN})(?: (?:{_OPTION_NOUN}))?(?: {_ADJ})?(?: {_EQ})?",
        # "correct options are", "option:" (a bare "option B" only names it, and
        # "the options are:" lists them)
        f"{_ADJ} (?:{_OPTION_NOUN})(?: {_ADJ})? {_EQ}",
        f"(?:option|choice|opci[oó]n|choix|alternativa|вариант) {_EQ}",
        f"{_ADJ} (?:{_OPTION_NOUN})",
        # "Correct:", "the right one is", "true statements are"
        f"(?:correct|right|true|valid|selected|chosen|richtig|wahr|vraies?)"
        f"(?: (?:statements?|ones?|items?))? {_EQ}",
        _VERB, "boxed", "fbox",
    ]) + ")$"
    + "|(?:答案|正确答案|正确选项|选项|答|正解|答え)(?:是|为|应为|应该是|应选|は)?(?: :)?$|(?:选|选择)$"
)
_WEAK_CUE_RE = re.compile(
    _B + r"(?:it's|it is|that's|that is|this is|must be|has to be|so|thus|hence|therefore|then|→)$"
)
_NEG_CUE_RE = re.compile(
    _B + r"(?:not|never|neither|nor|cannot|can't|isn't|aren't|wasn't|won't|wouldn't|shouldn't|"
    r"couldn't|doesn't|don't|no|rather than|instead of|other than|except(?: for)?|excluding|"
    r"rule out|ruled out|eliminate|eliminated|exclude|excluded|discard|reject|over|vs|versus|"
    r"without|besides|unlike|pas|nicht|kein|"
    r"(?:incorrect|wrong|false|invalid|rejected|eliminated|excluded|incorrect[ao]s?|falsch|faux|fausses?)"
    r"(?: (?:options?|answers?|choices?|statements?|ones?))?(?: " + _EQ + r")?)$"
    r"|(?:不是|不选|排除|除了|并非)$"
)
_FILLER = frozenset(
    "the a an is are was be been would should will must has have to it it's its this that that's "
    "i i'm i'd i'll we think believe guess say feel conclude definitely clearly certainly obviously "
    "surely indeed actually really then therefore thus hence so probably likely most also only "
    "simply just here now final finally one option options choice choices letter letters number "
    "statement statements answer la el los las le les die der das es est ist son sont sind "
    "text textbf mathrm mathbf bf emph underline displaystyle 是 为 : = - – — → , ' .".split()
)
_HEDGE_WORDS = frozenset("either maybe perhaps possibly between".split())
_HEDGE_CLAUSE_RE = re.compile(
    r"not sure|unsure|can't decide|cannot decide|can't tell|cannot tell|torn|either|between|"
    r"hard to say|undecided|uncertain|plausible|no estoy segur|je ne sais pas|nicht sicher|不确定|无法确定"
)
_POST_POS_RE = re.compile(
    r"[\s\-–—:=,]*(?:(?:is|are|seems?|looks?|appears?|was|would be|must be)\s+)?"
    r"(?:(?:also|definitely|clearly|indeed|the|most|only)\s+)*"
    r"(?:correct|right|true|valid|accurate|best|the answer|answer|(?:right|correct|best) one|only (?:option|choice)|"
    r"(?:holds?|appl(?:y|ies))(?=\s*(?:[.,;:!]|$|and\b|while\b|but\b))|(?:do|does)(?=\s*(?:[.,;:!]|$))|"
    r"(?:es|son) (?:las? )?(?:correct[ao]s?|verdader[ao]s?|v[aá]lid[ao]s?)|"
    r"(?:est|sont) (?:la |les )?(?:bonnes?|correct(?:e|s|es)?|justes?|vrai(?:e|s|es)?)|"
    r"(?:ist|sind) (?:die )?(?:richtig|korrekt|wahr))\b(?!\s+(?:if|only|when|provided|unless))"
    r"|\s*(?:✓|✔|☑|✅|是正确的|正确|对)"
)
_POST_NEG_RE = re.compile(
    r"[\s\-–—:=,]*(?:(?:is|are|was|were|seems?|looks?)\s+)?(?:(?:also|definitely|clearly)\s+)*"
    r"(?:incorrect|wrong|false|invalid|inaccurate|impossible|ruled out|eliminated|excluded|"
    r"(?:not|n't)\s*(?:correct|right|true|valid|the answer|an option|possible|it\b|[.,;:]|$)|"
    r"do(?:es)?(?: not|n't) (?:work|fit|apply|hold)|do(?:es)?(?: not|n't)(?=\s*(?:[.,;:!]|$))|fails?\b|"
    r"no(?: lo)?(?: (?:es|son))?(?=\s*(?:[.,;:!]|$))|(?:es|son) (?:las? )?(?:incorrect[ao]s?|fals[ao]s?)|"
    r"(?:est|sont) (?:fausses?|faux|incorrect(?:e|s|es)?)|ne (?:sont|est) pas|(?:ist|sind) (?:falsch|nicht richtig))"
    r"|\s*(?:✗|✘|❌|✖|错误|不正确|不对)"
)
_POST_HEDGE_RE = re.compile(
    r"\s*(?:both\s+)?(?:seem|look|appear|are|could be|might be)s?\s+(?:\w+\s+)?"
    r"(?:plausible|possible|reasonable|candidates|likely)"
)
_ALL_BUT_RE = re.compile(r"\ball(?: the)?(?: (?:options|choices|statements|of them))? (?:except|but)(?: for)?$")
_POST_COMPARE_RE = re.compile(r"\s*(?:over|rather than|instead of|versus|vs)\b")
_SUBJECT_RE = re.compile(r"\s*(?:is|are|was|were|seems?|has|had)\b")
_REVISION_RE = re.compile(
    r"\b(?:wait|actually|hmm+|no|oops|sorry|correction|correct(?:ed|ing)|instead|rather|however|"
    r"but|second thought|on reflection|after all|looking again|re-?read\w*|reconsider\w*|re-?check\w*|re-?evaluat\w*|mistake|misread|error|"
    r"recalculat\w*|let me|double-check\w*|updat\w*|revis\w*|espera|en realidad|"
    r"(?:this|that|it|my answer|the first answer|the above) (?:is|was|'s) (?:incorrect|wrong|not right)|"
    r"corrección|pero|attends?|attendez|en fait|mais|warte|eigentlich|korrektur|aber)\b"
    r"|不对|更正|修正|其实|实际上|重新|但是|等等|最终"
)
# Words that take back an answer given before them ("wait, no", "scratch that",
# "I made a mistake"); an answer followed by one and nothing else is withdrawn.
_RETRACT = (
    r"(?:no|non|nein)(?=\s*[,.;:!—–]|\s+-|\s*$)|nope|scratch that|strike that|forget that|"
    r"(?:i )?made a mistake|my mistake|(?:i )?misread|i was wrong|"
    r"(?:that|this|it)(?: is|'s| was) (?:wrong|incorrect|not right)|correction|me equivoqu[eé]|"
    r"je me suis tromp[eé]e?|ich habe mich (?:geirrt|vertan)"
)
_RETRACT_ZH = r"不对|错了|更正|我错了"
_RETRACT_RE = re.compile(r"(?:^|(?<=[\s,.;:!—–-]))(?:" + _RETRACT + r")(?=$|[\s,.;:!—–-])|" + _RETRACT_ZH)
# Words that revise an answer: a retraction, or a second look ("actually",
# "on second thought", "make that"); an option named right after one is the new choice.
_REVISE_RE = re.compile(
    r"(?:^|(?<=[\s,.;:!—–-]))(?:" + _RETRACT + r"|wait|actually|hmm+|oops|sorry|on second thought|"
    r"on reflection|let me reconsider|reconsider\w*|make that|instead|espera|en realidad|attends?|attendez|"
    r"en fait|moment|warte|eigentlich|korrektur)(?=$|[\s,.;:!—–-])|" + _RETRACT_ZH + r"|其实|实际上|等等|应该是"
)

# A clause that quotes the answer format instead of answering.
_EXAMPLE_RE = re.compile(r"\b(?:for example|for instance|e\.g\.|such as|of the following format|in the format)\b")
_FINAL_RE = re.compile(r"final|最终|definitiv")
_SENTENCE_END_RE = re.compile(r"[.!?;](?=\s|$)|\n")
_LINE_OK = frozenset(_FILLER | {"answer", "correct", "•", "✓", "✔", "!", "?", ";", "..."})

# A line that announces the answer list under it names the answer or its correctness.
_ANNOUNCE_RE = re.compile(r"\b(?:correct|right|true|valid|final|best)\b|\b(?:" + _ANSWER_NOUN + r")\b|答案")

_NEXT_VERDICT_RE = re.compile(
    r"\s*(?:(?:this|that|it)(?: is|'s)\s+(?P<not>not\s+)?(?:also\s+)?|)"
    r"(?P<verdict>incorrect|wrong|false|correct|right|true)\b")

_LINE_END_VERDICT_RE = re.compile(
    r"(?:^|[\s\-–—:,(])(?P<verdict>✓|✔|✅|☑|❌|✗|✘|✖|yes|no|correct|incorrect|true|false|right|wrong)[\s.!)]*$")

_POSITIVE = {"✓", "✔", "✅", "☑", "yes", "correct", "true", "right"}

_ANSWER_HEADER_RE = re.compile(r"\s*(?:final |correct )?(?:" + _ANSWER_NOUN + r"|choice|option|答案)\s*$")

_TEXT_CUE_RE = re.compile(
    # The lookahead lets most positions fail on one character test.
    r"(?=[aroelscgpvmdjitа-я答故])"
    r"(?:\b(?:" + _ANSWER_NOUN + r")\b[^\n.]{0,30}?(?:\b(?:is|are|be|es|son|est|sont|ist|sind)\b|:)"
    r"|\b(?:" + _VERB + r")\b|答案是|答案为|故选|(?P<weak>\bmust be\b|\bit's\b|\bit is\b|\bthat's\b))"
)

_TEXT_FILLER_RE = re.compile(
    r"(?:\s|[:=,\-–—]|\b(?:the|la|le|el|die|der|das|option|choice|actually|definitely|clearly|"
    r"obviously|probably|indeed|not|simply)\b|n't)*"
)

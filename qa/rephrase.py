"""Role questions put the way the articles put them.

"Who chairs the People's Party of Kazakhstan?" has its answer in "The chairman of the party
Ermukhamet Yertysbayev went to ...": news names people by their role ("the chairman of", "the
head of", "the founder of") far more often than by the verb the question uses. The reader,
trained on questions that mostly copy the text's words, found the answer for "Who is the
chairman of ...?" (0.53) and abstained on "Who chairs ...?" (0.12). So a "Who VERB ...?"
question whose verb the retrieved passages never use, but whose role noun they do, is read as
"Who is the NOUN of ...?". Only the reader's question changes; retrieval already matched the
passages, and the answer still quotes the article.
"""
from __future__ import annotations

import re

# A verb and the role nouns for the one who does it, in the order they are preferred.
ROLE_NOUNS: dict[str, tuple[str, ...]] = {
    "chair": ("chairman", "chairwoman", "chairperson", "chair"),
    "head": ("head",),
    "lead": ("leader",),
    "direct": ("director",),
    "govern": ("governor",),
    "manage": ("manager",),
    "found": ("founder",),
    "own": ("owner",),
    "edit": ("editor",),
    "command": ("commander",),
    "coach": ("coach",),
    "captain": ("captain",),
    "create": ("creator",),
    "invent": ("inventor",),
    "design": ("designer",),
    "organize": ("organizer", "organiser"),
    "organise": ("organiser", "organizer"),
    "represent": ("representative",),
    "sponsor": ("sponsor",),
    "host": ("host",),
}


def _inflections(verb: str) -> tuple[str, str]:
    """(present, past) of a role verb: "chairs", "chaired"; "led" is the one irregular form here."""
    present = verb + ("es" if verb.endswith(("sh", "ch")) else "s")
    past = "led" if verb == "lead" else (verb[:-1] if verb.endswith("e") else verb) + "ed"
    return present, past


# The forms a question may ask with -> (verb, past?).
_FORMS: dict[str, tuple[str, bool]] = {
    form: (verb, past) for verb in ROLE_NOUNS for form, past in zip(_inflections(verb), (False, True))}
# Every form of each verb, the bare one included: if the articles use the verb at all, they say
# it the question's way and the reader needs no bridge. A form that is also the role noun
# ("head", "coach", "chair") says nothing of the verb, so it is left out.
_VERB_FORMS: dict[str, set[str]] = {verb: {verb, *_inflections(verb)} - set(nouns) for verb, nouns in ROLE_NOUNS.items()}
# "Who heads to Karaganda?", "Who leads in the polls?": a verb of motion or standing, not a role.
_NOT_AN_OBJECT = {"to", "in", "into", "for", "at", "on", "with", "from", "up", "out", "off", "over", "by",
                  "back", "down", "away", "toward", "towards", "north", "south", "east", "west", "home"}

_QUESTION = re.compile(r"^(?P<who>who)\s+(?P<verb>[a-z]+)\s+(?P<rest>.+?)[\s?.!]*$", re.I)
_WORD = re.compile(r"[a-z]+")


def rephrase_role_question(question: str, passage_texts: list[str]) -> str:
    """``question`` as "Who is/was the NOUN of X?" when it is "Who VERBs/VERBed X?", the
    passages use one of the verb's role nouns and none of them uses the verb in any form;
    otherwise ``question`` unchanged."""
    m = _QUESTION.match(question.strip())
    if not m:
        return question
    form = m.group("verb").lower()
    if form not in _FORMS:
        return question  # not a role verb, or a bare one ("Who will head ..." has an auxiliary there)
    verb, past = _FORMS[form]
    rest = m.group("rest")
    if rest.split()[0].lower() in _NOT_AN_OBJECT:
        return question
    words = {w for text in passage_texts for w in _WORD.findall(text.lower())}
    if words & _VERB_FORMS[verb]:
        return question  # the articles say it the question's way: nothing to bridge
    noun = next((n for n in ROLE_NOUNS[verb] if n in words), None)
    if noun is None:
        return question
    # "The party" mid-sentence is "the party"; "The Guardian" keeps its capital.
    if re.match(r"The\s+[a-z]", rest):
        rest = "t" + rest[1:]
    return f"{m.group('who')} {'was' if past else 'is'} the {noun} of {rest}?"

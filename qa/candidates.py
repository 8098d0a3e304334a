"""Answer candidates: the steps of ``ask`` between the retrieved passages and the scorer.

``Answerer`` (``qa/answering.py``) calls them in this order, once each, for ``ask`` and for the
answer scorer's fitting alike (``scripts/answerer/train.py``), so the scorer is fitted on exactly
the features ``ask`` computes:

1. ``reading_windows``: in each passage, the sentence sharing most words with the question grows
   into a short window (sentence offsets were computed at index time), so the reader reads ~100
   word pieces per passage instead of the whole chunk; all windows go in one forward pass.
2. Glued words ("DeputyChairman", "shouldbecome") are spaced in a copy of each window that the
   parser and the reader read (``qa/repair.py``); their spans are mapped back to the article.
   ``window_slots``: when the question's wh-word is the subject or object of a verb ("Who
   received Baibek?"), the phrase in that role of the same verb in the window's sentences is a
   slot (``qa/slots.py``); ``slot_proposals`` are the slots' spans, which the reader scores too,
   and the one it likes best is a candidate even when the reader ranked it low.
3. (the reader reads the windows: ``qa/reader.py``)
4. ``describe_candidates``: every span is completed (``complete_span``: a number keeps its unit
   and qualifier, "more than 750 thousand jobs"; a "which region" answer keeps its head noun,
   "East Kazakhstan region"; a lone modifier takes the noun it modifies, "deputy chairman";
   two coordinated counts are cut to the asked one, "16 regional"; the reader learned SQuAD's
   habit of cutting these off; a figure is cut from the one it is compared with, "8-1/2 pct
   from 8-3/4 pct" -> "8-1/2 pct", and a quantity said two ways to the asked one, "329,225
   shares, or 15.2 pct" -> "15.2 pct"; a wire service's stock code is no answer, "<BRKN.S>") and
   described by ``FEATURES``: the reader's scores, how well its sentence and window match the
   question, how close it stands to the question's words, whether its shape fits what the
   question asks for (a percentage for "what share", a name for "who"), whether it stands where
   the question's verb puts the answer, and agreement between windows.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .lexical import STOPWORDS, tokenize
from .settings import AnswerSettings
from .slots import Slot
from .text import MONTH_NAMES, logit, normalize_answer
from .types import Passage, Source

if TYPE_CHECKING:
    from .reader import ReaderResult
    from .repair import Repaired
    from .slots import Frame, SlotFinder

FEATURES = (
    "span_logit", "span_raw_logit", "no_answer_logit", "sentence_overlap", "window_overlap", "answer_in_question",
    "support", "top_in_window", "unit_match", "question_distance", "type_match", "type_mismatch",
    "outside_slot", "slot_best", "from_slot", "other_slot",
)


@dataclass
class Window:
    """A short stretch of one passage that the reader reads (document offsets)."""

    passage: Passage
    start: int
    end: int
    text: str
    sentences: list[tuple[int, int]]  # document offsets of the window's sentences
    document_text: str
    coverage: float  # idf-weighted share of the question's terms in the window


@dataclass
class Candidate:
    text: str
    doc_start: int
    doc_end: int
    passage: Passage
    key: str  # normalised answer text
    features: dict[str, float]
    reader_text: str = ""  # the reader's span before ``complete_span`` added a unit or a qualifier
    score: float = 0.0


def reading_windows(asked: "AskedFor", sources: list[Source], settings: AnswerSettings = AnswerSettings()) -> list[Window]:
    """In each passage (best first), the sentence that covers most of the question (idf-weighted),
    grown with its neighbours in the same paragraph up to ``settings.window_chars``. Of these windows,
    one per passage, the ``settings.max_windows`` that cover most of the question are read (in retrieval order): the
    passage ranked fourth often holds the sentence that says it."""
    windows: list[Window] = []
    seen = set()
    for source in sources:
        passage, doc_text = source.passage, source.document_text
        sentences = [(s, e) for s, e in source.sentences if passage.start <= s and e <= passage.end] or [(passage.start, passage.end)]
        sentence_terms = [set(terms_of(doc_text[s:e])) for s, e in sentences]
        overlaps = [asked.coverage(terms) for terms in sentence_terms]
        best = max(range(len(sentences)), key=lambda i: (overlaps[i], -i))
        lo = hi = best

        def joins(i: int, j: int, cross: bool) -> bool:
            # Sentences i < j may share a window: short enough, and in one paragraph unless crossing is allowed.
            return sentences[j][1] - sentences[i][0] <= settings.window_chars and (cross or "\n" not in doc_text[sentences[j - 1][1]:sentences[j][0]])

        for cross in (False, True):
            # Grow within the paragraph first (a paragraph is one topic in a news article); only
            # a window still as short as a headline or a dateline takes the paragraphs around it.
            if cross and sentences[hi][1] - sentences[lo][0] >= settings.short_paragraph_chars:
                break
            while True:
                grown = False
                if lo > 0 and joins(lo - 1, lo, cross) and joins(lo - 1, hi, True):
                    lo -= 1
                    grown = True
                if hi + 1 < len(sentences) and joins(hi, hi + 1, cross) and joins(lo, hi + 1, True):
                    hi += 1
                    grown = True
                if not grown:
                    break
        start, end = sentences[lo][0], sentences[hi][1]
        key = (passage.doc_id, start, end)
        if key in seen:  # overlapping chunks can give the same window twice: read it once
            continue
        seen.add(key)
        window_terms = set().union(*sentence_terms[lo:hi + 1])
        windows.append(Window(passage, start, end, doc_text[start:end], sentences[lo:hi + 1], doc_text,
                              asked.coverage(window_terms)))
    keep = sorted(sorted(range(len(windows)), key=lambda i: -windows[i].coverage)[:settings.max_windows])
    return [windows[i] for i in keep]


def window_slots(parser: "SlotFinder | None", frame: "Frame | None", windows: list[Window],
                 readings: "list[Repaired]") -> list[list[Slot]]:
    """Per window, the slots of the question's ``frame`` in its sentences (window offsets); none
    without a parser or a frame. The parser reads the sentences as the reader does (``readings``:
    glued words spaced, so "shouldbecome" is a verb), sentence by sentence, so that only the
    sentences that use the question's verb are parsed."""
    if parser is None or frame is None:
        return [[] for _ in windows]
    spans = []  # (window, start, end of the sentence in the window's reading)
    for w, (window, reading) in enumerate(zip(windows, readings)):
        for s, e in window.sentences:
            start, end = reading.span_to_repaired((s - window.start, e - window.start))
            spans.append((w, start, end))
    found = parser.slots(frame, [readings[w].text[s:e] for w, s, e in spans])
    out: list[list[Slot]] = [[] for _ in windows]
    for (w, s, _), sentence_slots in zip(spans, found):
        out[w].extend(slot.mapped(lambda i, s=s, w=w: readings[w].to_original(i + s)) for slot in sentence_slots)
    return out


def slot_proposals(slots: list[list[Slot]]) -> list[list[tuple[Slot, tuple[int, int]]]]:
    """Per window, (slot, span) for every span of the slots where the answer stands: the reader
    scores these whatever their rank among its own spans."""
    return [[(slot, span) for slot in window_slots if slot.asked for span in slot.spans] for window_slots in slots]


def describe_candidates(asked: "AskedFor", windows: list[Window], slots: list[list[Slot]],
                        proposals: list[list[tuple[Slot, tuple[int, int]]]], results: "list[ReaderResult]",
                        parser: "SlotFinder | None" = None) -> list[Candidate]:
    """Every span the reader gave for the windows (its best ones, then each slot's best-scored
    span), completed the way a reader of the article would quote it, with the features the
    answer scorer weighs. ``parser``: completes a lone modifier to its noun ("deputy" ->
    "deputy chairman"); without it such a span stays as the reader gave it."""
    candidates: list[Candidate] = []
    windows_of: dict[str, set[int]] = {}
    expected = asked.answer_type
    for w, (window, result) in enumerate(zip(windows, results)):
        doc = window.document_text
        words_of: dict[tuple[int, int], list] = {}  # a window's spans mostly share a sentence: tokenise it once
        seen = set()
        # The reader's best spans, then for each slot the span of it the reader likes best.
        spans = [(span, raw_logit, False) for span, raw_logit in zip(result.spans, result.logits)]
        best_of_slot: dict[Slot, tuple] = {}
        for (slot, _), span, raw_logit in zip(proposals[w], result.proposed, result.proposed_logits):
            if span is not None and (slot not in best_of_slot or span.score > best_of_slot[slot][0].score):
                best_of_slot[slot] = (span, raw_logit, True)
        spans += list(best_of_slot.values())
        slot_best = {(span.start, span.end) for span, _, _ in best_of_slot.values()}
        asked_slots = [slot for slot in slots[w] if slot.asked]
        other_slots = [slot for slot in slots[w] if not slot.asked]
        for i, (span, raw_logit, proposed) in enumerate(spans):
            a, b = _first_of_figures(doc, window.start + span.start, window.start + span.end, asked)
            a, b = _asked_expression(doc, a, b, expected)
            b = _before_comparison(doc, a, b, expected)
            a, b = complete_span(doc, a, b, window.end, asked)
            a, b = _within_sentence(doc, window.sentences, a, b)
            a, b = _outside_codes(doc, a, b)
            b = _modified_noun_end(parser, doc, window.sentences, a, b, expected)
            text = doc[a:b]
            key = normalize_answer(text)
            if not key or key in seen or not _is_phrase(text, expected):
                continue
            seen.add(key)
            windows_of.setdefault(key, set()).add(w)
            around = _sentence_around(window.sentences, a, b)
            if around not in words_of:
                words_of[around] = _words(doc, *around)
            sentence_words = words_of[around]
            answer_terms = set(terms_of(text))
            context_terms = {t for s, e, t in sentence_words if e <= a or s >= b} - answer_terms
            shape_fits = expected is not None and _has_shape(text, expected)
            candidates.append(Candidate(text, a, b, window.passage, key, reader_text=span.text, features={
                "span_logit": logit(span.score),
                # The window-normalised score above says how sure the reader is within the window;
                # the raw logit compares spans of different windows (scaled to about -1..1).
                "span_raw_logit": raw_logit / 10.0,
                "no_answer_logit": logit(result.no_answer),
                "sentence_overlap": asked.coverage(context_terms),
                "window_overlap": window.coverage,
                "answer_in_question": len(answer_terms & asked.terms) / max(1, len(answer_terms)),
                "support": 0.0,
                "top_in_window": 1.0 if i == 0 and not proposed else 0.0,
                "unit_match": _unit_match(asked.units, doc, b, text),
                "question_distance": _question_distance(sentence_words, a, b, asked.terms),
                "type_match": 1.0 if shape_fits else 0.0,
                "type_mismatch": 1.0 if expected is not None and not shape_fits else 0.0,
                # Where the question's verb puts the answer (``qa/slots.py``): the reader's span is
                # outside every such slot of its window, or the slot's span the reader likes best,
                # or found only through the slot, or in the slot the question itself fills.
                "outside_slot": 1.0 if asked_slots and not any(s.holds(span.start, span.end) for s in asked_slots) else 0.0,
                "slot_best": 1.0 if (span.start, span.end) in slot_best else 0.0,
                "from_slot": 1.0 if proposed else 0.0,
                "other_slot": 1.0 if any(s.holds(span.start, span.end) for s in other_slots) else 0.0,
            }))
    if expected == "date":
        candidates += _dated(candidates, windows, windows_of)
    # The same answer found in several windows is better supported.
    for c in candidates:
        c.features["support"] = float(len(windows_of[c.key]) - 1)
    return candidates


# "today", "yesterday": a news article's own day, which its date line gives.
_RELATIVE_DAY = re.compile(r"^(?:today|yesterday|tonight|this (?:morning|afternoon|evening)|earlier today)$", re.I)
_DATE_LINE = re.compile(
    rf"^[ \t]*(\d{{1,2}}\s+(?:{'|'.join(MONTH_NAMES)})\s+\d{{4}}|(?:{'|'.join(MONTH_NAMES)})\s+\d{{1,2}},\s+\d{{4}}|"
    rf"\d{{4}}-\d{{2}}-\d{{2}})\b[^\n]{{0,30}}$", re.I | re.M)
DATE_LINE_CHARS = 1500  # a date line stands near the top of an article, under its headline


def date_line(text: str) -> tuple[int, int] | None:
    """The article's date line ("26 July 2019, 17:00" on a line of its own near the top): the
    offsets of its date, or None."""
    m = _DATE_LINE.search(text, 0, DATE_LINE_CHARS)
    return (m.start(1), m.end(1)) if m else None


def _dated(candidates: list[Candidate], windows: list[Window], windows_of: dict[str, set[int]]) -> list[Candidate]:
    """For "When ...?", an answer that says "today" also stands as the article's date line (a span
    of the article too, cited with that line), scored with the same reading but with the shape
    of a date: "When did Tokayev receive Baibek?" -> "26 July 2019" rather than "today"."""
    out = []
    for c in candidates:
        if not _RELATIVE_DAY.match(c.text):
            continue
        text = windows[min(windows_of[c.key])].document_text  # the text the candidate's offsets index
        found = date_line(text)
        if not found:
            continue
        a, b = found
        line_start, line_end = text.rfind("\n", 0, a) + 1, text.find("\n", b)
        line_end = len(text) if line_end < 0 else line_end
        p = c.passage
        passage = Passage(text=text[line_start:line_end], doc_id=p.doc_id, title=p.title, date=p.date,
                          start=line_start, end=line_end, score=p.score, chunk_id=p.chunk_id)
        key = normalize_answer(text[a:b])
        windows_of.setdefault(key, set()).update(windows_of[c.key])
        out.append(Candidate(text[a:b], a, b, passage, key, {**c.features, "type_match": 1.0, "type_mismatch": 0.0},
                             reader_text=c.reader_text))
    return out


# --------------------------------------------------------------------------- what the question asks for

_HOW_MANY = re.compile(r"\bhow\s+(?:many|much)\s+(.+)", re.I)
# The counted noun phrase ends where the question's verb, a preposition or a clause begins: "how
# many banks | were disqualified", "how many Piedmont Aviation shares | did ...", "how many tonnes
# | of sugar", "how many people | attended" (else a figure was completed with "banks were", or cut
# inside the phrase: "2,292,599 Piedmont Aviation"). A lower-case "-ed" word ends it only after
# its first word: "how many skilled workers" counts workers, "how many Allied Signal shares" shares.
_UNIT_PHRASE_WORDS = (r"is|are|was|were|be|been|do|does|did|has|have|had|will|would|can|could|shall|should|may|"
                      r"might|must|in|of|on|at|for|from|to|by|with|about|into|over|under|during|per|than|since|"
                      r"that|who|which|according")
_PARTICIPLE = r"(?-i:(?!hundred\b)[a-z]{3,}(?<!e)ed)\b"
_UNIT_PHRASE_END = re.compile(rf"\b(?:{_UNIT_PHRASE_WORDS})\b|(?<=\w\s){_PARTICIPLE}|[,;:?]", re.I)
_OF_THE = re.compile(r"of\s+(?:(?:the|these|those|its|their|his|her)\s+)?", re.I)  # "how many of the banks"
_MAX_UNIT_WORDS = 4  # the last ones: a noun phrase ends in its head noun


def _counted_units(question: str) -> tuple[str, ...]:
    """The terms of the noun phrase a "how many" question counts ("how many of the regional
    headquarters were set up" -> ("region", "headquart")), at most its last four."""
    m = _HOW_MANY.search(question)
    if not m:
        return ()
    rest = m.group(1)
    of_the = _OF_THE.match(rest)
    phrase = _UNIT_PHRASE_END.split(rest[of_the.end():] if of_the else rest, 1)[0]
    return tuple(tokenize(phrase)[-_MAX_UNIT_WORDS:])
_WHICH_NOUN = re.compile(r"\b(?:which|what)\s+([a-z]+)\b", re.I)
# What kind of answer the question asks for; the first that matches wins ("how much money" is
# money before it is a number).
_ANSWER_TYPES = (
    ("percent", re.compile(r"\b(?:what|which)\s+(?:percentage|percent|share|proportion)\b|\bhow\s+many\s+percent", re.I)),
    ("money", re.compile(
        r"\bhow\s+much\s+(?:money|funding|funds|financing|revenue|income|profit|investment|cash)\b|"
        r"\bhow\s+much\b.*\b(?:cost|spen[dt]|pa(?:y|id)|worth|earn|budget|invest|allocat|fund)|"
        r"\b(?:what|which)\s+(?:was\s+the\s+|is\s+the\s+)?(?:amount\s+of\s+money|cost|price|budget|salary|fee)\b", re.I)),
    ("date", re.compile(r"\bwhen\b|\b(?:what|which)\s+(?:year|date|day|month|decade|century)\b", re.I)),
    ("number", re.compile(
        r"\bhow\s+(?:many|much|long|old|far|often|large|big|tall|high)\b|"
        r"\b(?:what|which)\s+(?:number|amount|age|size|population)\b", re.I)),
    ("person", re.compile(r"\b(?:who|whom|whose)\b", re.I)),
    ("place", re.compile(r"\bwhere\b", re.I)),
)
# Words that make a question a question: the answer's sentence need not share them.
_QUESTION_WORDS = frozenset(tokenize("what which who whom whose when where why how did does do were has have had can "
                                     "could would should shall might must"))
_WHICH_NOT_A_HEAD = {"is", "are", "was", "were", "do", "does", "did", "has", "have", "had", "can", "will", "would", "should"}
# "over the next three years" and "in the next 3 years" say the same.
_DIGITS_OF = {w: str(i) for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen "
    "eighteen nineteen twenty".split())}


def terms_of(text: str) -> list[str]:
    """The lexical index's terms (``tokenize``), with small number words as digits."""
    return [_DIGITS_OF.get(t, t) for t in tokenize(text)]


@dataclass(frozen=True)
class AskedFor:
    """What the question asks for, read once per question."""

    terms: frozenset[str]  # the question's stemmed terms
    weights: dict[str, float]  # their idf in the collection searched
    units: tuple[str, ...]  # "how many regional headquarters" -> ("region", "headquart")
    head: str | None  # "which region ..." -> "region"
    answer_type: str | None  # "person" (who), "place" (where), "date", "percent", "money", "number" or None

    @classmethod
    def of(cls, question: str, idf=None) -> "AskedFor":
        units = _counted_units(question)
        h = _WHICH_NOUN.search(question)
        head = tokenize(h.group(1)) if h and h.group(1).lower() not in _WHICH_NOT_A_HEAD else []
        answer_type = next((name for name, pattern in _ANSWER_TYPES if pattern.search(question)), None)
        terms = frozenset(terms_of(question)) - _QUESTION_WORDS
        weights = idf(terms) if idf else {t: 1.0 for t in terms}
        return cls(terms, weights, units, head[0] if head else None, answer_type)

    def coverage(self, terms: set[str]) -> float:
        """The idf-weighted share of the question's terms among ``terms``."""
        # fsum: exact, so the same in every process (a set's order, and with it a plain sum's last
        # bit, changes with Python's hash seed; equal windows then swapped places between runs).
        total = math.fsum(self.weights.values())
        return math.fsum(w for t, w in self.weights.items() if t in terms) / total if total > 0 else 0.0


_NUMBER_WORDS = (
    r"one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|thirty|forty|fifty|hundred|thousand|"
    r"million|billion|trillion|dozen|half|third|quarter")
_MONTHS = "|".join(MONTH_NAMES)
# Scale words, with news agencies' "mln" and "bln" ("105 mln Australian dlrs").
_SCALE = r"(?:thousand|million|billion|trillion|mln|bln)"
# Currencies after a figure, agency abbreviations included ("dlrs", "stg", "cts"), singular too
# ("three billion franc"), optionally after a country ("U.S.", "H.K.", "Australian").
_CURRENCY_WORD = (r"(?i:dollars?|dlrs?|euros?|pounds?(?:\s+sterling)?|sterling|stg|tenge|rubles?|roubles?|yuan|yen|"
                  r"francs?|marks?|crowns?|riyals?|pesetas?|guilders?|lire|lira|pesos?|rupees?|rand|won|kwacha|"
                  r"ringgit|cents|cts)")
_CURRENCY_COUNTRY = (r"(?:US|U\.S\.|American|Canadian|Australian|Hong\s+Kong|H\.K\.|New\s+Zealand|N\.Z\.|"
                     r"Singapore|Swiss|French|Belgian|Saudi|Taiwan|Mexican)")
_SHAPES = {
    "percent": re.compile(r"%|\bper\s?cent\b|\bpct\b", re.I),
    "money": re.compile(
        rf"[$€£¥₸]|\b(?:KZT|USD|EUR|GBP|RUB)\s?\d|"
        rf"\d\s*(?:{_SCALE}\s+)?(?:{_CURRENCY_COUNTRY}\s+)?(?:KZT|USD|EUR|{_CURRENCY_WORD})\b"),
    "date": re.compile(rf"\b(?:1\d{{3}}|20\d{{2}}|\d{{1,2}}(?:st|nd|rd|th)|{_MONTHS}|century|decade|\d0s)\b", re.I),
    "number": re.compile(rf"\d|\b(?:{_NUMBER_WORDS}|{_MONTHS})\b", re.I),
}


def _has_shape(text: str, answer_type: str) -> bool:
    if answer_type in _SHAPES:
        return bool(_SHAPES[answer_type].search(text))
    words = [w for w in re.findall(r"[^\W\d_][\w'’-]*", text) if w.lower() not in _FUNCTION_WORDS]
    return bool(words) and text[:1].isupper() and sum(w[0].isupper() for w in words) * 2 >= len(words)


_FUNCTION_WORDS = frozenset({"of", "the", "and", "de", "for", "in", "on", "at", "a", "an", "to", "von", "van", "la", "le"})


# --------------------------------------------------------------------------- completing spans

_FIGURE = r"\d[\d.,/-]*"  # "1.5", "8-1/2", "2,292,599"
_MAGNITUDE = rf"(?:{_FIGURE}%?|{_SCALE}|hundred)"
_CURRENCY = re.compile(rf"\s+(?:{_CURRENCY_COUNTRY}\s+)?{_CURRENCY_WORD}\b")
# A count's scale word after it: "two" + "mln", "1.5" + "billion".
_SCALE_AFTER = re.compile(rf"\s+{_SCALE}\b", re.I)
_PERCENT_AFTER = re.compile(r"\s*(?:%|per\s?cent\b|pct\b)", re.I)
_COUNT = re.compile(rf"(?:{_FIGURE}|(?:{_NUMBER_WORDS})\b)", re.I)  # a figure or a number word
_QUALIFIER = re.compile(
    r"\b(?:more than|less than|fewer than|at least|at most|up to|about|around|approximately|nearly|almost|over|under|"
    r"some|roughly)\s+$", re.I)
_RANGE_START = re.compile(rf"\bfrom\s+(?:\S+\s+)?[$€£¥₸]?{_MAGNITUDE}(?:\s+{_SCALE})?\s+to\s+$", re.I)
_FROM_BEFORE = re.compile(r"\bfrom\s+$")
# A hyphenated given name right before a capitalised span: "Kassym-Jomart" + "Tokayev".
_GIVEN_NAME_BEFORE = re.compile(r"(?<![\w-])[A-Z][a-z]+-[A-Z][a-z]+ $")
_NEXT_WORD = re.compile(r"\s+([A-Za-z][\w'’-]*)")


def complete_span(text: str, start: int, end: int, limit: int, asked: AskedFor) -> tuple[int, int]:
    """Widen a reader span to what a reader of the article would quote, within ``text[:limit]``:
    a figure with its qualifier, range and unit ("more than 750 thousand jobs", "from 11 billion
    to 170.5 billion US dollars"), a "which <noun>" answer with that noun ("East Kazakhstan
    region"), a surname with the hyphenated given name before it ("Kassym-Jomart Tokayev"); news
    agencies' figures too ("about two mln customers", "105 mln Australian dlrs", "4.6 pct")."""
    span = text[start:end]
    if _COUNT.fullmatch(span) and (scale := _SCALE_AFTER.match(text, end, limit)):
        end = scale.end()
        span = text[start:end]
    if re.fullmatch(_FIGURE, span) and (percent := _PERCENT_AFTER.match(text, end, limit)):
        end = percent.end()  # "4.6" + "pct": the unit is part of the figure
        span = text[start:end]
    given = _GIVEN_NAME_BEFORE.search(text, max(0, start - 40), start)
    if given and span[:1].isupper():
        start = given.start()
    if _COUNT.match(span):
        if start > 0 and text[start - 1] in "$€£¥₸":
            start -= 1
        r = _RANGE_START.search(text, max(0, start - 60), start)  # "from 11 billion to" + "170.5 billion"
        if r:
            start = r.start()
        elif re.match(r"\S+(?:\s+\S+)?\s+to\s+", span) and (f := _FROM_BEFORE.search(text, max(0, start - 6), start)):
            start = f.start()  # "from" + "11 billion to 170.5 billion"
        q = _QUALIFIER.search(text, max(0, start - 20), start)
        if q:
            start = q.start()
    if re.search(rf"{_MAGNITUDE}$", span, re.I):
        money = _CURRENCY.match(text, end, limit)
        if money:
            end = money.end()
        else:
            end = _unit_after(text, end, limit, asked.units)
    elif asked.head:
        nxt = _NEXT_WORD.match(text, end, limit)
        if nxt and tokenize(nxt.group(1)) == [asked.head] and span[:1].isupper():
            end = nxt.end()
    return start, end


def _unit_after(text: str, end: int, limit: int, units: tuple[str, ...]) -> int:
    """A count's end taken past the counted noun phrase the question names, as the text writes it:
    the whole phrase ("750 thousand" + "jobs", "2,292,599" + "Piedmont Aviation shares"), its end
    ("2,292,599" + "shares"), or its start where the text's phrase ends there ("16" + "regional"
    in "16 regional and 208 district headquarters", "12" + "people" in "12 people were killed");
    never part of a longer phrase ("2,292,599 Piedmont Aviation Inc shares" stays "2,292,599")."""
    for first in range(len(units)):
        taken = end
        for unit in units[first:]:
            nxt = _NEXT_WORD.match(text, taken, limit)
            if not nxt or tokenize(nxt.group(1)) != [unit]:
                break
            taken = nxt.end()
        else:
            return taken
        if first == 0 and taken > end and _phrase_ends(text, taken, limit):
            return taken
    return end


_PHRASE_BOUNDARY_WORD = re.compile(rf"(?:{_UNIT_PHRASE_WORDS})\b|{_PARTICIPLE}", re.I)


def _phrase_ends(text: str, at: int, limit: int) -> bool:
    """No content word follows ``at`` in the same phrase: punctuation, the end, a function word,
    a verb's participle."""
    nxt = _NEXT_WORD.match(text, at, limit)
    return nxt is None or not tokenize(nxt.group(1)) or _PHRASE_BOUNDARY_WORD.fullmatch(nxt.group(1)) is not None


# "16 regional and 208": two counts joined by "and", the first one followed by the question's own
# words ("How many regional headquarters ...?"): the answer is that first count.
_COORDINATED_FIGURES = re.compile(
    rf"([$€£¥₸]?\d[\d.,]*%?(?:\s+{_SCALE})?)((?:\s+[A-Za-z][\w-]*){{1,2}})\s+and\s+\S*\d")


def _first_of_figures(text: str, start: int, end: int, asked: AskedFor) -> tuple[int, int]:
    """A span over two coordinated counts cut to the one the question asks for (the units the
    question names then follow it: "16 regional")."""
    m = _COORDINATED_FIGURES.match(text, start, end)
    if m and asked.units and set(terms_of(m.group(2))) <= set(asked.units):
        return start, m.end(1)
    return start, end


# One quantity said twice, as a count and as a share: "329,225 common shares, or 15.2 pct" (the
# comma tells it from an either/or: "5 or 6 pct").
_OR_SAID_AS = re.compile(r",\s+or\s+(?=(?:(?:about|some|nearly|almost|over|under|roughly|around|"
                         r"more\s+than|less\s+than)\s+)?[$€£¥₸]?\d)", re.I)


def _asked_expression(text: str, start: int, end: int, expected: str | None) -> tuple[int, int]:
    """Of a span that gives one quantity two ways ("329,225 common shares, or 15.2 pct"), the way
    the question asks for: the share for "what percentage", the count or the amount for "how
    many" and "how much"; the whole span otherwise."""
    said = _OR_SAID_AS.search(text, start, end)
    if said is None or expected not in _COUNTED:
        return start, end
    first, second = (start, said.start()), (said.end(), end)
    if not any(ch.isdigit() for ch in text[start:said.start()]):
        return start, end
    percent = [part for part in (first, second) if _SHAPES["percent"].search(text, *part)]
    if len(percent) != 1:
        return start, end
    if expected == "percent":
        return percent[0]
    return second if percent[0] == first else first


# A figure, then the figure it is compared with: "8-1/2 pct from 8-3/4 pct", "43 mln francs against
# losses of 968 mln", "16.8 billion dlrs at end-1986, up from 15.2 billion", "5 pct versus 4 pct".
# (A range says "from 11 billion to 170.5 billion" and opens with its "from": it is not cut.)
_LEADING_FIGURE = re.compile(r"[$€£¥₸]?\d(?:[\d.,/-]*\d)?(?!\w)")  # a whole figure: not "20th", "3Com", "1980s"
_COMPARED_WITH = re.compile(
    rf",?\s+(?:(?:up|down|rising|falling|rose|fell|increasing|decreasing)\s+)?"
    rf"(?:from|against|versus|vs\.?|compared\s+(?:with|to))\s+(?:[A-Za-z][\w'’-]*\s+){{0,3}}[$€£¥₸]?\d", re.I)
# Where the figure's own phrase ends before the comparison: "16.8 billion dlrs" + " at end-1986".
_FIGURE_PHRASE_END = re.compile(r",|\s+(?:at|in|on|for|by|as|of|during|over)\b", re.I)


def _before_comparison(text: str, start: int, end: int, expected: str | None) -> int:
    """The end of a span that opens with a figure cut before the figure it is compared with: the
    answer is the first figure and the words of its own phrase ("8-1/2 pct from 8-3/4 pct" ->
    "8-1/2 pct", "500 tonnes against 400 tonnes" -> "500 tonnes", "16.8 billion dlrs at end-1986,
    up from 15.2 billion" -> "16.8 billion dlrs"). News copy writes each new figure beside the old
    one, and a reader often takes both. Only for a question that asks for a figure, or for no
    kind of answer in particular: a date's "14 March, up from 12" is not cut."""
    if expected not in _COUNTED and expected is not None:
        return end
    figure = _LEADING_FIGURE.match(text, start, end)
    compared = _COMPARED_WITH.search(text, figure.end(), end) if figure else None
    if compared is None:
        return end
    own = _FIGURE_PHRASE_END.search(text, figure.end(), compared.start())
    return own.start() if own else compared.start()


_LONE_LOWER_WORD = re.compile(r"[a-z][a-z'’-]*")
_WORD_AFTER = re.compile(r" [A-Za-z]")


def _modified_noun_end(parser: "SlotFinder | None", text: str, sentences: list[tuple[int, int]], a: int, b: int,
                       expected: str | None) -> int:
    """The end of a lone lower-case word widened to the noun it modifies ("deputy" -> "deputy
    chairman"), as the parse of its sentence says; only such words are parsed, so that this
    costs a parse for few questions. A count's lone word is dropped by ``_is_phrase`` instead."""
    if parser is None or expected in _COUNTED or not _LONE_LOWER_WORD.fullmatch(text[a:b]) or not _WORD_AFTER.match(text, b):
        return b
    s, e = _sentence_around(sentences, a, b)
    return s + parser.phrase_end(text[s:e], a - s, b - s)


# --------------------------------------------------------------------------- positions of words

_WORD = re.compile(r"\w+(?:[.,]\d+)*")


def _within_sentence(text: str, sentences: list[tuple[int, int]], a: int, b: int) -> tuple[int, int]:
    """``text[a:b]`` cut at the end of the sentence it starts in: an answer never runs into the
    next sentence ("... 170.5 billion US dollars. If in the early 90s more than a third")."""
    for s, e in sentences:
        if s <= a < e:
            if b > e:
                b = e
                while b > a and (text[b - 1].isspace() or text[b - 1] in ".,;:!?"):
                    b -= 1
            break
    return a, b


# Kinds of answer that a lone lower-case word is only when it has their shape ("three", "half"):
# "How many regional branches ...?" -> "regional" is not one. Who/where/when answers can be lone
# common words ("monks", "abroad", "summer").
_COUNTED = frozenset({"percent", "money", "number"})


def _is_phrase(text: str, expected: str | None) -> bool:
    """Not a lone function word ("the", "which"), nor a lone lower-case word without the shape of
    the figure the question asks for."""
    words = text.split()
    if len(words) != 1:
        return True
    word = words[0].strip(".,;:!?\"'()[]“”‘’")
    if not word or word.lower() in STOPWORDS:
        return False
    return not (expected in _COUNTED and word.islower() and not _has_shape(word, expected))


# A wire service's stock code in angle brackets, beside the name it codes: "Broken Hill Pty Co Ltd
# <BRKN.S>", "Cenergy <CRG>". (A name in brackets, "<BHP Gold Mines Ltd>", is a name.)
_TICKER = re.compile(r"<[A-Z0-9][A-Z0-9.&-]*>")


def _outside_codes(text: str, start: int, end: int) -> tuple[int, int]:
    """A span cut clear of the stock codes it touches: the name before a code ("Broken Hill Pty Co
    Ltd <BRKN.S" -> "Broken Hill Pty Co Ltd"), what follows one the span opens with; nothing
    (start == end) of a span inside a code ("BRKN.S"), which no reader can use as an answer. A
    span over two coded names ("Ford Motor Co <F> and General Motors Corp <GM>") keeps the first."""
    for code in _TICKER.finditer(text, max(0, start - 30), min(len(text), end + 30)):
        if code.end() <= start or code.start() >= end:
            continue
        if code.start() <= start:
            start = min(end, code.end())
        else:
            end = code.start()
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _sentence_around(sentences: list[tuple[int, int]], a: int, b: int) -> tuple[int, int]:
    inside = [(s, e) for s, e in sentences if s < b and e > a]
    return (inside[0][0], inside[-1][1]) if inside else (a, b)


def _words(text: str, start: int, end: int) -> list[tuple[int, int, str]]:
    """(start, end, stemmed term) of the content words of ``text[start:end]``; stopwords are left out."""
    out = []
    for m in _WORD.finditer(text, start, end):
        term = terms_of(m.group(0))
        if term:
            out.append((m.start(), m.end(), term[0]))
    return out


def _question_distance(sentence_words, a: int, b: int, terms: frozenset[str]) -> float:
    """How far (in content words, 0..1 on a log scale) the answer stands from the nearest word of
    the question in its sentence: answers sit next to what the question mentions."""
    positions = [i for i, (s, e, t) in enumerate(sentence_words) if t in terms and (e <= a or s >= b)]
    inside = [i for i, (s, e, _) in enumerate(sentence_words) if s >= a and e <= b]
    if not positions:
        return 1.0
    if not inside:  # the answer is all stopwords or punctuation: measure from where it stands
        first = last = sum(1 for s, _, _ in sentence_words if s < a)
    else:
        first, last = inside[0], inside[-1]
    gap = min(first - p if p < first else p - last for p in positions)
    return min(1.0, math.log1p(max(0, gap - 1)) / math.log(21))


def _unit_match(units: tuple[str, ...], text: str, end: int, answer: str) -> float:
    """"How many jobs": 1 when "jobs" directly follows or ends the figure, 0.5 when it comes within
    three words, else 0. (1.5 million people vs 750 thousand jobs.)"""
    if not units:
        return 0.0
    answer_terms = tokenize(answer)
    if answer_terms and answer_terms[-1] == units[0]:
        return 1.0
    following = tokenize(" ".join(text[end:end + 80].split()[:3]))
    if following[:1] == [units[0]]:
        return 1.0
    return 0.5 if set(units) & set(following) else 0.0

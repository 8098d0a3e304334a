"""``Answerer``: the pipeline behind ``ask``, one object that calls each step once, in order.

    resolve follow-up -> retrieve -> rephrase a role question -> reading windows (glue repaired) -> parse -> read
    -> complete spans -> score -> cite

1. The question is unwrapped (quotes, "Q:", markup) and a follow-up ("How many people will it
   cover?") is rewritten with the previous turn (``qa/followup.py``).
2. The retriever returns the passages with their documents' sentences (``Retriever.sources``);
   a follow-up's passages come from the story its previous answer was quoted from.
   A question naming something none of them mentions ("the capital of France") gets no answer.
   "Who chairs X?" is read as "Who is the chairman of X?" when the passages name the role and
   never use the verb (``qa/rephrase.py``).
3. The best sentence of each passage grows into a short reading window (``qa/candidates.py``).
4. The parser finds where the question's verb puts its answer in those windows (``qa/slots.py``).
5. The reader reads all windows in one forward pass (``qa/reader.py``).
6. Its spans are completed ("more than 750 thousand jobs") and described by features.
7. The answer scorer turns the features into P(right) (``qa/scoring.py``).
8. Spans are grouped by answer text and cited with the passages that hold them; below the
   scorer's threshold the answer is empty: the articles don't say.

The components are passed in, so a test or a benchmark swaps one without reaching into a module;
``Answerer.from_settings`` builds the shipped ones (shared per process, ``qa/models.py``).
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from . import models
from .candidates import (Candidate, AskedFor, describe_candidates, reading_windows, slot_proposals, terms_of,
                         window_slots)
from .followup import ResolvedQuestion, normalize_question, resolve_followup
from .rephrase import rephrase_role_question
from .repair import GlueRepairer, Repaired
from .retrieval import Filters, check_query
from .settings import MAX_QUESTION_CHARS, AnswerSettings
from .text import MONTH_NAMES
from .types import Answer, Citation, Passage, Source

if TYPE_CHECKING:
    from .reader import Reader
    from .retrieval import Retriever
    from .scoring import AnswerScorer
    from .slots import SlotFinder

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Reading:
    """What the reader made of one question over some sources: the question as it read it (the
    one ``Answer.resolved_question`` shows) and the candidate answers, unscored."""

    question: str
    candidates: list[Candidate]
    missing_names: tuple[str, ...] = ()  # the question's names and figures that no source mentions


class Answerer:
    """Answers questions over one retriever's collection with a reader, a parser (optional) and an
    answer scorer. Thread-safe: it keeps no per-question state."""

    def __init__(self, retriever: "Retriever | None", reader: "Reader", parser: "SlotFinder | None",
                 scorer: "AnswerScorer | None", settings: AnswerSettings = AnswerSettings(),
                 repairer: "GlueRepairer | None" = None):
        self.retriever = retriever
        self.reader = reader
        self.parser = parser
        self.scorer = scorer
        self.settings = settings
        self.repairer = repairer

    @classmethod
    def from_settings(cls, retriever: "Retriever | None", settings: AnswerSettings = AnswerSettings()) -> "Answerer":
        """The shipped reader, parser and scorer that ``settings`` names, loaded once per process."""
        reader = models.reader(settings.reader_dir, settings.quantize, settings.reader_runtime)
        return cls(retriever, reader, models.parser() if settings.use_parser else None,
                   models.answer_scorer(settings.scorer_file), settings,
                   GlueRepairer.for_tokenizer(reader.tokenizer) if settings.repair_glue else None)

    def warm_up(self) -> None:
        """Run each model once, so that the first question does not pay for first-call set-up."""
        self.reader.read("What is it?", ["It is a warm-up."], top_k=1)
        if self.parser is not None:
            self.parser.frame("Who received the warm-up?")

    def ask(self, question: str, history=None, k: int = 5, filters: dict | Filters | None = None) -> Answer:
        """The answer to ``question`` (``history``: earlier (question, answer) turns), cited."""
        if self.retriever is None or self.scorer is None:
            raise RuntimeError("this Answerer reads given sources only: it has no retriever or no scorer")
        cleaned = normalize_question(check_query(question))  # the Answer keeps the user's own text
        resolved = resolve_followup(cleaned[:MAX_QUESTION_CHARS], history)
        sources = self.sources(resolved, k=k, filters=filters)
        passages = [s.passage for s in sources]
        reading = self.read(resolved.reader_question, sources, idf=self.retriever.idf)
        for c in reading.candidates:
            c.score = self.scorer.probability(c.features)
        log.debug("%r: %d passages, %d candidates", reading.question, len(passages), len(reading.candidates))
        return cite(question, reading.question, reading.candidates, passages, self.scorer.threshold,
                    self.settings.max_alternatives)

    def sources(self, resolved: ResolvedQuestion, k: int = 5, filters: dict | Filters | None = None) -> list[Source]:
        """The ``k`` passages to read for a resolved question. A follow-up ("Whom does he
        replace?") is about the story its previous answer came from: when some of the passages
        found quote that answer, the ``k`` are taken from their stories alone, so that the reply
        is not about another man another story says was replaced."""
        if not (resolved.is_followup and resolved.previous_answer):
            return self.retriever.sources(resolved.search_query, k=k, filters=filters)
        vector = self.retriever.query_vector(resolved.search_query)  # searched twice, embedded once
        sources = self.retriever.sources(resolved.search_query, k=k, filters=filters, vector=vector)
        quoted = re.compile(rf"(?<!\w){re.escape(resolved.previous_answer)}(?!\w)")  # "12" is not in "120"
        story = frozenset(s.passage.doc_id for s in sources if quoted.search(s.document_text))
        if not story or story == {s.passage.doc_id for s in sources}:
            return sources
        within = replace(Filters.parse(filters) or Filters(), doc_ids=story)  # the user's own filters kept
        return self.retriever.sources(resolved.search_query, k=k, filters=within, vector=vector)

    def read(self, question: str, sources: list[Source], idf=None) -> "Reading":
        """The question as the reader reads it over given ``sources`` (best first; a role
        question rephrased to the passages' words), then steps 3-6: windows, parse, read,
        complete and describe. No candidates when the sources never mention a name or figure
        of the question. ``idf``: ``callable(terms) -> {term: idf}`` of the collection
        searched, so that sharing "NSDP" with the question counts for more than sharing
        "issues". The answer scorer is fitted and reported on what this returns, and the news
        check explains answers with it: one path, so neither drifts from ``ask``."""
        texts = [s.passage.text for s in sources]
        missing = missing_names(question, texts)
        if not sources or missing:
            # A question about a name or number the retrieved articles never mention ("the
            # capital of France"): whatever span the reader found would answer something else.
            return Reading(question, [], tuple(missing))
        reader_question = rephrase_role_question(question, texts)
        return Reading(reader_question, self._candidates(reader_question, sources, idf))

    def _candidates(self, question: str, sources: list[Source], idf) -> list[Candidate]:
        asked = AskedFor.of(question, idf)
        windows = reading_windows(asked, sources, self.settings)
        if not windows:
            return []
        repaired = [self.repairer.repair(w.text) if self.repairer else Repaired.as_written(w.text) for w in windows]
        frame = self.parser.frame(question) if self.parser is not None else None
        slots = window_slots(self.parser, frame, windows, repaired)
        proposals = slot_proposals(slots)
        results = self.reader.read(question, [r.text for r in repaired], top_k=self.settings.spans_per_window,
                                   proposals=[[r.span_to_repaired(span) for _, span in p] for p, r in zip(proposals, repaired)])
        results = [r.result_to_original(result) for r, result in zip(repaired, results)]
        return describe_candidates(asked, windows, slots, proposals, results, self.parser)


_NAME_WORD = re.compile(r"\b(?:[A-Z][\w'’.-]*\w|\w*\d[\w.,%]*)")
_SENTENCE_END_BEFORE = re.compile(r"[.?!]['\"’”)]*\s+['\"‘“(]*$")
# Words that open a sentence of a question for their grammar, not as names: "... below it. What
# are they?" A name there ("... merger. Chevron bought whom?") is still checked.
_SENTENCE_OPENERS = frozenset(
    "what which who whom whose when where why how name list give tell is are was were do does did can could will "
    "would should has have had in on at for from by with after before during since the a an this that these those "
    "it its there then and but or so also".split())


def _opens_sentence(question: str, at: int, word: str) -> bool:
    """``word`` at ``at`` opens a later sentence of the question and is one of its grammar words."""
    return word.lower() in _SENTENCE_OPENERS and _SENTENCE_END_BEFORE.search(question, 0, at) is not None


# Country adjectives that are not their country's name plus a suffix (stemmed, both ways); the
# regular ones (Brazil/Brazilian, Nigeria/Nigerian, Japan/Japanese, Iraq/Iraqi) match by suffix.
_IRREGULAR_ADJECTIVES = {"britain": "british", "china": "chines", "franc": "french", "netherland": "dutch",
                         "switzerland": "swiss", "spain": "spanish", "greec": "greek", "denmark": "danish",
                         "sweden": "swedish", "finland": "finnish", "norway": "norwegian", "poland": "polish",
                         "turkey": "turkish", "ireland": "irish", "philippin": "filipino", "thailand": "thai",
                         "wale": "welsh", "scotland": "scottish", "peru": "peruvian"}
_ADJECTIVE_SUFFIXES = ("n", "an", "ian", "ean", "es", "i", "ish")  # stemmed: Japanese -> japanes
_IRREGULAR_ADJECTIVES.update({v: k for k, v in list(_IRREGULAR_ADJECTIVES.items())})


@dataclass(frozen=True)
class _PassageWords:
    """What the passages hold that a question's names are looked up in."""

    terms: set[str]  # every term ("eight" as 8, "20th" also as 20)
    names: set[str]  # the terms of capitalised words
    abbreviations: set[str]  # "ave" for "on Park Ave. and ...", months left out
    months: set[str]  # the months named, in full or in a date ("Jan. 14"), as their full terms
    acronyms: set[str]  # the initials of capitalised phrases: "nasa" for "National Aeronautics and Space Administration"

    @classmethod
    def of(cls, texts: list[str]) -> "_PassageWords":
        terms, names, abbreviations, months, acronyms = set(), set(), set(), set(), set()
        for text in texts:
            acronyms.update(a for m in _NAME_PHRASE.finditer(text) for a in _initials(m.group(0)))
            terms.update(terms_of(text))  # "eight" in a passage is the question's "8"
            names.update(t for m in _CAPITALISED.finditer(text) for t in terms_of(m.group(0)))
            abbreviations.update(m.group(1).lower() for m in _ABBREVIATION.finditer(text)
                                 if (t := terms_of(m.group(1))) and t[0] not in _MONTH_OF)  # "The." has no term
            months.update(_MONTH_OF[terms_of(m.group(1))[0]] for m in _MONTH_DATE.finditer(text))
        terms.update(m.group(1) for t in list(terms) if (m := _ORDINAL.fullmatch(t)))  # "20th" is 20
        months.update(t for t in terms if _MONTH_OF.get(t) == t)
        return cls(terms, names, abbreviations, months, acronyms)


def _name_term_present(term: str, passages: _PassageWords) -> bool:
    """``term`` or a form of it is among the passages' terms: Brazilian for Brazil, British for
    Britain, 20 for 20th, 3 for three; a month in full or abbreviated in a date (January for
    "Jan. 14", but not for "Jan Pronk"); a long word that a passage's abbreviation begins ("Avenue"
    for "Ave."); or a capitalised word of the passages one typing slip away from a long name
    ("Milennium" for Millennium, "Brainbridge" for Bainbridge): a user's typo should not make the
    chat refuse. Figures must match (1986 is not 1987), and so must shorter names, which a slip
    turns into other names (Reagan and Regan, Hansen and Hanson)."""
    present = passages.terms
    if term in present or _IRREGULAR_ADJECTIVES.get(term) in present:
        return True
    if term in _MONTH_OF:
        return _MONTH_OF[term] in passages.months
    if (ordinal := _ORDINAL.fullmatch(term)) is not None:
        return ordinal.group(1) in present
    if len(term) < 4 or any(ch.isdigit() for ch in term):  # "c1622", "1647"
        return False
    if any(term + suffix in present for suffix in _ADJECTIVE_SUFFIXES) or any(
            term.endswith(suffix) and term[: -len(suffix)] in present for suffix in _ADJECTIVE_SUFFIXES
            if len(term) - len(suffix) >= 4):
        return True
    if len(term) >= 5 and any(term.startswith(short) and len(term) > len(short) for short in passages.abbreviations):
        return True
    return len(term) >= _MIN_TYPO_LETTERS and any(
        abs(len(name) - len(term)) <= 1 and _one_slip_apart(term, name) for name in passages.names)


def _month_forms() -> dict[str, str]:
    """Each month's terms, full and abbreviated ("januari", "jan"), to its full term."""
    out = {}
    for month in MONTH_NAMES:
        full = terms_of(month)[0]
        for form in {full, *terms_of(month[:3]), *(terms_of("sept") if month == "september" else [])}:
            out[form] = full
    return out


_MONTH_OF = _month_forms()
# A month abbreviated in a date, as wire copy writes it: "Jan. 14", "Sept 3" (the same months and
# abbreviations as ``_MONTH_OF``).
_MONTH_DATE = re.compile(rf"\b({'|'.join(m[:3].capitalize() for m in MONTH_NAMES)}|Sept)\.?\s+\d{{1,2}}\b")
_ORDINAL = re.compile(r"(\d+)(?:st|nd|rd|th)")
_MIN_TYPO_LETTERS = 8  # shorter names are one slip from other names too often (Reagan, Regan)
_CAPITALISED_WORD = r"[A-Z][\w'’-]*"
_CAPITALISED = re.compile(rf"\b{_CAPITALISED_WORD}")
# "Ave." in "on Park Ave. and signed": a short capitalised word cut with a full stop inside a
# sentence (a small letter or a figure follows), not a name that ends one.
_ABBREVIATION = re.compile(r"\b([A-Z][a-z]{2,4})\.(?=\s+[a-z0-9])")


# Capitalised words run together, with the small words a name keeps inside it: "National
# Aeronautics and Space Administration", "Organization of Petroleum Exporting Countries".
_NAME_PHRASE_SKIP = frozenset({"and", "of", "for", "the", "&"})
_NAME_PHRASE = re.compile(rf"\b{_CAPITALISED_WORD}(?:\s+(?:(?:{'|'.join(map(re.escape, sorted(_NAME_PHRASE_SKIP)))})\s+)*"
                          rf"{_CAPITALISED_WORD})+")
_MAX_ACRONYM = 10  # letters: a passage in capitals is one long run, and its runs' initials grow as its square


def _initials(phrase: str) -> set[str]:
    """The initials of each run of 2 to ``_MAX_ACRONYM`` capitalised words of ``phrase`` (its
    small words skipped): "imf" and "mf" for "International Monetary Fund"."""
    words = [w for w in phrase.split() if w.lower() not in _NAME_PHRASE_SKIP]
    return {"".join(w[0] for w in words[i:j]).lower()
            for i in range(len(words)) for j in range(i + 2, min(len(words), i + _MAX_ACRONYM) + 1)}


def _is_acronym_of_passages(word: str, passages: _PassageWords) -> bool:
    """``word`` is in capitals ("NASA", "U.S") and the passages spell out a name with its
    initials ("National Aeronautics and Space Administration", "United States")."""
    letters = re.sub(r"[.'’-]", "", word)
    return len(letters) >= 2 and letters.isupper() and letters.isalpha() and letters.lower() in passages.acronyms


def _one_slip_apart(a: str, b: str) -> bool:
    """One letter added, dropped, changed or two neighbours swapped turn ``a`` into ``b``."""
    if a == b:
        return True
    if len(a) > len(b):
        a, b = b, a
    i = 0
    while i < len(a) and a[i] == b[i]:
        i += 1
    if len(a) == len(b):
        return a[i + 1:] == b[i + 1:] or (a[i + 2:] == b[i + 2:] and a[i:i + 2] == b[i:i + 2][::-1])
    return a[i:] == b[i + 1:]


def missing_names(question: str, passage_texts: list[str]) -> list[str]:
    """Names and numbers of the question (capitalised words after the first, figures) that none
    of the passages contains, in any form ("Brazilian" is found by "Brazil", "NASA" by "National
    Aeronautics and Space Administration")."""
    words = [re.sub(r"['’]s$", "", m.group(0)) for m in _NAME_WORD.finditer(question)
             if m.start() > 0 and not _opens_sentence(question, m.start(), m.group(0))]
    passages = _PassageWords.of(passage_texts)
    return [w for w in words if (terms := terms_of(w)) and not all(_name_term_present(t, passages) for t in terms)
            and not _is_acronym_of_passages(w, passages)]


def cite(question: str, reader_question: str, candidates: list[Candidate], passages: list[Passage],
         threshold: float, max_alternatives: int = 3) -> Answer:
    """The best-scored answer text with its citations, and up to ``max_alternatives`` answers from
    other documents; no answer below ``threshold``."""
    # Group by answer text: one answer, cited by every passage where it was found.
    groups: dict[str, list[Candidate]] = {}
    for c in sorted(candidates, key=lambda c: -c.score):
        groups.setdefault(c.key, []).append(c)
    ranked = sorted(groups.values(), key=lambda g: -g[0].score)
    if not ranked:
        return Answer(question, "", 0.0, [], [], passages, reader_question)

    best = ranked[0]
    top = best[0]
    if top.score < threshold:
        return Answer(question, "", top.score, [], [], passages, reader_question)

    alternatives = []
    cited_docs = {c.passage.doc_id for c in best}
    for group in ranked[1:]:
        lead = group[0]
        if lead.score < threshold or lead.passage.doc_id in cited_docs:
            continue  # alternatives come from other documents: a competing answer in the same text is just noise
        cited_docs.add(lead.passage.doc_id)
        alternatives.append(Answer(question, lead.text, lead.score, _citations(group), [], [], reader_question))
        if len(alternatives) >= max_alternatives:
            break
    return Answer(question, top.text, top.score, _citations(best), alternatives, passages, reader_question)


def _citations(group: list[Candidate]) -> list[Citation]:
    out, seen = [], set()
    for c in group:
        if c.passage.chunk_id in seen:
            continue
        seen.add(c.passage.chunk_id)
        p = c.passage
        out.append(Citation(p.doc_id, p.title, p.date, p.text, p.start, p.end, c.doc_start, c.doc_end, p.chunk_id))
    return out

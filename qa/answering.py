"""``ask()``: follow-up resolution, passages -> reading windows -> answer spans -> citations.

1. A follow-up ("Which region is it in?") is rewritten with the previous turn: its pronoun
   becomes the previous answer, and the previous question joins the search query. A
   self-contained question is used as it is, however short.
2. Retrieval returns the passages; in each, the sentences that share most words with the
   question (sentence offsets were computed at index time) become short reading windows,
   so the reader reads ~100 word pieces per passage instead of the whole chunk.
3. The reader scores spans in every window at once; spans are mapped back to document
   offsets, grouped by answer text, and cited with the passage that contains them.
4. Below the calibrated threshold the answer is empty: the articles don't say.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from .evaluation import normalize_answer
from .lexical import tokenize
from .reader import Reader
from .retrieval import Filters, check_query
from .types import Answer, Citation, Passage

WINDOWS_PER_PASSAGE = 1  # reading windows taken from each retrieved passage
MAX_WINDOWS = 5
WINDOW_CHARS = 480  # about 100 word pieces: the best sentence and, room allowing, its neighbours
DEFAULT_THRESHOLD = 0.25  # used only when the shipped reader carries no calibrated threshold
MAX_ALTERNATIVES = 3
MAX_QUESTION_CHARS = 1000  # the reader reads at most 64 word pieces of a question anyway

_PRONOUN = re.compile(r"\b(he|she|it|they|him|them|his|its|their|hers|theirs|her)\b", re.I)
_POSSESSIVE = {"his", "its", "their", "hers", "theirs"}
_CONTINUATION = re.compile(r"^\s*(?:and|also|what about|how about)\b[\s,]*", re.I)
_PROPER_NOUN = re.compile(r"(?<!^)(?<![.?!]\s)\b[A-Z][\w'-]+")


def get_reader() -> Reader:
    return Reader.load()


@dataclass(frozen=True)
class ResolvedQuestion:
    reader_question: str  # what the reader reads (pronoun replaced by its referent)
    search_query: str  # what retrieval searches (adds the previous question for follow-ups)
    is_followup: bool


def resolve_followup(question: str, history) -> ResolvedQuestion:
    """Rewrite an elliptical follow-up using the last turn of ``history``; leave others alone."""
    question = question.strip()
    turns = [(str(q), str(a or "")) for q, a in (history or []) if str(q).strip()]
    if not turns:
        return ResolvedQuestion(question, question, False)
    prev_q, prev_a = turns[-1]
    pronoun = _PRONOUN.search(question)
    continuation = _CONTINUATION.match(question)
    has_own_referent = pronoun is not None and _has_referent(question[: pronoun.start()], pronoun.group(0).lower())
    if (pronoun is None or has_own_referent) and continuation is None:
        return ResolvedQuestion(question, question, False)  # self-contained: no pollution by the last topic

    reader_q = question
    if continuation is not None and pronoun is None:
        # "What about the Auyl party?" -> ask the previous question about the new subject.
        subject = question[continuation.end():].rstrip("?").strip()
        swapped = _swap_subject(prev_q, subject)
        return ResolvedQuestion(swapped, swapped, True)  # the old subject would only mislead retrieval
    if prev_a.strip():
        word = pronoun.group(0).lower()
        referent = prev_a.strip()
        if word in _POSSESSIVE or (word == "her" and _looks_possessive(question, pronoun.end())):
            referent += "'s"
        reader_q = question[: pronoun.start()] + referent + question[pronoun.end():]
    return ResolvedQuestion(reader_q, f"{reader_q} {prev_q}", True)


_NAME = re.compile(r"[A-Z][\w'-]*(?:\s+(?:of|and|the|de)\s+[A-Z][\w'-]*|\s+[A-Z][\w'-]*)*")


def _swap_subject(previous: str, subject: str) -> str:
    """'Who chairs the People's Party of Kazakhstan?' + 'the Auyl party' -> 'Who chairs the Auyl party?'"""
    names = [m for m in _NAME.finditer(previous) if m.start() > 0]
    if not names:
        return f"{previous.rstrip('?')} ({subject})?"
    name = max(names, key=lambda m: len(m.group(0)))
    head = previous[: name.start()]
    if re.search(r"\bthe\s+$", head, re.I):
        subject = re.sub(r"^the\s+", "", subject, flags=re.I)
    return head + subject + previous[name.end():]


def _has_referent(before: str, pronoun: str) -> bool:
    """Does the question name what its pronoun refers to ("What did Tokayev say about his party?")?"""
    if _PROPER_NOUN.search(before):
        return True
    if pronoun in {"they", "them", "their", "theirs"}:  # "What do parties promise their voters?"
        return any(len(w) > 3 and w.endswith("s") and w not in {"does", "was", "has", "is", "this", "whose"}
                   for w in re.findall(r"[a-z]+", before.lower()))
    return False


def _looks_possessive(question: str, after: int) -> bool:
    nxt = re.match(r"\s+([A-Za-z]+)", question[after:])
    return bool(nxt) and nxt.group(1).lower() not in {"to", "in", "at", "on", "for", "with", "about", "from", "by", "and", "or"}


@dataclass
class _Window:
    passage: Passage
    start: int  # document offsets
    end: int
    text: str


@dataclass
class _Candidate:
    text: str
    score: float
    doc_start: int
    doc_end: int
    passage: Passage
    key: str  # normalised answer text


def answer_question(index, question: str, history=None, k: int = 5, filters: dict | Filters | None = None) -> Answer:
    check_query(question)
    resolved = resolve_followup(question[:MAX_QUESTION_CHARS], history)
    passages = index.retrieve(resolved.search_query, k=k, filters=filters)
    if not passages:
        return Answer(question, "", 0.0, [], [], [], resolved.reader_question)

    windows = _reading_windows(index, resolved.reader_question, passages)
    reader = get_reader()
    results = reader.read(resolved.reader_question, [w.text for w in windows], top_k=3)
    candidates: list[_Candidate] = []
    for window, result in zip(windows, results):
        for span in result.spans:
            key = normalize_answer(span.text)
            if not key:
                continue
            candidates.append(_Candidate(span.text, span.score, window.start + span.start,
                                         window.start + span.end, window.passage, key))
    threshold = float(reader.calibration.get("answer_threshold", DEFAULT_THRESHOLD))
    return _assemble(question, resolved.reader_question, candidates, passages, threshold)


def _reading_windows(index, question: str, passages: list[Passage]) -> list[_Window]:
    """The sentences of each passage that best match the question, as short windows."""
    store = index.store
    terms = set(tokenize(question))
    windows: list[_Window] = []
    for rank, passage in enumerate(passages):
        row = store.row_of_chunk[passage.chunk_id]
        doc_text = store.documents[passage.doc_id].text
        sentences = list(row.sentences) or [(row.start, row.end)]
        overlaps = [len(terms & set(tokenize(doc_text[s:e]))) for s, e in sentences]
        best = sorted(range(len(sentences)), key=lambda i: (-overlaps[i], i))[:WINDOWS_PER_PASSAGE]
        for i in best:
            lo, hi = i, i
            # Grow the window with neighbouring sentences while it stays short.
            while True:
                grown = False
                if lo > 0 and sentences[hi][1] - sentences[lo - 1][0] <= WINDOW_CHARS:
                    lo -= 1
                    grown = True
                if hi + 1 < len(sentences) and sentences[hi + 1][1] - sentences[lo][0] <= WINDOW_CHARS:
                    hi += 1
                    grown = True
                if not grown:
                    break
            start, end = sentences[lo][0], sentences[hi][1]
            windows.append(_Window(passage, start, end, doc_text[start:end]))
        if len(windows) >= MAX_WINDOWS:
            break
    return _merge_same_text(windows)


def _merge_same_text(windows: list[_Window]) -> list[_Window]:
    """Overlapping chunks can give the same window twice: read it once (first = best passage)."""
    seen, out = set(), []
    for w in windows:
        key = (w.passage.doc_id, w.start, w.end)
        if key not in seen:
            seen.add(key)
            out.append(w)
    return out


def _assemble(question: str, reader_question: str, candidates: list[_Candidate], passages: list[Passage],
              threshold: float) -> Answer:
    # Group by answer text: one answer, cited by every passage where it was found.
    groups: dict[str, list[_Candidate]] = {}
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
        if len(alternatives) >= MAX_ALTERNATIVES:
            break
    return Answer(question, top.text, top.score, _citations(best), alternatives, passages, reader_question)


def _citations(group: list[_Candidate]) -> list[Citation]:
    out, seen = [], set()
    for c in group:
        if c.passage.chunk_id in seen:
            continue
        seen.add(c.passage.chunk_id)
        p = c.passage
        out.append(Citation(p.doc_id, p.title, p.date, p.text, p.start, p.end, c.doc_start, c.doc_end, p.chunk_id))
    return out

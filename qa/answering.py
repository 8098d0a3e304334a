"""``ask()``: follow-up resolution, passages -> reading windows -> answer spans -> citations.

1. A follow-up ("Which region is it in?") is rewritten with the previous turn: its pronoun
   becomes what the previous turn was about (its answer when that names something, else the
   name in its question), and the previous question joins the search query. A
   self-contained question is used as it is, however short.
2. Retrieval returns the passages. A question naming something none of them mentions
   ("the capital of France") gets no answer.
3. The best sentence of each passage grows into a short reading window; the reader reads all
   windows in one forward pass and its spans become candidates with features
   (``qa/candidates.py``).
4. The answer scorer (a logistic regression fitted on SQuAD, see ``qa/train_answerer.py``)
   turns each candidate's features into P(right); spans are mapped back to document offsets,
   grouped by answer text, and cited with the passage that contains them.
5. Below the calibrated threshold the answer is empty: the articles don't say.
"""
from __future__ import annotations

import html
import json
import math
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from .candidates import Candidate, Source, read_candidates
from .lexical import tokenize
from .reader import Reader
from .retrieval import Filters, check_query
from .slots import get_slot_finder
from .types import Answer, Citation, Passage

ANSWERER_FILE = Path(__file__).resolve().parent / "reader_model" / "answerer.json"
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
    referent = _referent(prev_q, prev_a)
    if referent:
        word = pronoun.group(0).lower()
        if word in _POSSESSIVE or (word == "her" and _looks_possessive(question, pronoun.end())):
            referent += "'s"
        reader_q = question[: pronoun.start()] + referent + question[pronoun.end():]
    return ResolvedQuestion(reader_q, f"{reader_q} {prev_q}", True)


_NAME = re.compile(r"[A-Z][\w'-]*(?:\s+(?:of|and|the|de)\s+[A-Z][\w'-]*|\s+[A-Z][\w'-]*)*")


def _referent(previous_question: str, previous_answer: str) -> str:
    """What a pronoun in the follow-up points at: the previous answer when it names something
    ("May JSC", "Ermukhamet Yertysbayev"), else the name the previous question was about
    ("How many jobs will the Enbek Program create?" -> "the Enbek Program")."""
    answer = previous_answer.strip()
    if answer and answer[0].isupper() and not re.search(r"\d", answer):
        return answer
    names = [m for m in _NAME.finditer(previous_question) if m.start() > 0]
    if names:
        name = max(names, key=lambda m: len(m.group(0)))
        article = "the " if re.search(r"\bthe\s+$", previous_question[: name.start()], re.I) else ""
        return article + name.group(0)
    return answer


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


# What people put around a question in a chat box: quotes, "Q:", bullets, emoji, markup.
_TAG = re.compile(r"</?[A-Za-z][^<>]{0,200}>")
_LABEL = re.compile(r"^(?:q|question|query)\s*\d*\s*(?:[:.)\]]|\s-)\s*", re.I)
_LEADING = re.compile(r"^[^\w¿¡]+")  # anything before the first letter or digit: quotes, emoji, "- ", "> "
_TRAILING = re.compile(r"[\s\"'“”‘’«»`*_~]+$")


def normalize_question(question: str) -> str:
    """The question as the reader and retrieval should see it: markup, a "Q:" label, leading
    quotes, bullets and emoji removed. The reader keys on the question word ("How many ...")
    at the start, and found no answer to '"How many jobs ...?"' or '<b>How many ...'.
    Returns the question unchanged when nothing is left after cleaning."""
    text = html.unescape(_TAG.sub(" ", question))
    for _ in range(3):  # '- Q: "How ...' peels in several steps
        text = _LABEL.sub("", _LEADING.sub("", text.strip()))
    text = re.sub(r"\s+([?!.,;:])", r"\1", re.sub(r"\s+", " ", _TRAILING.sub("", text))).strip()
    return text or question.strip()


def answer_question(index, question: str, history=None, k: int = 5, filters: dict | Filters | None = None) -> Answer:
    """Answer ``question``; the Answer keeps the user's own text in ``question``."""
    cleaned = normalize_question(check_query(question))
    resolved = resolve_followup(cleaned[:MAX_QUESTION_CHARS], history)
    passages = index.retrieve(resolved.search_query, k=k, filters=filters)
    if not passages:
        return Answer(question, "", 0.0, [], [], [], resolved.reader_question)
    store = index.store
    sources = []
    for passage in passages:
        row = store.row_of_chunk[passage.chunk_id]
        # A chunk without sentence offsets is read whole: ``reading_windows`` falls back to the passage.
        sources.append(Source(passage, store.documents[passage.doc_id].text, list(row.sentences)))
    if missing_names(resolved.reader_question, [p.text for p in passages]):
        # The question is about a name or number the retrieved articles never mention
        # ("the capital of France"): whatever span the reader found would answer something else.
        return Answer(question, "", 0.0, [], [], passages, resolved.reader_question)
    candidates = read_candidates(get_reader(), resolved.reader_question, sources, idf=store.lexical.idf,
                                 slot_finder=get_slot_finder())
    scorer = get_answer_scorer()
    for c in candidates:
        c.score = scorer.probability(c.features)
    return _assemble(question, resolved.reader_question, candidates, passages, scorer.threshold)


_NAME_WORD = re.compile(r"\b(?:[A-Z][\w'’.-]*\w|\w*\d[\w.,%]*)")


def missing_names(question: str, passage_texts: list[str]) -> list[str]:
    """Names and numbers of the question (capitalised words after the first, figures) that none
    of the passages contains."""
    words = [re.sub(r"['’]s$", "", m.group(0)) for m in _NAME_WORD.finditer(question) if m.start() > 0]
    present = set()
    for text in passage_texts:
        present.update(tokenize(text))
    return [w for w in words if tokenize(w) and not set(tokenize(w)) <= present]


class AnswerScorer:
    """P(answer is right) from the candidate's features: a logistic regression fitted on SQuAD
    (first 24 articles, reading retrieved windows as ``ask`` does); see ``qa/train_answerer.py``."""

    def __init__(self, weights: dict[str, float], bias: float, threshold: float):
        self.weights, self.bias, self.threshold = weights, bias, threshold

    @classmethod
    def load(cls, path: Path = ANSWERER_FILE) -> "AnswerScorer":
        if not path.exists():
            raise FileNotFoundError(f"answer scorer not found: {path} (run `python -m qa.train_answerer`)")
        data = json.loads(path.read_text())
        return cls(dict(zip(data["features"], data["coef"])), data["intercept"], data["threshold"])

    def probability(self, features: dict[str, float]) -> float:
        z = self.bias + sum(w * features[name] for name, w in self.weights.items())
        return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z))))


@lru_cache(maxsize=1)
def get_answer_scorer() -> AnswerScorer:
    return AnswerScorer.load()


def _assemble(question: str, reader_question: str, candidates: list[Candidate], passages: list[Passage],
              threshold: float) -> Answer:
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
        if len(alternatives) >= MAX_ALTERNATIVES:
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

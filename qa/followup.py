"""Questions as typed: wrappers removed (``normalize_question``), and follow-ups resolved.

Follow-up questions: "How many people will it cover?" after "How many jobs will the Enbek
Program create?" is read as "How many people will the Enbek Program cover?".

An elliptical follow-up is rewritten with the previous turn: its pronoun becomes what the
previous turn was about (its answer when that names something, else the name in its question),
and the previous question joins the search query. A self-contained question is used as it is,
however short.
"""
from __future__ import annotations

import html
import re
from dataclasses import dataclass

from .settings import MAX_QUESTION_CHARS

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


_PRONOUN = re.compile(r"\b(he|she|it|they|him|them|his|its|their|hers|theirs|her)\b", re.I)
_POSSESSIVE = {"his", "its", "their", "hers", "theirs"}
_CONTINUATION = re.compile(r"^\s*(?:and|also|what about|how about)\b[\s,]*", re.I)
_PROPER_NOUN = re.compile(r"(?<!^)(?<![.?!]\s)\b[A-Z][\w'-]+")


@dataclass(frozen=True)
class ResolvedQuestion:
    reader_question: str  # what the reader reads (pronoun replaced by its referent)
    search_query: str  # what retrieval searches (adds the previous question for follow-ups)
    is_followup: bool
    previous_answer: str = ""  # a follow-up's previous answer: the story it quoted is the one talked about


def resolve_followup(question: str, history) -> ResolvedQuestion:
    """Rewrite an elliptical follow-up using the last turn of ``history``; leave others alone."""
    question = question.strip()
    # A turn is cut like a question: a client may send megabytes of "history" through /ask.
    turns = [(str(q)[:MAX_QUESTION_CHARS], str(a or "")[:MAX_QUESTION_CHARS]) for q, a in (history or []) if str(q).strip()]
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
        return ResolvedQuestion(swapped, swapped, True)  # a new subject: neither the old one nor its story
    referent = _referent(prev_q, prev_a)
    if referent:
        word = pronoun.group(0).lower()
        if word in _POSSESSIVE or (word == "her" and _looks_possessive(question, pronoun.end())):
            referent += "'s"
        reader_q = question[: pronoun.start()] + referent + question[pronoun.end():]
    return ResolvedQuestion(reader_q, f"{reader_q} {prev_q}", True, prev_a.strip())


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

"""Dense + BM25 retrieval over a loaded store, fused, filtered, returned as ``Passage``s."""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Iterable

import numpy as np

from .embedding import Embedder
from .errors import QuestionError
from .settings import MAX_QUERY_CHARS
from .store import Store
from .text import date_number, iso_date
from .types import Passage, Source

log = logging.getLogger(__name__)

MODES = ("hybrid", "dense", "lexical")
RRF_K = 60  # the constant of Cormack et al. (2009); larger flattens the rank curve
MAX_K = 50  # passages per question; the chat offers up to 20
_SURROGATE = re.compile("[\ud800-\udfff]")


@dataclass(frozen=True)
class Filters:
    """Restrict retrieval to some documents and/or a date range (inclusive, ISO dates).

    A date bound excludes documents whose date is unknown.
    """

    doc_ids: frozenset[str] | None = None
    date_from: str | None = None
    date_to: str | None = None

    @classmethod
    def parse(cls, filters: "dict | Filters | None") -> "Filters | None":
        if filters is None or isinstance(filters, Filters):
            return filters
        if not isinstance(filters, dict):
            raise TypeError(f"filters must be a dict like {{'doc_ids': [...], 'date_from': 'YYYY-MM-DD'}}, got {type(filters).__name__}")
        unknown = set(filters) - {"doc_ids", "date_from", "date_to"}
        if unknown:
            raise QuestionError(f"unknown filter(s) {sorted(unknown)}; use doc_ids, date_from, date_to")
        doc_ids = filters.get("doc_ids")
        if isinstance(doc_ids, str):
            doc_ids = [doc_ids]
        return cls(
            doc_ids=frozenset(doc_ids) if doc_ids is not None else None,
            date_from=_iso(filters.get("date_from"), "date_from"),
            date_to=_iso(filters.get("date_to"), "date_to"),
        )

    def document_mask(self, doc_ids: np.ndarray, dates: np.ndarray) -> np.ndarray:
        """Which documents pass, given their ids (a sorted string array) and dates (YYYYMMDD
        integers, 0 for none): those named by ``doc_ids`` (when given) whose date lies in the range
        (when one is given; a document without a date is then left out). Named documents are
        looked up by binary search, not compared with every id: at half a million documents
        that took 130 ms a question."""
        if self.doc_ids is not None:
            wanted = np.array(sorted(self.doc_ids), dtype=str)
            at = np.minimum(np.searchsorted(doc_ids, wanted), max(len(doc_ids) - 1, 0))
            mask = np.zeros(len(doc_ids), dtype=bool)
            if len(doc_ids):
                mask[at[doc_ids[at] == wanted]] = True
        else:
            mask = np.ones(len(doc_ids), dtype=bool)
        if self.date_from or self.date_to:
            mask &= dates > 0
            if self.date_from:
                mask &= dates >= date_number(self.date_from)
            if self.date_to:
                mask &= dates <= date_number(self.date_to)
        return mask


def _iso(value, name: str) -> str | None:
    if value in (None, ""):
        return None
    iso = iso_date(str(value)[:10])
    if iso is None:
        raise QuestionError(f"{name} must be an ISO date (YYYY-MM-DD), got {value!r}")
    return iso


def check_query(query: str) -> str:
    """The query, cut to ``MAX_QUERY_CHARS``, with lone surrogates (half an emoji from a broken
    client) replaced by spaces: they cannot be encoded, and the tokenizer raised TypeError."""
    if not isinstance(query, str):
        raise TypeError(f"query must be a string, got {type(query).__name__}")
    query = _SURROGATE.sub(" ", query[:MAX_QUERY_CHARS])
    if not query.strip():
        raise QuestionError("query is empty: ask about something in the articles")
    return query


def check_k(k, limit: int = MAX_K) -> int:
    """``k`` as an int in 0..limit: every passage asked for is embedded, scored and read."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise QuestionError(f"k must be a whole number of passages, got {k!r}")
    if k > limit:
        raise QuestionError(f"k is at most {limit} passages, got {k}")
    return int(k)


class Retriever:
    """Passages of one loaded store for a query: dense and BM25 rankings fused, filters applied."""

    def __init__(self, store: Store, embedder: Embedder):
        self.store = store
        self.embedder = embedder

    def sources(self, query: str, k: int = 5, filters: dict | Filters | None = None,
                vector: np.ndarray | None = None) -> list[Source]:
        """``retrieve``'s passages with what reading them needs: their documents' text and sentences."""
        out = []
        for passage in self.retrieve(query, k=k, filters=filters, vector=vector):
            row = self.store.chunk_row(passage.chunk_id)
            # A chunk stored without sentence offsets is read whole (``reading_windows`` falls back to the passage).
            out.append(Source(passage, self.store.documents[passage.doc_id].text, list(row.sentences)))
        return out

    def idf(self, terms) -> dict[str, float]:
        """The collection's idf of each term (BM25's), for weighing the words a question shares."""
        return self.store.lexical.idf(terms)

    def query_vector(self, query: str) -> np.ndarray:
        """The dense vector ``retrieve`` searches with for ``query``: a caller that searches one
        question twice (a follow-up: all stories, then its previous answer's) embeds it once."""
        return self.embedder.encode_query(check_query(query))

    def retrieve(self, query: str, k: int = 5, filters: dict | Filters | None = None, mode: str = "hybrid",
                 candidates: int | None = None, limit: int = MAX_K, vector: np.ndarray | None = None) -> list[Passage]:
        """``limit`` bounds ``k`` (MAX_K for questions from outside; an evaluation that ranks
        hundreds of passages raises it explicitly). ``vector``: ``query_vector(query)``, when the
        caller has it already."""
        query = check_query(query)
        k = check_k(k, limit)
        if k <= 0:
            return []
        if mode not in MODES:
            raise QuestionError(f"mode must be one of {MODES}, got {mode!r}")
        store = self.store
        if not len(store):
            return []
        parsed = Filters.parse(filters)
        allowed_rows = self._allowed_rows(parsed)
        if allowed_rows is not None and not allowed_rows.any():
            return []
        n = min(len(store), candidates or max(50, 10 * k))

        ranked: list[list[int]] = []
        raw: dict[str, dict[int, float]] = {}
        if mode in ("hybrid", "dense"):
            allowed_ids = store.vector_ids[allowed_rows] if allowed_rows is not None else None
            if vector is None:
                vector = self.embedder.encode_query(query)
            ids, scores = store.vectors.search(vector, n, allowed_ids)
            rows = store.rows_of_vectors(ids).tolist()
            ranked.append(rows)
            raw["dense"] = dict(zip(rows, scores.tolist()))
        if mode in ("hybrid", "lexical"):
            # The lexical index applies the same filters itself (documents by id, dates by range).
            ids, scores = store.lexical.search(query, n, *(
                (parsed.doc_ids, parsed.date_from, parsed.date_to) if parsed else ()))
            rows = store.rows_of_vectors(ids).tolist()
            ranked.append(rows)
            raw["lexical"] = dict(zip(rows, scores.tolist()))

        if mode == "hybrid":
            fused = reciprocal_rank_fusion(ranked)
        else:
            fused = raw[mode]
        best = sorted(fused.items(), key=lambda kv: (-kv[1], kv[0]))[:k]
        return [self._passage(row, score) for row, score in best]

    def _allowed_rows(self, filters: Filters | None) -> np.ndarray | None:
        if filters is None:
            return None
        store = self.store
        return filters.document_mask(store.doc_ids, store.doc_dates)[store.row_doc]

    def _passage(self, row_index: int, score: float) -> Passage:
        row = self.store.row(row_index)
        doc = self.store.documents[row.doc_id]
        return Passage(
            text=doc.text[row.start:row.end], doc_id=row.doc_id, title=doc.title, date=doc.date,
            start=row.start, end=row.end, score=float(score), chunk_id=row.chunk_id,
        )


def reciprocal_rank_fusion(rankings: Iterable[list[int]], k: int = RRF_K) -> dict[int, float]:
    fused: dict[int, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking):
            fused[item] = fused.get(item, 0.0) + 1.0 / (k + rank + 1)
    return fused


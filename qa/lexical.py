"""BM25 over chunks, so names, numbers and rare words are found where embeddings miss them.

The engine is tantivy (Lucene's design in Rust): an index is a folder of immutable segment
files, an update writes only the new rows and a small file of deleted ones, and tantivy merges
segments itself. Measured at a million chunks (``bench/bench_scale.py lexical``, BENCHMARKS.md):
a one-article update takes 0.04 s where bm25s, which can only refit whole, took 85 s; a search
3.1 ms against 2.6 ms. The text is analysed here, not by tantivy: each row is stored as its
``tokenize`` terms joined by spaces and split again by tantivy's whitespace tokenizer, so chunks,
queries and the idf that ``qa/candidates.py`` weighs words by all use one analyser.

Each generation of the index has its own folder (``qa/store.py``). ``LexicalIndex.derive`` makes
the next one by hard-linking the previous folder's files (tantivy never changes a file once
written, and replaces its ``meta.json`` by renaming) and then updating it, so the previous
generation stays whole for the readers that still use it and for a crash in the middle.
"""
from __future__ import annotations

import math
import os
import re
from collections import Counter
from pathlib import Path
from typing import Iterable, NamedTuple

import bm25s
import numpy as np
import Stemmer
import tantivy

from .text import date_number

# Keep decimals and codes whole ("170.5", "4.6", "KZT560", "2020-2025" -> "2020", "2025").
_TOKEN = re.compile(r"\w+(?:[.,]\d+)*", re.UNICODE)
STOPWORDS = frozenset(bm25s.stopwords.STOPWORDS_EN)  # English function words
_stemmer = Stemmer.Stemmer("english")
MAX_QUERY_TOKENS = 1024  # a pasted page as a query is still searched, by its first words
WRITER_HEAP = 64_000_000  # bytes tantivy buffers before it writes a segment; a large build gets more
BULK_ROWS = 100_000
_LOCK_FILES = (".tantivy-writer.lock", ".tantivy-meta.lock")


def idf_weight(n_docs: int, df: int) -> float:
    """log((N + 1) / (df + 0.5)): the rarer a term, the more sharing it says (never negative)."""
    return math.log((n_docs + 1) / (df + 0.5))


def tokenize(text: str) -> list[str]:
    """Lowercased, stemmed, stopword-free terms; the same function for chunks and queries."""
    words = [w for w in _TOKEN.findall(text.lower()) if w not in STOPWORDS]
    return _stemmer.stemWords(words)


class LexicalRow(NamedTuple):
    vector_id: int
    doc_id: str
    date: str | None  # ISO date of the row's document, for date filters
    terms: list[str]


def _schema() -> tantivy.Schema:
    builder = tantivy.SchemaBuilder()
    builder.add_integer_field("row_id", indexed=True, fast=True)  # the chunk's vector id
    builder.add_text_field("doc", tokenizer_name="raw")  # document id, for doc_ids filters
    builder.add_integer_field("date", indexed=True, fast=True)  # YYYYMMDD; absent when unknown
    builder.add_text_field("terms", tokenizer_name="whitespace", index_option="freq")
    return builder.build()


class LexicalIndex:
    """BM25 (k1 1.2, b 0.75) over the live chunk rows of one generation, keyed by vector id."""

    def __init__(self, index: tantivy.Index, directory: Path):
        self._index = index
        self.directory = directory
        self._schema = index.schema

    @classmethod
    def create(cls, directory: Path) -> "LexicalIndex":
        directory.mkdir(parents=True)
        return cls(tantivy.Index(_schema(), path=str(directory), reuse=False), directory)

    @classmethod
    def open(cls, directory: Path) -> "LexicalIndex":
        if not (directory / "meta.json").is_file():
            raise FileNotFoundError(f"{directory / 'meta.json'} is missing")
        return cls(tantivy.Index.open(str(directory)), directory)

    @classmethod
    def derive(cls, previous: Path, directory: Path) -> "LexicalIndex":
        """A copy of the index in ``previous`` at ``directory``, made of hard links (no bytes copied)."""
        directory.mkdir(parents=True)
        for path in previous.iterdir():
            if path.is_file() and path.name not in _LOCK_FILES:
                os.link(path, directory / path.name)
        return cls.open(directory)

    @property
    def size(self) -> int:
        return self._index.searcher().num_docs

    def update(self, deleted_ids: Iterable[int], rows: list[LexicalRow]) -> None:
        """Delete the rows of ``deleted_ids``, add ``rows``, commit, and wait for tantivy's merges."""
        bulk = len(rows) >= BULK_ROWS
        writer = self._index.writer(heap_size=WRITER_HEAP * (4 if bulk else 1), num_threads=2 if bulk else 1)
        for vector_id in deleted_ids:
            writer.delete_documents_by_term("row_id", int(vector_id))
        for row in rows:
            fields = {"row_id": row.vector_id, "doc": row.doc_id, "terms": " ".join(row.terms)}
            if row.date:
                fields["date"] = date_number(row.date)
            writer.add_document(tantivy.Document(**fields))
        writer.commit()
        writer.wait_merging_threads()
        self._index.reload()

    def search(self, query: str, n: int, doc_ids: Iterable[str] | None = None, date_from: str | None = None,
               date_to: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The ``n`` best (vector ids, BM25 scores) for ``query``, best first, among the rows of
        ``doc_ids`` (when given) whose date lies in the range (when given; a row without a date
        is then left out)."""
        counts = Counter(tokenize(query)[:MAX_QUERY_TOKENS])
        if not counts or n <= 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        schema = self._schema
        # A term asked twice weighs twice, as when BM25 sums over the query's terms.
        should = [(tantivy.Occur.Should, tantivy.Query.boost_query(tantivy.Query.term_query(schema, "terms", t), float(c))
                   if c > 1 else tantivy.Query.term_query(schema, "terms", t)) for t, c in counts.items()]
        query_ = tantivy.Query.boolean_query(should)
        filters = []
        if doc_ids is not None:
            filters.append(tantivy.Query.term_set_query(schema, "doc", sorted(doc_ids)))
        if date_from or date_to:
            filters.append(tantivy.Query.range_query(schema, "date", tantivy.FieldType.Integer,
                                                     date_number(date_from) if date_from else None,
                                                     date_number(date_to) if date_to else None))
        if filters:
            # Filters only select: a constant score of 0 leaves the BM25 scores as they are.
            query_ = tantivy.Query.boolean_query([(tantivy.Occur.Must, query_)] + [
                (tantivy.Occur.Must, tantivy.Query.const_score_query(f, 0.0)) for f in filters])
        searcher = self._index.searcher()
        hits = searcher.search(query_, n, count=False).hits
        if not hits:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        ids = searcher.fast_field_values("row_id", [address for _, address in hits])
        return np.asarray(ids, dtype=np.int64), np.asarray([score for score, _ in hits], dtype=np.float32)

    def idf(self, terms) -> dict[str, float]:
        """``idf_weight`` of each term over the chunk rows (the rarest weigh most)."""
        searcher = self._index.searcher()
        n = searcher.num_docs
        return {t: idf_weight(n, searcher.doc_freq("terms", t)) for t in terms}

"""BM25 over chunks (bm25s), so names, numbers and rare words are found where embeddings miss them."""
from __future__ import annotations

import json
import math
import re
from pathlib import Path

import bm25s
import numpy as np
import Stemmer

# Keep decimals and codes whole ("170.5", "4.6", "KZT560", "2020-2025" -> "2020", "2025").
_TOKEN = re.compile(r"\w+(?:[.,]\d+)*", re.UNICODE)
STOPWORDS = frozenset(bm25s.stopwords.STOPWORDS_EN)  # English function words
_stemmer = Stemmer.Stemmer("english")
MAX_QUERY_TOKENS = 1024  # a pasted page as a query is still searched, by its first words


def idf_weight(n_docs: int, df: int) -> float:
    """log((N + 1) / (df + 0.5)): the rarer a term, the more sharing it says (never negative)."""
    return math.log((n_docs + 1) / (df + 0.5))


def tokenize(text: str) -> list[str]:
    """Lowercased, stemmed, stopword-free terms; the same function for chunks and queries."""
    words = [w for w in _TOKEN.findall(text.lower()) if w not in STOPWORDS]
    return _stemmer.stemWords(words)


class LexicalIndex:
    """BM25 over a fixed list of token lists; row i scores chunk row i of the store."""

    def __init__(self, bm25: bm25s.BM25 | None = None, size: int = 0):
        self._bm25 = bm25
        self.size = size

    @classmethod
    def fit(cls, token_lists: list[list[str]]) -> "LexicalIndex":
        if not token_lists:
            return cls(None, 0)
        bm25 = bm25s.BM25()
        bm25.index(token_lists, show_progress=False)
        return cls(bm25, len(token_lists))

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every row for ``query`` (zeros where no term matches)."""
        if self._bm25 is None:
            return np.zeros(0, dtype=np.float32)
        vocab = self._bm25.vocab_dict
        terms = [t for t in tokenize(query)[:MAX_QUERY_TOKENS] if t in vocab]
        if not terms:
            return np.zeros(self.size, dtype=np.float32)
        return np.asarray(self._bm25.get_scores(terms), dtype=np.float32)

    def idf(self, terms) -> dict[str, float]:
        """``idf_weight`` of each term over the chunk rows (the rarest weigh most)."""
        if self._bm25 is None:
            return {t: idf_weight(self.size, 0) for t in terms}
        vocab, indptr = self._bm25.vocab_dict, self._bm25.scores["indptr"]
        out = {}
        for t in terms:
            i = vocab.get(t)
            out[t] = idf_weight(self.size, 0 if i is None else int(indptr[i + 1] - indptr[i]))
        return out

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "size.json").write_text(json.dumps({"size": self.size}))
        if self._bm25 is not None:
            self._bm25.save(str(directory), show_progress=False)

    @classmethod
    def load(cls, directory: Path) -> "LexicalIndex":
        size = json.loads((directory / "size.json").read_text())["size"]
        if size == 0:
            return cls(None, 0)
        return cls(bm25s.BM25.load(str(directory), show_progress=False, verbosity=0), size)

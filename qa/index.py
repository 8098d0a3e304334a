"""``Index``: one loaded index with retrieval and answering, for users who hold several."""
from __future__ import annotations

from pathlib import Path

from .embedding import get_embedder
from .retrieval import Filters, Retriever
from .store import DocumentInfo, Store
from .types import Answer, Document, Passage


class Index:
    """A loaded, read-only index. Updates write a new generation on disk; load again to see them."""

    def __init__(self, store: Store):
        self.store = store
        self.embedder = get_embedder(store.model)
        self.retriever = Retriever(store, self.embedder)

    @classmethod
    def load(cls, index_dir: str | Path = "index", model: str | None = None) -> "Index":
        """Load ``index_dir``; ``model`` (optional) must match the model the index was built with."""
        return cls(Store.load(index_dir, model=model))

    @property
    def directory(self) -> Path:
        return self.store.directory

    @property
    def generation(self) -> str:
        return self.store.manifest["generation"]

    def retrieve(self, query: str, k: int = 5, filters: dict | Filters | None = None, mode: str = "hybrid") -> list[Passage]:
        """The ``k`` best passages for ``query``, best first.

        ``filters``: ``{"doc_ids": [...], "date_from": "YYYY-MM-DD", "date_to": "YYYY-MM-DD"}``.
        ``mode``: "hybrid" (dense + BM25, fused), "dense" or "lexical".
        """
        return self.retriever.retrieve(query, k=k, filters=filters, mode=mode)

    def ask(self, question: str, history=None, k: int = 5, filters: dict | Filters | None = None) -> Answer:
        """Answer ``question`` with a span copied from the articles (see ``qa.answering``)."""
        from .answering import answer_question

        return answer_question(self, question, history=history, k=k, filters=filters)

    def documents(self) -> list[DocumentInfo]:
        return self.store.document_infos()

    def document(self, doc_id: str) -> Document:
        try:
            return self.store.documents[doc_id]
        except KeyError:
            raise KeyError(f"no document {doc_id!r} in the index at {self.directory}") from None

    def __len__(self) -> int:
        return len(self.store.documents)

    def __repr__(self) -> str:
        return f"Index({str(self.directory)!r}, documents={len(self.store.documents)}, chunks={len(self.store.rows)}, model={self.store.model!r})"

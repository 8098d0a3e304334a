"""``Index``: the composition root. One loaded index: its store, retriever and answering pipeline."""
from __future__ import annotations

import threading
from pathlib import Path

from . import models
from .answering import Answerer
from .retrieval import Filters, Retriever
from .settings import AnswerSettings
from .store import DocumentInfo, Store
from .types import Answer, Document, Passage


class Index:
    """A loaded, read-only index. Updates write a new generation on disk; load again to see them.

    ``settings`` configure ``ask``; ``answerer`` replaces the whole answering pipeline (a test's
    or a benchmark's). Without one, the shipped models are loaded on the first ``ask`` (or by
    ``warm_up``), so an index used only to retrieve never loads the reader."""

    def __init__(self, store: Store, settings: AnswerSettings | None = None, answerer: Answerer | None = None):
        self.store = store
        self.settings = settings or AnswerSettings()
        self.retriever = Retriever(store, models.embedder(store.model, store.embedding_backend))
        self._answerer = answerer
        self._answerer_lock = threading.Lock()

    @classmethod
    def load(cls, index_dir: str | Path = "index", model: str | None = None,
             settings: AnswerSettings | None = None) -> "Index":
        """Load ``index_dir``; ``model`` (optional) must match the model the index was built with."""
        return cls(Store.load(index_dir, model=model), settings)

    @property
    def directory(self) -> Path:
        return self.store.directory

    @property
    def answerer(self) -> Answerer:
        """The answering pipeline over this index's retriever, built on first use."""
        with self._answerer_lock:
            if self._answerer is None:
                self._answerer = Answerer.from_settings(self.retriever, self.settings)
            return self._answerer

    def warm_up(self) -> None:
        """Load the answering models and run each once."""
        self.answerer.warm_up()

    def retrieve(self, query: str, k: int = 5, filters: dict | Filters | None = None, mode: str = "hybrid") -> list[Passage]:
        """The ``k`` best passages for ``query``, best first.

        ``filters``: ``{"doc_ids": [...], "date_from": "YYYY-MM-DD", "date_to": "YYYY-MM-DD"}``.
        ``mode``: "hybrid" (dense + BM25, fused), "dense" or "lexical".
        """
        return self.retriever.retrieve(query, k=k, filters=filters, mode=mode)

    def ask(self, question: str, history=None, k: int = 5, filters: dict | Filters | None = None) -> Answer:
        """Answer ``question`` with a span copied from the articles (see ``qa.answering``)."""
        return self.answerer.ask(question, history=history, k=k, filters=filters)

    def documents(self, newest: int | None = None) -> list[DocumentInfo]:
        """The indexed documents' metadata (id, title, date, passages, source, length), by id;
        ``newest=N``: only the N newest (by date, then id), for listing a large archive."""
        return self.store.document_infos(newest)

    @property
    def chunk_count(self) -> int:
        """How many passages (chunks) the index holds."""
        return len(self.store)

    def document(self, doc_id: str) -> Document:
        try:
            return self.store.documents[doc_id]
        except KeyError:
            raise KeyError(f"no document {doc_id!r} in the index at {self.directory}") from None

    def __len__(self) -> int:
        return len(self.store.documents)

    def __repr__(self) -> str:
        return f"Index({str(self.directory)!r}, documents={len(self.store.documents)}, chunks={len(self.store)}, model={self.store.model!r})"

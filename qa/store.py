"""The persisted index: documents, chunks, FAISS vectors and BM25, with a manifest.

Layout of ``index/``::

    manifest.json        format version, model, dimension, chunker settings, per-document
                         hashes and chunk counts, counts, and the generation in use
    gen-000007/          one complete, immutable generation
        documents.jsonl  cleaned text and metadata of every document
        chunks.jsonl     chunk rows: vector id, chunk id, document, offsets, sentence offsets
        tokens.jsonl     BM25 terms of each chunk row (read only when updating)
        vectors.faiss    FAISS index keyed by vector id
        lexical/         bm25s index over the chunk rows

An update writes a new generation beside the old one and then replaces ``manifest.json``
with ``os.replace`` (atomic): a crash or Ctrl-C at any point leaves the previous manifest
pointing at the previous, untouched generation. Old generations are deleted afterwards.
``sync`` (one function) decides what happens to each document: unchanged documents keep
their chunks and vectors; new and changed ones (by content hash) are chunked and embedded.
"""
from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import shutil
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from .chunking import ChunkerSettings, sentence_spans
from .documents import load_documents
from . import models
from .embedding import Embedder, check_backend, default_backend
from .engines import LocalEngine, get_engine
from .lexical import LexicalIndex, tokenize
from .types import Chunk, Document, UpdateSummary
from .errors import (REBUILD_HINT, IndexBusyError, IndexDamagedError, IndexMismatchError, IndexNotFoundError,
                     IndexStateError)
from .vectors import VectorIndex, choose_type

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
TMP_MANIFEST = f".{MANIFEST}.tmp"
LOCK_FILE = ".lock"
LOCK_TIMEOUT_S = 600.0  # a second writer waits this long for the first, then gives up with IndexBusyError
# The keys ``Store.load`` and ``sync`` read; a manifest without one of them is damaged.
REQUIRED_KEYS = ("format_version", "model", "dimension", "chunker", "index_type", "next_vector_id", "documents",
                 "generation")
_GENERATION = re.compile(r"gen-(\d{6,})")
# Everything a damaged file can raise while it is parsed: faiss reports a truncated file as RuntimeError.
_LOAD_ERRORS = (OSError, ValueError, KeyError, TypeError, AttributeError, IndexError, RuntimeError)


Progress = Callable[[int, int, str], None]  # (done, total, message)


@dataclass(frozen=True)
class ChunkRow:
    """A chunk as stored: its text is ``document.text[start:end]``; sentences are document offsets."""

    vector_id: int
    chunk_id: str
    doc_id: str
    start: int
    end: int
    sentences: tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class DocumentInfo:
    doc_id: str
    title: str | None
    date: str | None
    n_chunks: int
    source_path: str | None
    chars: int


class Store:
    """One loaded generation of the index (read-only once loaded)."""

    def __init__(self, directory: Path, manifest: dict, documents: dict[str, Document], rows: list[ChunkRow],
                 vectors: VectorIndex, lexical: LexicalIndex):
        self.directory = directory
        self.manifest = manifest
        self.documents = documents
        self.rows = rows
        self.vectors = vectors
        self.lexical = lexical
        self.row_of_vector = {row.vector_id: i for i, row in enumerate(rows)}
        self.row_of_chunk = {row.chunk_id: row for row in rows}
        self.vector_ids = np.fromiter((r.vector_id for r in rows), dtype=np.int64, count=len(rows))
        # Per document (sorted by id) and per row, as arrays: a filter becomes a few vectorised
        # comparisons over the documents and one gather over the rows, not a loop per question.
        self.doc_ids = np.array(sorted(documents), dtype=str)
        self.doc_dates = np.array([documents[d].date or "" for d in self.doc_ids.tolist()], dtype=str)
        position = {doc_id: i for i, doc_id in enumerate(self.doc_ids.tolist())}
        self.row_doc = np.fromiter((position[r.doc_id] for r in rows), dtype=np.int64, count=len(rows))

    @property
    def model(self) -> str:
        return self.manifest["model"]

    @property
    def embedding_backend(self) -> str:
        """How the vectors were computed (``qa/embedding.py``); queries use the same. Indexes
        written before backends existed were all built with torch."""
        return self.manifest.get("embedding_backend", "torch")

    def document_infos(self) -> list[DocumentInfo]:
        per_doc = self.manifest["documents"]
        return [
            DocumentInfo(d.doc_id, d.title, d.date, per_doc[d.doc_id]["chunks"], d.source_path, len(d.text))
            for d in sorted(self.documents.values(), key=lambda d: d.doc_id)
        ]

    # ---- loading -----------------------------------------------------------------------
    @classmethod
    def load(cls, index_dir: str | Path, model: str | None = None) -> "Store":
        directory = Path(index_dir)
        manifest = read_manifest(directory)
        check_compatible(manifest, directory, model)
        gen = directory / manifest["generation"]
        if not gen.is_dir():
            raise IndexDamagedError(f"index at {directory} is damaged (its generation {manifest['generation']} is "
                                    f"missing); {REBUILD_HINT}")
        try:
            documents = {}
            with open(gen / "documents.jsonl", encoding="utf-8") as fh:
                for line in fh:
                    doc = Document(**json.loads(line))
                    documents[doc.doc_id] = doc
            rows = []
            with open(gen / "chunks.jsonl", encoding="utf-8") as fh:
                for line in fh:
                    r = json.loads(line)
                    rows.append(ChunkRow(r["vector_id"], r["chunk_id"], r["doc_id"], r["start"], r["end"],
                                         tuple(tuple(s) for s in r["sentences"])))
            vectors = VectorIndex.load(gen / "vectors.faiss", manifest["index_type"])
            lexical = LexicalIndex.load(gen / "lexical")
        except _LOAD_ERRORS as exc:
            raise IndexDamagedError(f"index at {directory} is damaged ({_short(exc)}); {REBUILD_HINT}") from exc
        if len(vectors) != len(rows) or lexical.size != len(rows) or set(manifest["documents"]) != set(documents):
            raise IndexDamagedError(
                f"index at {directory} is inconsistent ({len(rows)} chunks, {len(vectors)} vectors, "
                f"{lexical.size} BM25 rows, {len(documents)} documents for {len(manifest['documents'])} in the "
                f"manifest); {REBUILD_HINT}"
            )
        return cls(directory, manifest, documents, rows, vectors, lexical)


def read_manifest(directory: Path) -> dict:
    path = directory / MANIFEST
    if not path.exists():
        raise IndexNotFoundError(f"no index at {directory} (no {MANIFEST}); build it with `python -m qa index`")
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
    if not isinstance(manifest["documents"], dict) or not isinstance(manifest["chunker"], dict):
        raise IndexDamagedError(f"{path} is damaged (documents or chunker is not an object); {REBUILD_HINT}")
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
) -> UpdateSummary:
    """Bring the index in ``index_dir`` up to date with the files in ``documents_dir``.

    ``rebuild`` re-embeds everything and never reads the old manifest or generations, so it
    repairs an index folder in any state. A second writer waits up to ``lock_timeout`` seconds
    for the first one (saying so), then raises ``IndexBusyError``. ``embedding_backend`` (default:
    ``QA_EMBEDDING_BACKEND`` or torch) applies to a new or rebuilt index; an existing one keeps
    the backend it was built with, and asking for another is an ``IndexMismatchError``.
    ``engine``: ``local`` or ``ray`` reads, chunks and embeds (``qa/engines.py``); both write
    the same index.
    """
    engine = get_engine(engine) if isinstance(engine, str) else engine
    t0 = time.perf_counter()
    index_dir = Path(index_dir)
    notify = progress or (lambda done, total, message: None)
    try:
        index_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise IndexStateError(f"cannot create the index folder {index_dir} ({exc.strerror or exc})") from exc
    with _exclusive(index_dir, lock_timeout, notify):
        # Whatever a crash (or kill -9) left behind goes before anything new is written.
        current = _current_generation(index_dir)
        _remove_leftovers(index_dir, current, damaged=current is None and (index_dir / MANIFEST).exists() and not rebuild)
        old = None
        if not rebuild and (index_dir / MANIFEST).exists():
            old = Store.load(index_dir, model=model)
        notify(0, 1, "reading documents")
        # Files whose bytes the index already holds are not parsed and cleaned again.
        report = load_documents(documents_dir, known={d.sha256: d for d in old.documents.values()} if old else None,
                                load_files=engine.load_files)
        model_name = model or (old.model if old else None) or (embedder.name if embedder else None)
        if old and embedding_backend and embedding_backend != old.embedding_backend:
            raise IndexMismatchError(
                f"index at {index_dir} was built with the {old.embedding_backend} embedding backend, not "
                f"{embedding_backend}: rebuild it with `python -m qa index --rebuild --embedding-backend {embedding_backend}`")
        backend = check_backend(old.embedding_backend if old else
                                (embedding_backend or (embedder.backend if embedder else default_backend())))
        settings = chunker_settings or (_stored_settings(old) if old else ChunkerSettings())
        if old and asdict(settings) != old.manifest["chunker"]:
            raise IndexMismatchError(
                f"index at {index_dir} was built with chunker settings {old.manifest['chunker']}, not {asdict(settings)}: "
                f"rebuild it with `python -m qa index --rebuild`"
            )

        old_docs = old.documents if old else {}
        skipped = _SkippedFiles(path for path, _ in report.skipped)
        new_docs: dict[str, Document] = {}
        to_embed: list[Document] = []
        added = updated = unchanged = 0
        for doc in report.documents:
            previous = old_docs.get(doc.doc_id)
            if previous is not None and previous.sha256 == doc.sha256:
                new_docs[doc.doc_id] = previous
                unchanged += 1
            else:
                new_docs[doc.doc_id] = doc
                to_embed.append(doc)
                added += previous is None
                updated += previous is not None
        # A document whose file is now unreadable keeps its last good version: a bad file loses nothing.
        for doc_id, previous in old_docs.items():
            if doc_id not in new_docs and skipped.holds(previous):
                new_docs[doc_id] = previous
                unchanged += 1
        removed = sum(1 for doc_id in old_docs if doc_id not in new_docs)

        embedder = embedder or (models.embedder(model_name, backend) if (to_embed or old is None) else None)
        if model_name is None:
            model_name = embedder.name
        if old is None and embedder.name != model_name:
            raise IndexMismatchError(f"embedder {embedder.name!r} does not match requested model {model_name!r}")
        if embedder is not None and embedder.backend != backend:
            raise IndexMismatchError(f"embedder backend {embedder.backend!r} does not match the index's {backend!r}")

        # Chunk and embed what is new or changed, in one batch.
        new_rows: list[ChunkRow] = []
        new_tokens: list[list[str]] = []
        texts: list[str] = []
        next_id = int(old.manifest["next_vector_id"]) if old else 0
        if to_embed:
            parts = engine.chunk_and_embed(to_embed, settings, embedder,
                                           lambda batch: _encode_with_progress(embedder, batch, notify), notify)
            for chunks, _ in parts:
                for chunk in chunks:
                    new_rows.append(_row(next_id, chunk))
                    new_tokens.append(tokenize(chunk.text))
                    texts.append(chunk.text)
                    next_id += 1
            vectors_new = np.vstack([v for _, v in parts]).astype(np.float32, copy=False)
        else:
            vectors_new = np.zeros((0, embedder.dimension if embedder else old.manifest["dimension"]), np.float32)

        # Keep the rows of unchanged documents, drop the rest, append the new ones.
        old_tokens = _read_tokens(old) if old else []
        kept_rows, kept_tokens, dropped_ids = [], [], []
        if old:
            for row, toks in zip(old.rows, old_tokens):
                if new_docs.get(row.doc_id) is old_docs.get(row.doc_id):
                    kept_rows.append(row)
                    kept_tokens.append(toks)
                else:
                    dropped_ids.append(row.vector_id)
        rows = kept_rows + new_rows
        tokens = kept_tokens + new_tokens
        dimension = int(old.manifest["dimension"]) if old else embedder.dimension

        # An explicit type is remembered; "auto" keeps what the index was built with.
        requested_type = index_type if index_type != "auto" or not old else old.manifest.get("requested_index_type", "auto")
        kind = choose_type(requested_type, len(rows))
        new_ids = np.array([r.vector_id for r in new_rows], dtype=np.int64)
        if old and old.manifest["index_type"] == kind:
            vectors = old.vectors
            vectors.remove(np.array(dropped_ids, dtype=np.int64))
            vectors.add(vectors_new, new_ids)
        else:
            kept_ids = np.array([r.vector_id for r in kept_rows], dtype=np.int64)
            all_vectors = np.vstack([old.vectors.vectors(kept_ids), vectors_new]) if old else vectors_new
            vectors = VectorIndex.build(kind, dimension, all_vectors, np.concatenate([kept_ids, new_ids]) if old else new_ids)
        lexical = LexicalIndex.fit(tokens)

        summary = UpdateSummary(
            added=added, updated=updated, removed=removed, unchanged=unchanged, skipped=list(report.skipped),
            chunks_embedded=len(texts), total_documents=len(new_docs), total_chunks=len(rows),
        )
        if old is None or summary.changed or rebuild:
            notify(len(texts), max(len(texts), 1), "writing index")
            manifest = {
                "format_version": FORMAT_VERSION,
                "model": model_name,
                "embedding_backend": backend,
                "dimension": dimension,
                "chunker": asdict(settings),
                "index_type": kind,
                "requested_index_type": requested_type,
                "next_vector_id": next_id,
                "documents": {
                    doc_id: {"sha256": d.sha256, "chunks": 0, "source_path": d.source_path}
                    for doc_id, d in sorted(new_docs.items())
                },
                "counts": {"documents": len(new_docs), "chunks": len(rows)},
                "updated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            }
            for row in rows:
                manifest["documents"][row.doc_id]["chunks"] += 1
            _write_generation(index_dir, manifest, new_docs, rows, tokens, vectors, lexical, previous=current)
        seconds = time.perf_counter() - t0
        notify(1, 1, "done")
        for path, reason in summary.skipped:
            log.warning("skipped %s: %s", path, reason)
        log.info("index %s: added %d, updated %d, removed %d, unchanged %d in %.2f s", index_dir,
                 summary.added, summary.updated, summary.removed, summary.unchanged, seconds)
        return replace(summary, seconds=seconds)


def _row(vector_id: int, chunk: Chunk) -> ChunkRow:
    return ChunkRow(vector_id, chunk.chunk_id, chunk.doc_id, chunk.start, chunk.end,
                    tuple(sentence_spans(chunk.text, chunk.start)))


def _source_file(doc: Document) -> str | None:
    if not doc.source_path:
        return None
    path = doc.source_path
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

    def holds(self, doc: Document) -> bool:
        source = _source_file(doc)
        if source is None:
            return False
        if _resolved(source) in self.paths:
            return True
        return not source.endswith(".jsonl") and doc.doc_id == Path(source).stem and doc.doc_id in self.stems


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


def _read_tokens(store: Store) -> list[list[str]]:
    try:
        with open(store.directory / store.manifest["generation"] / "tokens.jsonl", encoding="utf-8") as fh:
            tokens = [json.loads(line) for line in fh]
    except (OSError, ValueError) as exc:
        raise IndexDamagedError(f"index at {store.directory} is damaged ({_short(exc)}); {REBUILD_HINT}") from exc
    if len(tokens) != len(store.rows):
        raise IndexDamagedError(f"index at {store.directory} is inconsistent ({len(store.rows)} chunks, "
                                f"{len(tokens)} token rows); {REBUILD_HINT}")
    return tokens


def _write_generation(index_dir: Path, manifest: dict, documents: dict[str, Document], rows: list[ChunkRow],
                      tokens: list[list[str]], vectors: VectorIndex, lexical: LexicalIndex,
                      previous: str | None = None) -> None:
    """Write a new generation and switch the manifest to it. ``previous`` (the generation in use,
    None when there is none or the manifest is unreadable) stays one round for readers."""
    number = 1 + max([_generation_number(p.name) or 0 for p in index_dir.glob("gen-*")] or [0])
    name = f"gen-{number:06d}"
    gen = index_dir / name
    try:
        gen.mkdir()
        _write_files(gen, documents, rows, tokens, vectors, lexical)
    except (OSError, RuntimeError) as exc:
        shutil.rmtree(gen, ignore_errors=True)  # a half-written generation is never left behind
        raise IndexStateError(f"could not write the index in {index_dir} ({_short(exc)}); nothing was changed") from exc
    manifest = {**manifest, "generation": name}
    tmp = index_dir / TMP_MANIFEST
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(manifest, fh, indent=1, ensure_ascii=False)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, index_dir / MANIFEST)  # the commit point
    _fsync_dir(index_dir)
    # Loaded indexes hold everything in memory; the previous generation stays one round for a
    # reader that read the old manifest a moment ago, older ones (and crashed attempts) go.
    for old_gen in index_dir.glob("gen-*"):
        if old_gen.name not in (name, previous):
            shutil.rmtree(old_gen, ignore_errors=True)


def _write_files(gen: Path, documents: dict[str, Document], rows: list[ChunkRow], tokens: list[list[str]],
                 vectors: VectorIndex, lexical: LexicalIndex) -> None:
    with open(gen / "documents.jsonl", "w", encoding="utf-8") as fh:
        for doc in sorted(documents.values(), key=lambda d: d.doc_id):
            fh.write(json.dumps(asdict(doc), ensure_ascii=False) + "\n")
    with open(gen / "chunks.jsonl", "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps({"vector_id": row.vector_id, "chunk_id": row.chunk_id, "doc_id": row.doc_id,
                                 "start": row.start, "end": row.end, "sentences": row.sentences}) + "\n")
    with open(gen / "tokens.jsonl", "w", encoding="utf-8") as fh:
        for toks in tokens:
            fh.write(json.dumps(toks, ensure_ascii=False) + "\n")
    vectors.save(gen / "vectors.faiss")
    lexical.save(gen / "lexical")
    _fsync_tree(gen)


def _generation_number(name: str) -> int | None:
    m = _GENERATION.fullmatch(name)
    return int(m.group(1)) if m else None


def _current_generation(index_dir: Path) -> str | None:
    """The generation the manifest points at, or None when there is no usable manifest (never raises)."""
    try:
        manifest = json.loads((index_dir / MANIFEST).read_text(encoding="utf-8"))
        name = manifest.get("generation") if isinstance(manifest, dict) else None
    except (OSError, ValueError):
        return None
    return name if isinstance(name, str) and _GENERATION.fullmatch(name) and (index_dir / name).is_dir() else None


def _remove_leftovers(index_dir: Path, current: str | None, damaged: bool) -> None:
    """Delete what crashed updates left: the temporary manifest, generations newer than the one in
    use (attempts that never committed) and all but the newest of the older ones (the previous
    generation stays for readers). A damaged index that is not being rebuilt is left as it is,
    for the user to inspect or rebuild."""
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


def _fsync_tree(directory: Path) -> None:
    for path in directory.rglob("*"):
        if path.is_file():
            with open(path, "rb") as fh:
                os.fsync(fh.fileno())
    _fsync_dir(directory)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


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

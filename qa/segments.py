"""Segments: batches of documents with their chunk rows and vectors, written once and never changed.

An update writes one new segment for the documents it adds or changes; the rows of documents it
replaces or removes are marked deleted by the generation (``qa/store.py``), not rewritten. So a
one-article update writes a few kilobytes, whatever the size of the collection, and segments of
about the same size are merged now and then (``merge_plan``), which drops the deleted rows.
Files of ``segments/seg-000012/``::

    documents.jsonl   cleaned text and metadata, one document per line
    doc_*.npy         per document, one array each: id (and the order that sorts the ids), date
                      as YYYYMMDD, length, its line's byte offsets, chunk count, content hash and
                      source path (the last two read only by an update)
    documents.json    per document: title and date as written (read only to list documents)
    row_*.npy         per chunk row: vector id, document (position in this segment), start, end,
                      and its sentences (document offsets, flattened, with a pointer per row)
    vectors.npy       float32, one vector per row: the exact copy, read by merges
    vectors.faiss     the trained inverted-file index of a large segment (a small one is searched
                      exactly, from vectors.npy)

Documents are read from ``documents.jsonl`` when asked for, and the arrays are memory-mapped
``.npy`` files: a loaded index holds arrays, not a million Python objects, and what it does not
use (a row's sentences, a document's text) stays on disk until a passage needs it.
Which documents of a segment are live is not written anywhere: a document is live while its rows
are (a changed or removed document's rows are deleted together), so the generation's deleted
row ids say it all, and an update never rewrites a table of every document.
"""
from __future__ import annotations

import json
import math
import mmap
import os
from dataclasses import asdict, dataclass
from functools import cached_property, lru_cache
from pathlib import Path

import numpy as np

from .text import date_number
from .types import Document
from .vectors import VectorIndex, choose_type

SEGMENTS_DIR = "segments"
MERGE_FACTOR = 8  # this many segments of one size tier are merged into one (a log-structured merge)


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
class NewRows:
    """What a segment is written from: documents and their rows, in order (a document's rows
    together, in chunk order: row ``first + i`` is chunk ``doc_id#i``)."""

    documents: list[Document]
    rows: list[ChunkRow]
    vectors: np.ndarray


def segment_kind(requested: str, n_rows: int) -> str:
    """The vector index of a segment of ``n_rows``: what ``choose_type`` gives for that many, but
    exact search for a segment too small to train an inverted file."""
    return "flat" if n_rows < VectorIndex.lists_for(n_rows) else choose_type(requested, n_rows)


def write_segment(directory: Path, batch: NewRows, kind: str) -> dict:
    """Write ``batch`` as the segment folder ``directory`` (which must not exist) and return its
    manifest entry. Every file is fsynced before the manifest can name the segment."""
    directory.mkdir(parents=True)
    offsets = [0]
    position = {}
    with open(directory / "documents.jsonl", "wb") as fh:
        for i, doc in enumerate(batch.documents):
            line = (json.dumps(asdict(doc), ensure_ascii=False) + "\n").encode("utf-8")
            fh.write(line)
            offsets.append(offsets[-1] + len(line))
            position[doc.doc_id] = i
    docs = batch.documents
    rows = batch.rows
    ids = np.array([d.doc_id for d in docs], dtype=str) if docs else np.zeros(0, "U1")
    _save(directory, "doc", ids=ids, order=np.argsort(ids, kind="stable"),
          dates=np.array([date_number(d.date) for d in docs], dtype=np.int32),
          chars=np.array([len(d.text) for d in docs], dtype=np.int64), offsets=np.array(offsets, dtype=np.int64),
          chunks=np.bincount([position[r.doc_id] for r in rows], minlength=len(docs)).astype(np.int32),
          sha256=np.array([(d.sha256 or "").encode("ascii") for d in docs], dtype="S64"),
          source=np.array([(d.source_path or "").encode("utf-8") for d in docs], dtype=bytes))
    meta = {"titles": [d.title for d in docs], "dates": [d.date or "" for d in docs]}
    (directory / "documents.json").write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")
    sentence_ptr = np.zeros(len(rows) + 1, dtype=np.int64)
    sentence_ptr[1:] = np.cumsum([len(r.sentences) for r in rows])
    # Offsets within one document fit 32 bits (files are at most MAX_FILE_BYTES): half the memory.
    sentences = np.array([s for r in rows for s in r.sentences], dtype=np.int32).reshape(-1, 2)
    _save(directory, "row", vector_id=np.array([r.vector_id for r in rows], dtype=np.int64),
          doc=np.array([position[r.doc_id] for r in rows], dtype=np.int32),
          start=np.array([r.start for r in rows], dtype=np.int32),
          end=np.array([r.end for r in rows], dtype=np.int32),
          sentence_ptr=sentence_ptr, sentences=sentences)
    vectors = np.ascontiguousarray(batch.vectors, dtype=np.float32)
    np.save(directory / "vectors.npy", vectors)
    if kind != "flat":
        VectorIndex.build(kind, vectors.shape[1], vectors, np.array([r.vector_id for r in rows], dtype=np.int64)
                          ).save(directory / "vectors.faiss")
    fsync_tree(directory)
    return {"name": directory.name, "kind": kind, "rows": len(rows), "documents": len(batch.documents)}


def _save(directory: Path, prefix: str, **arrays: np.ndarray) -> None:
    for name, array in arrays.items():
        np.save(directory / f"{prefix}_{name}.npy", array)


def _load(directory: Path, prefix: str, name: str) -> np.ndarray:
    """A segment's array, memory-mapped (read-only): loading a segment reads no array whole, and a
    mapped file stays readable after a later update deletes it, for an index still loaded."""
    return np.load(directory / f"{prefix}_{name}.npy", mmap_mode="r")


def fsync_tree(directory: Path) -> None:
    """Every file under ``directory`` and the folder itself on disk, before a manifest names them."""
    for path in directory.rglob("*"):
        if path.is_file():
            with open(path, "rb") as fh:
                os.fsync(fh.fileno())
    fsync_dir(directory)


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Segment:
    """One segment, loaded: its rows and document table as arrays, its documents read on demand."""

    def __init__(self, directory: Path, info: dict):
        self.directory = directory
        self.name = info["name"]
        self.kind = info["kind"]
        self.doc_ids = _load(directory, "doc", "ids")
        self.id_order = _load(directory, "doc", "order")  # the positions that sort doc_ids
        self.date_numbers = _load(directory, "doc", "dates")  # YYYYMMDD, 0 for none
        self.chars = _load(directory, "doc", "chars")
        self.chunks = _load(directory, "doc", "chunks")
        self._offsets = _load(directory, "doc", "offsets")
        self.vector_ids = _load(directory, "row", "vector_id")
        self.row_doc = _load(directory, "row", "doc")
        self.starts = _load(directory, "row", "start")
        self.ends = _load(directory, "row", "end")
        self.sentence_ptr = _load(directory, "row", "sentence_ptr")
        self.sentences = _load(directory, "row", "sentences")
        n = len(self.vector_ids)
        n_docs = len(self.doc_ids)
        if (n != info["rows"] or n_docs != info["documents"] or len(self._offsets) != n_docs + 1
                or len(self.sentence_ptr) != n + 1 or len(self.row_doc) != n or int(self.chunks.sum()) != n
                or len(self.id_order) != n_docs or len(self.date_numbers) != n_docs or len(self.chars) != n_docs):
            raise ValueError(f"segment {self.name} holds {n} rows and {len(self.doc_ids)} documents, "
                             f"the manifest says {info['rows']} and {info['documents']}")
        with open(directory / "documents.jsonl", "rb") as fh:
            if os.fstat(fh.fileno()).st_size != self._offsets[-1]:
                raise ValueError(f"segment {self.name}: documents.jsonl is not the length its table says")
            # A map of the file, not the file: it stays readable after a later update deletes
            # the segment, for an index that is still loaded.
            self._text = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        self.document = lru_cache(maxsize=256)(self._read_document)

    def __len__(self) -> int:
        return len(self.vector_ids)

    def live(self, deleted: np.ndarray) -> np.ndarray:
        """Which of this segment's rows are not among the ``deleted`` vector ids (a boolean mask)."""
        return ~np.isin(self.vector_ids, deleted) if len(deleted) else np.ones(len(self), dtype=bool)

    def live_documents(self, live_rows: np.ndarray) -> np.ndarray:
        """Which of this segment's documents are live, given its live rows (a boolean mask): a
        document is live while its rows are, and a document has at least one row."""
        out = np.zeros(len(self.doc_ids), dtype=bool)
        out[self.row_doc[live_rows]] = True
        return out

    @cached_property
    def sha256(self) -> np.ndarray:
        """Per document, its file's content hash (hex, bytes): read when an update asks."""
        return _load(self.directory, "doc", "sha256")

    @cached_property
    def source_paths(self) -> np.ndarray:
        """Per document, the file it was read from (UTF-8 bytes, b"" for none): read when asked."""
        return _load(self.directory, "doc", "source")

    @cached_property
    def meta(self) -> dict:
        """Per document, its title and date as written: read when the documents are listed."""
        return json.loads((self.directory / "documents.json").read_text(encoding="utf-8"))

    def _read_document(self, position: int) -> Document:
        line = self._text[int(self._offsets[position]):int(self._offsets[position + 1])]
        return Document(**json.loads(line))

    def row_sentences(self, row: int) -> tuple[tuple[int, int], ...]:
        part = self.sentences[self.sentence_ptr[row]:self.sentence_ptr[row + 1]]
        return tuple((int(a), int(b)) for a, b in part)

    def stored_vectors(self) -> np.ndarray:
        """All of this segment's vectors, memory-mapped (read as they are used)."""
        vectors = np.load(self.directory / "vectors.npy", mmap_mode="r")
        if len(vectors) != len(self):
            raise ValueError(f"segment {self.name} has {len(vectors)} vectors for {len(self)} rows")
        return vectors

    def vector_index(self, live: np.ndarray) -> VectorIndex:
        """The vector index of this segment's ``live`` rows (a deleted row's vector is left out)."""
        if self.kind == "flat":
            vectors = self.stored_vectors()
            return VectorIndex.build("flat", vectors.shape[1], np.asarray(vectors[live]), self.vector_ids[live])
        index = VectorIndex.load(self.directory / "vectors.faiss", self.kind)
        if len(index) != len(self):
            raise ValueError(f"segment {self.name} has {len(index)} indexed vectors for {len(self)} rows")
        index.remove(np.setdiff1d(self.vector_ids, self.vector_ids[live]))
        return index


def tier(n_rows: int) -> int:
    return int(math.log(max(n_rows, 1), MERGE_FACTOR))


def merge_plan(infos: list[dict], live_rows: dict[str, int]) -> list[list[str]]:
    """Groups of segments to merge: ``MERGE_FACTOR`` segments whose live rows are of one size tier
    (1-7 rows, 8-63, 64-511, ...), so each row is rewritten about once per tier it climbs; and,
    on its own, a segment with no live rows left (all its documents changed or removed) or with
    more deleted rows than live ones (rewritten without them)."""
    plan = [[i["name"]] for i in infos if live_rows[i["name"]] == 0]
    by_tier: dict[int, list[str]] = {}
    for info in infos:
        live = live_rows[info["name"]]
        if live and 2 * live < info["rows"]:
            plan.append([info["name"]])
        elif live:
            by_tier.setdefault(tier(live), []).append(info["name"])
    plan += [names for names in by_tier.values() if len(names) >= MERGE_FACTOR]
    return plan

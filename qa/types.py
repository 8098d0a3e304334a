"""The plain data that flows between the steps of the pipeline.

documents -> chunks -> passages (sources) -> spans -> answers with citations.
Every offset is a character offset into ``Document.text`` (the cleaned text the
index stores), so ``document.text[start:end]`` is always the quoted text.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Document:
    """One article after loading and cleaning."""

    doc_id: str  # the file stem (or the `id` of a JSONL record)
    text: str  # cleaned article body; all offsets index this string
    title: str | None = None
    date: str | None = None  # ISO 8601 (YYYY-MM-DD) or None when unknown
    dateline: str | None = None  # e.g. "ASTANA. KAZINFORM"
    author: str | None = None
    url: str | None = None
    source_path: str | None = None
    sha256: str = ""  # hash of the raw source bytes (or JSONL record): drives incremental updates


@dataclass(frozen=True)
class Chunk:
    """A contiguous piece of a document: ``document.text[start:end] == text``."""

    chunk_id: str  # "<doc_id>#<ordinal>", stable while the document is unchanged
    doc_id: str
    start: int
    end: int
    text: str


@dataclass(frozen=True)
class Passage:
    """A retrieved chunk with its source metadata and retrieval score (higher is better)."""

    text: str
    doc_id: str
    title: str | None
    date: str | None
    start: int
    end: int
    score: float
    chunk_id: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Source:
    """A retrieved passage with what reading it needs: the document text its offsets index, and
    that document's sentences (document offsets, found at index time)."""

    passage: Passage
    document_text: str
    sentences: list[tuple[int, int]]


@dataclass(frozen=True)
class Span:
    """A reader's answer candidate: ``context[start:end] == text``; score in 0..1."""

    text: str
    start: int
    end: int
    score: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Citation:
    """Where an answer comes from.

    ``start``/``end`` locate the passage in the document, ``answer_start``/``answer_end``
    locate the answer in the document (not in the passage), so
    ``text[answer_start - start:answer_end - start]`` is the answer.
    """

    doc_id: str
    title: str | None
    date: str | None
    text: str
    start: int
    end: int
    answer_start: int
    answer_end: int
    chunk_id: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Answer:
    """What ``qa.ask`` returns. ``text == ""`` means the documents don't answer the question."""

    question: str
    text: str
    score: float  # calibrated probability that ``text`` is a correct answer
    citations: list[Citation] = field(default_factory=list)
    alternatives: list["Answer"] = field(default_factory=list)
    passages: list[Passage] = field(default_factory=list)
    resolved_question: str = ""  # the question the reader read: a follow-up rewritten, a role question rephrased

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class UpdateSummary:
    """What ``update_index`` did."""

    added: int = 0
    updated: int = 0
    removed: int = 0
    unchanged: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    chunks_embedded: int = 0
    total_documents: int = 0
    total_chunks: int = 0
    seconds: float = 0.0

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.removed)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        text = (
            f"added {self.added}, updated {self.updated}, removed {self.removed}, "
            f"unchanged {self.unchanged}, skipped {len(self.skipped)} "
            f"({self.total_documents} documents, {self.total_chunks} chunks; "
            f"{self.chunks_embedded} chunks embedded) in {self.seconds:.2f} s"
        )
        for path, reason in self.skipped:
            text += f"\n  skipped {path}: {reason}"
        return text

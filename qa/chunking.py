"""Split documents into overlapping, sentence-aware chunks sized in the embedding model's tokens.

This is the one place where chunk offsets are computed: every ``Chunk`` satisfies
``document.text[chunk.start:chunk.end] == chunk.text``, and ``chunk_sentences`` gives the
sentence boundaries inside it (computed once, at index time, for the answer reader).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

from langchain_text_splitters import RecursiveCharacterTextSplitter

from .types import Chunk, Document

# Paragraphs first, then lines, then sentence ends, then clauses, then words.
# The sentence separator is a lookbehind on closing punctuation so nothing is lost.
SEPARATORS = [
    r"\n\n",
    r"\n",
    r"(?<=[.!?…])[\"'»”)]*\s+",
    r";\s+",
    r",\s+",
    r"\s+",
    "",
]
_SENTENCE_END = re.compile(r"(?<=[.!?…])[\"'»”)]*(?:\s+|$)|\n+")
# Abbreviations that end with a period but do not end a sentence.
_NO_BREAK = re.compile(r"(?:\b(?:Mr|Mrs|Ms|Dr|Prof|St|Jr|Sr|No|vs|etc|Inc|Ltd|Co|Corp|Gen|Col|Lt|Sgt|Rep|Sen|Gov|Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec|U\.S|e\.g|i\.e)|\b[A-Z])\.$")


@dataclass(frozen=True)
class ChunkerSettings:
    chunk_tokens: int = 192  # word pieces per chunk; the model reads at most max_tokens
    overlap_tokens: int = 32
    max_tokens: int = 254  # all-MiniLM-L6-v2 reads 256 word pieces including [CLS] and [SEP]

    @property
    def max_chars(self) -> int:
        """Characters in a chunk at most: 16 per word piece is far above English text (about 4-5)."""
        return 16 * self.chunk_tokens

    def __post_init__(self) -> None:
        if not 0 < self.chunk_tokens <= self.max_tokens:
            raise ValueError(f"chunk_tokens must be in 1..{self.max_tokens}, got {self.chunk_tokens}")
        if not 0 <= self.overlap_tokens < self.chunk_tokens:
            raise ValueError(f"overlap_tokens must be in 0..{self.chunk_tokens - 1}, got {self.overlap_tokens}")


class Chunker:
    """Document -> chunks; ``count_tokens`` is the embedding model's own tokenizer."""

    def __init__(self, count_tokens: Callable[[str], int], settings: ChunkerSettings = ChunkerSettings()):
        self.settings = settings
        self.count_tokens = count_tokens
        self._splitter = RecursiveCharacterTextSplitter(
            separators=SEPARATORS,
            is_separator_regex=True,
            keep_separator="end",
            chunk_size=settings.chunk_tokens,
            chunk_overlap=0,  # overlap is added by whole sentences in split()
            length_function=count_tokens,
            strip_whitespace=True,
        )

    def split(self, document: Document) -> list[Chunk]:
        text = document.text
        # 1. Non-overlapping, sentence-aware pieces located in the text in order.
        bounds: list[tuple[int, int]] = []
        cursor = 0
        for piece in self._splitter.split_text(text):
            for part in self._fit(piece):
                start = text.find(part, cursor)
                if start < 0:
                    raise AssertionError(f"chunk not found in document {document.doc_id!r}: {part[:60]!r}")
                bounds.append((start, start + len(part)))
                cursor = start + len(part)
        # 2. Overlap: each chunk also starts with the last sentences of the previous one.
        chunks: list[Chunk] = []
        for i, (start, end) in enumerate(bounds):
            if i > 0 and self.settings.overlap_tokens:
                start = self._overlap_start(text, bounds[i - 1], start, end)
            chunks.append(Chunk(f"{document.doc_id}#{i}", document.doc_id, start, end, text[start:end]))
        return chunks

    def _overlap_start(self, text: str, previous: tuple[int, int], start: int, end: int) -> int:
        budget = min(self.settings.overlap_tokens, self.settings.max_tokens - self.count_tokens(text[start:end]))
        best = start
        max_chars = self.settings.max_chars  # the overlap must not undo _fit's bound either
        for s, _ in reversed(sentence_spans(text[previous[0]:previous[1]], previous[0])):
            if end - s > max_chars or self.count_tokens(text[s:start]) > budget:
                break
            best = s
        if best == start and budget > 0:  # no whole sentence fits: carry the last words instead
            for m in reversed(list(re.finditer(r"\S+", text[previous[0]:start]))):
                s = previous[0] + m.start()
                if end - s > max_chars or self.count_tokens(text[s:start]) > budget:
                    break
                best = s
        return best

    def _fit(self, piece: str) -> list[str]:
        """Guarantee the model never truncates: re-split any piece over ``max_tokens`` or
        ``max_chars``. The character bound matters for words the tokenizer cannot split:
        a 100,000-character "word" is one [UNK] token, and would otherwise be one 100 kB chunk."""
        max_chars = self.settings.max_chars
        if len(piece) <= max_chars and self.count_tokens(piece) <= self.settings.max_tokens:
            return [piece]
        parts, current = [], ""
        for word in self._words(piece):
            candidate = current + word
            if current and (len(candidate) > max_chars or self.count_tokens(candidate) > self.settings.chunk_tokens):
                parts.append(current)
                current = word
            else:
                current = candidate
        if current:
            parts.append(current)
        out = []
        for part in (p.strip() for p in parts):
            if self.count_tokens(part) > self.settings.max_tokens:  # one enormous "word": cut it by characters
                step = max(1, len(part) * self.settings.chunk_tokens // self.count_tokens(part))
                out.extend(part[i:i + step] for i in range(0, len(part), step))
            elif part:
                out.append(part)
        return out

    def _words(self, piece: str) -> list[str]:
        """Words with their trailing space; a word over ``max_chars`` comes in ``max_chars`` pieces."""
        words = []
        limit = self.settings.max_chars
        for word in re.findall(r"\S+\s*", piece):
            words.extend(word[i:i + limit] for i in range(0, len(word), limit))
        return words


def sentence_spans(text: str, offset: int = 0) -> list[tuple[int, int]]:
    """Sentence boundaries in ``text`` as (start, end) offsets (shifted by ``offset``), whitespace trimmed."""
    spans: list[tuple[int, int]] = []
    start = 0
    for m in _SENTENCE_END.finditer(text):
        end = m.start() if m.group(0).startswith("\n") else m.end()
        candidate = text[start:end].rstrip()
        if m.end() < len(text) and not m.group(0).startswith("\n") and _NO_BREAK.search(candidate):
            continue
        _append_trimmed(spans, text, start, end, offset)
        start = m.end()
    _append_trimmed(spans, text, start, len(text), offset)
    return spans


def _append_trimmed(spans: list[tuple[int, int]], text: str, start: int, end: int, offset: int) -> None:
    segment = text[start:end]
    stripped = segment.strip()
    if not stripped:
        return
    left = start + (len(segment) - len(segment.lstrip()))
    spans.append((offset + left, offset + left + len(stripped)))

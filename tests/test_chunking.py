"""Chunk offsets are exact and chunks fit the embedding model, on real articles and edge cases."""
from __future__ import annotations

import random

import pytest
from conftest import SEED_DOCUMENTS

from qa.chunking import Chunker, ChunkerSettings, sentence_spans
from qa.documents import load_documents
from qa import models
from qa.types import Document


@pytest.fixture(scope="module")
def chunker():
    return Chunker(models.embedder().count_tokens)


def _check(chunker, doc):
    chunks = chunker.split(doc)
    assert chunks, doc.doc_id
    for i, chunk in enumerate(chunks):
        assert doc.text[chunk.start:chunk.end] == chunk.text
        assert chunk.chunk_id == f"{doc.doc_id}#{i}" and chunk.doc_id == doc.doc_id
        assert chunker.count_tokens(chunk.text) <= ChunkerSettings().max_tokens
    # Together the chunks cover every word of the document.
    covered = set()
    for c in chunks:
        covered.update(range(c.start, c.end))
    assert all(i in covered for i, ch in enumerate(doc.text) if not ch.isspace())
    return chunks


def test_offsets_exact_for_every_chunk_of_every_seed_document(chunker):
    docs = load_documents(SEED_DOCUMENTS).documents
    assert len(docs) == 5
    for doc in docs:
        chunks = _check(chunker, doc)
        if len(chunks) > 1:
            assert any(b.start < a.end for a, b in zip(chunks, chunks[1:])), "chunks overlap"


def test_hard_texts_keep_exact_offsets(chunker):
    rng = random.Random(7)
    words = ["Kazakhstan", "KZT560", "billion", "«quoted»", "Dr.", "Nur-Sultan", "4.6%", "the", "party", "—",
             "Қазақстан", "中文", "e.g.", "U.S.", "emoji🙂", "x" * 300]
    for n in range(20):
        parts = []
        for _ in range(rng.randint(50, 900)):
            parts.append(rng.choice(words))
            r = rng.random()
            parts.append(". " if r < 0.1 else "\n\n" if r < 0.13 else "\n" if r < 0.15 else " ")
        text = "".join(parts).strip()
        _check(chunker, Document(doc_id=f"synthetic{n}", text=text))
    # The same sentence repeated: offsets must still point at the right copy.
    text = " ".join(["The party met voters in the region."] * 200)
    chunks = _check(chunker, Document(doc_id="repeat", text=text))
    assert [c.start for c in chunks] == sorted(c.start for c in chunks)


def test_sentence_spans():
    text = "Dr. Smith met Mr. Brown in Astana. They spoke for 2.5 hours! Then they left.\nNew line here"
    spans = sentence_spans(text, offset=10)
    sentences = [text[s - 10:e - 10] for s, e in spans]
    assert sentences == ["Dr. Smith met Mr. Brown in Astana.", "They spoke for 2.5 hours!", "Then they left.", "New line here"]


def test_settings_are_validated():
    with pytest.raises(ValueError, match="chunk_tokens"):
        ChunkerSettings(chunk_tokens=1000)
    with pytest.raises(ValueError, match="overlap_tokens"):
        ChunkerSettings(chunk_tokens=100, overlap_tokens=100)

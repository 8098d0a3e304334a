"""The index end to end: real model, real FAISS, real BM25, on disk."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import DATA, ROOT, SEED_DOCUMENTS

import qa
from qa.followup import resolve_followup
from qa import models
from qa.store import sync


class CountingEmbedder:
    """The real embedder, counting what it is asked to encode."""

    def __init__(self):
        self.inner = models.embedder()
        self.name, self.dimension, self.backend = self.inner.name, self.inner.dimension, self.inner.backend
        self.count_tokens = self.inner.count_tokens
        self.encoded: list[str] = []

    def encode(self, texts, show_progress=False):
        self.encoded.extend(texts)
        return self.inner.encode(texts)


def _docs_copy(tmp_path: Path) -> Path:
    docs = tmp_path / "documents"
    shutil.copytree(SEED_DOCUMENTS, docs)
    return docs


def _doc_ids(passages):
    return [p.doc_id for p in passages]


def test_incremental_add_change_delete(tmp_path):
    docs, index_dir = _docs_copy(tmp_path), tmp_path / "index"
    emb = CountingEmbedder()
    first = sync(docs, index_dir, embedder=emb)
    assert (first.added, first.updated, first.removed, first.unchanged) == (5, 0, 0, 0)
    assert len(emb.encoded) == first.chunks_embedded == first.total_chunks

    # Nothing changed: nothing is embedded and nothing is written.
    emb.encoded.clear()
    generation = json.loads((index_dir / "manifest.json").read_text())["generation"]
    again = sync(docs, index_dir, embedder=emb)
    assert (again.added, again.updated, again.removed, again.unchanged) == (0, 0, 0, 5) and emb.encoded == []
    assert json.loads((index_dir / "manifest.json").read_text())["generation"] == generation

    # Add one article: only its chunks are embedded, and retrieval finds it.
    (docs / "005_new.txt").write_text(
        "ASTANA. KAZINFORM - The Zhasyl Dala party opened a beekeeping cooperative in Turkistan region.\n\n"
        "Its leader Marat Ospanov said the cooperative will produce 40 tonnes of honey a year.", encoding="utf-8")
    emb.encoded.clear()
    added = sync(docs, index_dir, embedder=emb)
    assert (added.added, added.updated, added.removed, added.unchanged) == (1, 0, 0, 5)
    assert emb.encoded and all("honey" in t or "beekeeping" in t for t in emb.encoded)
    index = qa.Index.load(index_dir)
    assert index.retrieve("beekeeping cooperative honey", k=1)[0].doc_id == "005_new"

    # Change it: the old text is gone from the index, the new one is found.
    (docs / "005_new.txt").write_text(
        "ASTANA. KAZINFORM - The Zhasyl Dala party opened a camel dairy farm in Mangystau region.", encoding="utf-8")
    emb.encoded.clear()
    changed = sync(docs, index_dir, embedder=emb)
    assert (changed.added, changed.updated, changed.removed, changed.unchanged) == (0, 1, 0, 5)
    assert len(emb.encoded) == 1
    index = qa.Index.load(index_dir)
    top = index.retrieve("camel dairy farm Mangystau", k=1)[0]
    assert top.doc_id == "005_new" and "camel" in top.text
    assert all("honey" not in p.text for p in index.retrieve("honey beekeeping", k=25))

    # Delete it.
    (docs / "005_new.txt").unlink()
    removed = sync(docs, index_dir, embedder=emb)
    assert (removed.added, removed.updated, removed.removed, removed.unchanged) == (0, 0, 1, 5)
    index = qa.Index.load(index_dir)
    assert "005_new" not in _doc_ids(index.retrieve("camel dairy farm Mangystau", k=25))
    assert len(index.store.vectors) == len(index.store.rows) == removed.total_chunks
    manifest = json.loads((index_dir / "manifest.json").read_text())
    assert set(index.store.doc_ids.tolist()) == {p.stem for p in SEED_DOCUMENTS.glob("*.txt")}
    assert manifest["counts"] == {"documents": 5, "chunks": removed.total_chunks}
    assert len(list(index_dir.glob("gen-*"))) <= 2


def test_rebuild_reembeds_everything(tmp_path):
    docs, index_dir = _docs_copy(tmp_path), tmp_path / "index"
    emb = CountingEmbedder()
    sync(docs, index_dir, embedder=emb)
    emb.encoded.clear()
    summary = sync(docs, index_dir, embedder=emb, rebuild=True)
    assert summary.added == 5 and len(emb.encoded) == summary.total_chunks


# Ctrl-C while the lexical index takes the change (the new segment is written by then), and
# after everything but the manifest is written.
@pytest.mark.parametrize("step", ["LexicalIndex.update", "fsync_tree"])
def test_interrupted_update_leaves_previous_index_intact(tmp_path, monkeypatch, step):
    docs, index_dir = _docs_copy(tmp_path), tmp_path / "index"
    sync(docs, index_dir)
    before = qa.Index.load(index_dir).retrieve("Enbek Program jobs", k=3)
    (docs / "004_c8ebc32f0d2447af.txt").write_text("Completely different text about football.", encoding="utf-8")

    from qa import store as store_module

    def crash(*args, **kwargs):
        raise KeyboardInterrupt  # Ctrl-C in the middle of writing the new generation

    owner, _, name = step.rpartition(".")
    monkeypatch.setattr(getattr(store_module, owner) if owner else store_module, name, crash)
    with pytest.raises(KeyboardInterrupt):
        sync(docs, index_dir)
    monkeypatch.undo()
    after = qa.Index.load(index_dir).retrieve("Enbek Program jobs", k=3)
    assert after == before
    # The next update completes and cleans the half-written generation away.
    summary = sync(docs, index_dir)
    assert summary.updated == 1
    assert "football" in qa.Index.load(index_dir).retrieve("football", k=1)[0].text


def test_killed_update_process_leaves_a_loadable_index(tmp_path):
    """SIGKILL an indexing process at several moments: the index always loads, old or new."""
    docs, index_dir = _docs_copy(tmp_path), tmp_path / "index"
    sync(docs, index_dir)
    for i in range(40):
        (docs / f"bulk_{i:02d}.txt").write_text(
            f"Article {i}. " + " ".join(f"The council discussed budget item {i}-{j} at length." for j in range(60)),
            encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for delay in (2.0, 5.0, 8.0):
        proc = subprocess.Popen([sys.executable, "-m", "qa", "index", "--documents", str(docs), "--index", str(index_dir)],
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        index = qa.Index.load(index_dir)  # never a broken index
        assert len(index.store.vectors) == len(index.store.rows)
        assert len(index) in (5, 45)


def test_bad_files_are_skipped_and_reported_and_lose_nothing(tmp_path):
    docs, index_dir = _docs_copy(tmp_path), tmp_path / "index"
    sync(docs, index_dir)
    (docs / "broken.txt").write_bytes(b"\xff\xfe\x00\x00garbage\x00")
    (docs / "empty.md").write_text("", encoding="utf-8")
    # A previously good article becomes unreadable: its last good version stays indexed.
    (docs / "003_8db47a1d31210196.txt").write_bytes("Caf\xe9".encode("latin-1") * 10)
    summary = sync(docs, index_dir)
    skipped = {Path(p).name: reason for p, reason in summary.skipped}
    assert set(skipped) == {"broken.txt", "empty.md", "003_8db47a1d31210196.txt"}
    assert "UTF-8" in skipped["003_8db47a1d31210196.txt"] and "empty" in skipped["empty.md"]
    assert summary.removed == 0 and summary.total_documents == 5
    assert "003_8db47a1d31210196" in _doc_ids(qa.Index.load(index_dir).retrieve("NSDP healthcare Akmola", k=3))


def test_filters_by_document_and_date(seed_index):
    everything = seed_index.retrieve("Nur Otan party", k=20)
    assert len({p.doc_id for p in everything}) >= 3
    only = seed_index.retrieve("Nur Otan party", k=10, filters={"doc_ids": ["001_e2ec07e4b491a9c5"]})
    assert only and {p.doc_id for p in only} == {"001_e2ec07e4b491a9c5"}
    dated = seed_index.retrieve("Nur Otan party", k=20, filters={"date_from": "2019-01-01", "date_to": "2019-12-31"})
    assert {p.doc_id for p in dated} == {"002_47630b8a4ea02f01"}
    early = seed_index.retrieve("Nur Otan party", k=20, filters={"date_to": "2017-01-01"})
    assert {p.doc_id for p in early} == {"000_c8b47d81c06dd1e9"}
    assert seed_index.retrieve("Nur Otan", filters={"doc_ids": ["no-such-doc"]}) == []
    with pytest.raises(ValueError, match="date_from"):
        seed_index.retrieve("x", filters={"date_from": "last year"})
    with pytest.raises(ValueError, match="unknown filter"):
        seed_index.retrieve("x", filters={"author": "x"})


def test_passages_quote_their_documents(seed_index):
    for mode in ("hybrid", "dense", "lexical"):
        passages = seed_index.retrieve("Who received Baibek?", k=5, mode=mode)
        assert passages
        scores = [p.score for p in passages]
        assert scores == sorted(scores, reverse=True)
        for p in passages:
            assert seed_index.document(p.doc_id).text[p.start:p.end] == p.text
            assert p.chunk_id.startswith(p.doc_id + "#")


def test_names_and_numbers_are_found_by_the_lexical_side(seed_index):
    assert seed_index.retrieve("Yertysbayev", k=1)[0].doc_id == "003_8db47a1d31210196"
    top = seed_index.retrieve("KZT560 billion", k=1)[0]
    assert top.doc_id == "004_c8ebc32f0d2447af" and "KZT560 billion" in top.text


def test_bad_queries(seed_index):
    for empty in ("", "   \n\t"):
        with pytest.raises(ValueError, match="empty"):
            seed_index.retrieve(empty)
    long = seed_index.retrieve("Nur Otan party congress " * 4000, k=3)  # 100,000 characters
    assert len(long) == 3
    assert seed_index.retrieve("Какая партия провела съезд в Астане?", k=3)  # Russian
    assert seed_index.retrieve("Партия Нұр Отан", k=3)  # Kazakh


def test_seed_questions_find_their_gold_document_in_top_5(seed_index):
    rows = [json.loads(line) for line in (DATA / "seed_questions.jsonl").read_text().splitlines()]
    answerable = [r for r in rows if r["answers"]]
    assert len(answerable) == 15
    misses = []
    for r in answerable:
        query = resolve_followup(r["question"], r["history"]).search_query
        if r["doc"] not in _doc_ids(seed_index.retrieve(query, k=5)):
            misses.append(r["id"])
    assert misses == []


def test_incompatible_index_asks_for_a_rebuild(tmp_path, seed_index_dir):
    index_dir = tmp_path / "index"
    shutil.copytree(seed_index_dir, index_dir)
    with pytest.raises(qa.IndexStateError, match="rebuild"):
        qa.Index.load(index_dir, model="some-other-model")
    manifest = json.loads((index_dir / "manifest.json").read_text())
    (index_dir / "manifest.json").write_text(json.dumps({**manifest, "format_version": 999}))
    with pytest.raises(qa.IndexStateError, match="format version 999.*rebuild"):
        qa.Index.load(index_dir)
    with pytest.raises(qa.IndexNotFoundError, match="python -m qa index"):
        qa.Index.load(tmp_path / "nowhere")


def test_cli_index_reports_what_it_did(tmp_path):
    docs = _docs_copy(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "qa", "index", "--documents", str(docs), "--index", str(tmp_path / "index")]
    first = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    assert "added 5, updated 0, removed 0, unchanged 0, skipped 0" in first.stdout
    (docs / "bad.txt").write_bytes(b"\x00\x01\x02")
    second = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert "added 0, updated 0, removed 0, unchanged 5, skipped 1" in second.stdout
    assert "bad.txt" in second.stderr and "binary" in second.stderr


@pytest.mark.parametrize("kind", ["ivf", "ivf-sq8"])
def test_ivf_index_type_supports_updates(tmp_path, kind):
    docs, index_dir = _docs_copy(tmp_path), tmp_path / "index"
    for i in range(30):
        (docs / f"extra_{i:02d}.txt").write_text(f"Report {i}: the regional council approved the {i}th budget line for roads and schools.", encoding="utf-8")
    summary = sync(docs, index_dir, index_type=kind)
    index = qa.Index.load(index_dir)
    assert index.store.manifest["index_type"] == kind and len(index.store.vectors) == summary.total_chunks
    (docs / "extra_00.txt").unlink()
    summary = sync(docs, index_dir)
    index = qa.Index.load(index_dir)
    assert index.store.manifest["index_type"] == kind and summary.removed == 1
    assert "extra_00" not in _doc_ids(index.retrieve("Report 0 budget line", k=40))
    assert index.retrieve("How many jobs will the Enbek Program create?", k=3)[0].doc_id == "004_c8ebc32f0d2447af"


# ---- embedding backends: torch (default), onnx, onnx-int8, onnx-int8-full, torch-bf16; an index is queried with its own

def test_onnx_embedder_gives_the_torch_vectors():
    import numpy as np

    texts = [(SEED_DOCUMENTS / name).read_text()[:900] for name in sorted(os.listdir(SEED_DOCUMENTS))]
    torch_vectors = models.embedder(backend="torch").encode(texts)
    onnx = models.embedder(backend="onnx")
    np.testing.assert_allclose(onnx.encode(texts), torch_vectors, atol=1e-4)
    np.testing.assert_allclose(onnx.encode_query(texts[0]), torch_vectors[0], atol=1e-4)
    import onnx as onnx_format

    graph = onnx_format.load(str(onnx._onnx.session.path)).graph
    assert sum(n.op_type == "Attention" for n in graph.node) == 6  # fused: one op per layer
    int8 = models.embedder(backend="onnx-int8").encode(texts)
    assert np.all((int8 * torch_vectors).sum(axis=1) > 0.95)  # close, not equal
    np.testing.assert_allclose(np.linalg.norm(int8, axis=1), 1.0, atol=1e-5)


def test_full_int8_embedder_runs_every_matrix_product_in_int8():
    import numpy as np
    import onnx as onnx_format

    texts = [(SEED_DOCUMENTS / name).read_text()[:900] for name in sorted(os.listdir(SEED_DOCUMENTS))]

    def fp32_matmuls(backend: str) -> int:
        graph = onnx_format.load(str(models.embedder(backend=backend)._onnx.session.path)).graph
        return sum(n.op_type == "MatMul" for n in graph.node)

    assert fp32_matmuls("onnx-int8") == 6 and fp32_matmuls("onnx-int8-full") == 0  # the 6 feed-forward outputs
    torch_vectors = models.embedder(backend="torch").encode(texts)
    full = models.embedder(backend="onnx-int8-full")
    vectors = full.encode(texts)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert np.all((vectors * torch_vectors).sum(axis=1) > 0.95)  # close, not equal
    question = full.encode_query("How many jobs will the Enbek Program create?")
    assert int(np.argmax(vectors @ question)) == int(np.argmax(torch_vectors @ models.embedder(backend="torch").encode_query(
        "How many jobs will the Enbek Program create?")))


def test_bf16_embedder_stays_close_to_fp32_for_documents_and_questions():
    import numpy as np

    texts = [(SEED_DOCUMENTS / name).read_text()[:900] for name in sorted(os.listdir(SEED_DOCUMENTS))]
    fp32 = models.embedder(backend="torch")
    bf16 = models.embedder(backend="torch-bf16")
    vectors = bf16.encode(texts)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert np.all((vectors * fp32.encode(texts)).sum(axis=1) > 0.99)  # close, not equal
    question = "How many jobs will the Enbek Program create?"
    query = bf16.encode_query(question)
    assert float(query @ fp32.encode_query(question)) > 0.99
    assert int(np.argmax(vectors @ query)) == int(np.argmax(fp32.encode(texts) @ fp32.encode_query(question)))


def test_index_records_its_embedding_backend_and_keeps_it(tmp_path):
    from qa.errors import IndexMismatchError

    docs, index_dir = _docs_copy(tmp_path), tmp_path / "index"
    sync(docs, index_dir, embedding_backend="onnx-int8")
    assert json.loads((index_dir / "manifest.json").read_text())["embedding_backend"] == "onnx-int8"
    index = qa.Index.load(index_dir)
    assert index.retriever.embedder is models.embedder(index.store.model, "onnx-int8")
    assert index.retrieve("Enbek Program jobs")[0].doc_id.startswith("004")
    # An update keeps the backend; asking for another one is refused, and --rebuild switches.
    (docs / "005_new.txt").write_text("The Enbek Program office opened in Taraz on Monday.")
    assert sync(docs, index_dir).added == 1
    assert qa.Index.load(index_dir).store.embedding_backend == "onnx-int8"
    with pytest.raises(IndexMismatchError, match="rebuild"):
        sync(docs, index_dir, embedding_backend="torch")
    sync(docs, index_dir, rebuild=True, embedding_backend="torch")
    assert qa.Index.load(index_dir).store.embedding_backend == "torch"


def test_auto_embedding_backend_is_the_fastest_measured_for_the_cpu_and_recorded_as_such(tmp_path, monkeypatch):
    from qa import onnx_models
    from qa.embedding import BACKENDS, resolve_backend

    for units, expected in (((True, True), "torch-bf16"), ((False, True), "onnx-int8-full"), ((False, False), "torch")):
        monkeypatch.setattr(onnx_models, "cpu_matrix_units", lambda units=units: units)
        assert resolve_backend("auto") == expected
    monkeypatch.undo()
    assert resolve_backend("onnx") == "onnx" and resolve_backend("auto") in BACKENDS
    # A new index records what auto chose on this machine; asked again, an index keeps its own.
    docs, index_dir = _docs_copy(tmp_path), tmp_path / "index"
    sync(docs, index_dir, embedding_backend="torch")
    (docs / "005_new.txt").write_text("The Enbek Program office opened in Taraz on Monday.")
    assert sync(docs, index_dir, embedding_backend="auto").added == 1
    assert qa.Index.load(index_dir).store.embedding_backend == "torch"
    sync(docs, index_dir, rebuild=True, embedding_backend="auto")
    assert qa.Index.load(index_dir).store.embedding_backend == resolve_backend("auto")


def test_unknown_embedding_backend_is_refused(tmp_path):
    with pytest.raises(ValueError, match="embedding backend"):
        sync(_docs_copy(tmp_path), tmp_path / "index", embedding_backend="tensorrt")


def test_documents_newest_first(seed_index_dir):
    index = qa.Index.load(seed_index_dir)
    everything = index.documents()
    assert [d.doc_id for d in everything] == sorted(d.doc_id for d in everything)
    newest = index.documents(newest=3)
    by_date = sorted(everything, key=lambda d: (-(int(d.date[:10].replace("-", "")) if d.date else 0), d.doc_id))
    assert [d.doc_id for d in newest] == [d.doc_id for d in by_date[:3]]
    assert newest == [d for d in by_date[:3]]  # the same metadata as the whole listing
    assert index.documents(newest=0) == [] and len(index.documents(newest=50)) == 5

"""Archive scale (issue 13, item 2): which vector index and which lexical engine hold a million
chunks on this machine, measured at 10k, 100k and 1M chunks.

    python bench/bench_scale.py real [--embedding-backend onnx-int8]   # index >= 50,000 real chunks (cached)
    python bench/bench_scale.py vectors [--sizes 10000,100000,1000000] [--kinds flat,ivf_flat,ivf_sq8,hnsw]
    python bench/bench_scale.py lexical [--sizes ...] [--engines bm25s,tantivy]
    python bench/bench_scale.py store [--sizes ...]   # the whole store: build, load, memory, retrieve, updates
    python bench/bench_scale.py plot                 # bench/plots/scale.png from the saved results

The plot needs the ``bench`` extra (``pip install -e ".[bench]"``: matplotlib).

Store part: the whole index as ``qa`` writes and loads it (segments, IVF-SQ8, tantivy, manifest),
built by the store's own write path from the grown rows (``write_grown_index``: no reading or
embedding, which the real part measures), then loaded in a fresh process that times ``retrieve``
(hybrid, the question embedded each time; unfiltered, by date, by document) and reports its
memory, and updated one article at a time through ``sync(..., changed=[file])``.

Real part: BBC News, Reuters-21578, SciFact abstracts, SQuAD v1.1 dev and SQuADShifts contexts are
written as JSONL into a temporary documents folder and indexed by ``qa.store.sync`` (the real
cleaner, chunker and embedder), once; the index lives in ``$QA_SCALE_DIR`` (default
``~/.cache/qa/scale``), outside the project: the data is research-use only.

Synthetic part, to reach a size past the real chunks: chunk ``i`` copies real chunk
``i mod n_real`` -- its text under a new id, and its vector plus Gaussian noise
(sigma 0.03 per dimension, so about cosine 0.85 to the original), renormalised. Copies make the
neighbourhoods of real chunks denser, which is harder for an approximate index, not easier.

Queries are real: 1,000 SQuADShifts questions and the 300 SciFact test queries, embedded by the
index's model. Recall@10 is against exact inner-product search over the same vectors.
"""
from __future__ import annotations

import argparse
import gc
import gzip
import json
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from common import EVALDATA, RESULTS, percentiles, require, save

SCALE_DIR = Path(os.environ.get("QA_SCALE_DIR", Path.home() / ".cache" / "qa" / "scale"))
REAL_INDEX = SCALE_DIR / "real_index"
NOISE_SIGMA = 0.03
SEED = 13


# ---- the real chunks --------------------------------------------------------------------
def real_records() -> list[dict]:
    """Articles and passages from ../shared/evaldata as qa JSONL records (id, title, text, date)."""
    out = []
    with open(require(EVALDATA / "bbc-news" / "bbc_news.jsonl"), encoding="utf-8") as fh:
        for line in fh:
            r = json.loads(line)
            out.append({"id": "bbc_" + r["id"].replace("/", "_"), "title": r["title"], "text": r["text"]})
    with gzip.open(require(EVALDATA / "reuters-21578" / "reuters21578.jsonl.gz"), "rt", encoding="utf-8") as fh:
        for line in fh:
            r = json.loads(line)
            if len((r.get("text") or "").split()) >= 20:
                out.append({"id": f"reuters_{r['id']}", "title": r.get("title") or None, "text": r["text"]})
    with open(require(EVALDATA / "beir-scifact" / "corpus.jsonl"), encoding="utf-8") as fh:
        for line in fh:
            r = json.loads(line)
            out.append({"id": f"scifact_{r['_id']}", "title": r.get("title") or None, "text": r["text"]})
    squad = [EVALDATA / "squad-v1.1-dev" / "dev-v1.1.json"] + sorted((EVALDATA / "qa-train" / "squadshifts").glob("*.json"))
    for path in squad:
        data = json.loads(require(path).read_text(encoding="utf-8"))["data"]
        for a, article in enumerate(data):
            for p, paragraph in enumerate(article["paragraphs"]):
                out.append({"id": f"{path.stem}_{a}_{p}", "title": article.get("title"), "text": paragraph["context"]})
    return out


def build_real(backend: str) -> dict:
    from qa.store import sync

    records = real_records()
    work = Path(tempfile.mkdtemp(prefix="qa-scale-docs-"))
    try:
        with open(work / "corpus.jsonl", "w", encoding="utf-8") as fh:
            for r in records:
                fh.write(json.dumps(r, ensure_ascii=False) + "\n")
        t0 = time.perf_counter()
        summary = sync(work, REAL_INDEX, index_type="flat", rebuild=True, embedding_backend=backend)
        seconds = time.perf_counter() - t0
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {"embedding_backend": backend, "records": len(records), "documents": summary.total_documents, "chunks": summary.total_chunks,
            "skipped": len(summary.skipped), "build_s": round(seconds, 1),
            "chunks_per_s": round(summary.total_chunks / seconds, 1)}


def real_parts() -> tuple[list, list, np.ndarray]:
    """(documents, chunk rows, vectors) of the real index, each document's rows together."""
    from qa.segments import ChunkRow
    from qa.store import Store
    from qa.types import Document

    manifest = json.loads((require(REAL_INDEX) / "manifest.json").read_text())
    if manifest["format_version"] == 1:  # indexed before the segmented store (session 7): read its files
        import faiss

        gen = REAL_INDEX / manifest["generation"]
        with open(gen / "documents.jsonl", encoding="utf-8") as fh:
            documents = {d.doc_id: d for d in (Document(**json.loads(line)) for line in fh)}
        with open(gen / "chunks.jsonl", encoding="utf-8") as fh:
            rows = [ChunkRow(r["vector_id"], r["chunk_id"], r["doc_id"], r["start"], r["end"],
                             tuple(tuple(x) for x in r["sentences"])) for r in map(json.loads, fh)]
        index = faiss.read_index(str(gen / "vectors.faiss"))
        vectors = np.vstack([index.reconstruct(r.vector_id) for r in rows])
    else:
        store = Store.load(REAL_INDEX, vectors=False)
        documents = dict(store.documents.items())
        rows = list(store.rows)
        vectors = store.stored_vectors(store.vector_ids)
    first = {}
    for i, r in enumerate(rows):
        first.setdefault(r.doc_id, i)
    order = sorted(range(len(rows)), key=lambda i: (first[rows[i].doc_id], i))
    return [documents[d] for d in first], [rows[i] for i in order], vectors[order].astype(np.float32)


def load_real() -> tuple[np.ndarray, list[str]]:
    """(vectors, chunk texts) of the real index, in row order."""
    documents, rows, vectors = real_parts()
    by_id = {d.doc_id: d for d in documents}
    return vectors, [by_id[r.doc_id].text[r.start:r.end] for r in rows]


def query_texts() -> list[str]:
    """1,000 SQuADShifts questions (seeded sample) and the 300 SciFact test claims."""
    questions = []
    data = json.loads(require(EVALDATA / "qa-train" / "squadshifts" / "new_wiki_v1.0.json").read_text())["data"]
    for article in data:
        for paragraph in article["paragraphs"]:
            questions += [q["question"] for q in paragraph["qas"]]
    rng = np.random.default_rng(SEED)
    questions = [questions[i] for i in rng.choice(len(questions), 1000, replace=False)]
    with open(require(EVALDATA / "beir-scifact" / "queries.jsonl"), encoding="utf-8") as fh:
        scifact = {json.loads(line)["_id"]: json.loads(line)["text"] for line in fh}
    test_ids = [line.split("\t")[0] for line in (EVALDATA / "beir-scifact" / "qrels" / "test.tsv").read_text().splitlines()[1:]]
    return questions + [scifact[i] for i in dict.fromkeys(test_ids) if i in scifact]


def query_vectors() -> np.ndarray:
    from qa import models

    cache = SCALE_DIR / "queries.npy"
    if cache.exists():
        return np.load(cache)
    manifest = json.loads((require(REAL_INDEX) / "manifest.json").read_text())
    embedder = models.embedder(manifest["model"], manifest.get("embedding_backend", "torch"))
    queries = embedder.encode(query_texts()).astype(np.float32)
    np.save(cache, queries)
    return queries


def grown_vectors(real: np.ndarray, n: int) -> np.ndarray:
    """``n`` vectors: the real ones, then noisy renormalised copies (see the module docstring)."""
    if n <= len(real):
        return real[:n].copy()
    rng = np.random.default_rng(SEED)
    out = np.empty((n, real.shape[1]), np.float32)
    out[:len(real)] = real
    for start in range(len(real), n, 100_000):
        stop = min(n, start + 100_000)
        block = real[np.arange(start, stop) % len(real)] + rng.normal(0, NOISE_SIGMA, (stop - start, real.shape[1])).astype(np.float32)
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        out[start:stop] = block
    return out


def grown_texts(texts: list[str], n: int) -> list[str]:
    return [texts[i % len(texts)] for i in range(n)]


# ---- vector indexes ---------------------------------------------------------------------
def make_vector_index(kind: str, dimension: int, n: int):
    import faiss

    nlist = max(16, int(4 * np.sqrt(n)))
    if kind == "flat":
        return faiss.IndexIDMap2(faiss.IndexFlatIP(dimension))
    if kind == "hnsw":
        index = faiss.IndexHNSWFlat(dimension, 32, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 64
        return faiss.IndexIDMap2(index)
    quantizer = faiss.IndexFlatIP(dimension)
    if kind == "ivf_flat":
        return faiss.IndexIVFFlat(quantizer, dimension, nlist, faiss.METRIC_INNER_PRODUCT)
    if kind == "ivf_sq8":
        return faiss.IndexIVFScalarQuantizer(quantizer, dimension, nlist, faiss.ScalarQuantizer.QT_8bit,
                                             faiss.METRIC_INNER_PRODUCT)
    raise ValueError(kind)


def set_effort(index, kind: str, effort: int) -> None:
    import faiss

    if kind.startswith("ivf"):
        index.nprobe = effort
    elif kind == "hnsw":
        faiss.downcast_index(index.index).hnsw.efSearch = effort


EFFORTS = {"flat": [0], "ivf_flat": [16, 32, 64, 128, 256, 512], "ivf_sq8": [16, 32, 64, 128, 256, 512],
           "hnsw": [16, 32, 64, 128, 256, 512]}


def index_bytes(index) -> int:
    import faiss

    with tempfile.NamedTemporaryFile(dir=SCALE_DIR, suffix=".faiss") as tmp:
        faiss.write_index(index, tmp.name)
        return os.path.getsize(tmp.name)


def latencies(index, queries: np.ndarray, k: int = 50) -> tuple[float, float]:
    seconds = []
    for q in queries[:300]:
        t0 = time.perf_counter()
        index.search(q.reshape(1, -1), k)
        seconds.append(time.perf_counter() - t0)
    stats = percentiles(seconds)
    return stats["p50_ms"], stats["p95_ms"]


def bench_vectors(sizes: list[int], kinds: list[str], hnsw_max: int) -> list[dict]:
    import faiss

    real, _ = load_real()
    queries = query_vectors()
    rows = []
    for n in sizes:
        data = grown_vectors(real, n)
        ids = np.arange(n, dtype=np.int64)
        exact = faiss.IndexFlatIP(data.shape[1])
        exact.add(data)
        _, truth = exact.search(queries, 10)
        del exact
        for kind in kinds:
            if kind == "hnsw" and n > hnsw_max:
                continue
            gc.collect()
            index = make_vector_index(kind, data.shape[1], n)
            t0 = time.perf_counter()
            if not index.is_trained:
                sample = data[np.random.default_rng(SEED).choice(n, min(n, 64 * index.nlist), replace=False)]
                index.train(sample)
            train_s = time.perf_counter() - t0
            if kind.startswith("ivf"):
                index.set_direct_map_type(faiss.DirectMap.Hashtable)
            index.add_with_ids(data, ids)
            build_s = time.perf_counter() - t0
            size = index_bytes(index)
            # An update as a one-article change makes it: three chunks out, three in.
            t1 = time.perf_counter()
            try:
                index.remove_ids(np.arange(3, dtype=np.int64))
                index.add_with_ids(data[:3], np.arange(3, dtype=np.int64))
                update_ms = round(1000 * (time.perf_counter() - t1), 1)
            except RuntimeError:  # faiss's HNSW cannot remove vectors: a changed article would stay findable
                update_ms = None
            for effort in EFFORTS[kind]:
                set_effort(index, kind, effort)
                _, found = index.search(queries, 10)
                recall = float(np.mean([len(set(f) & set(t)) / 10 for f, t in zip(found, truth)]))
                p50, p95 = latencies(index, queries)
                row = {"chunks": n, "kind": kind, "effort": effort, "recall_at_10": round(recall, 4),
                       "search_p50_ms": round(p50, 2), "search_p95_ms": round(p95, 2), "train_s": round(train_s, 1),
                       "build_s": round(build_s, 1), "index_mb": round(size / 2**20, 1),
                       "update_3_chunks_ms": update_ms}
                rows.append(row)
                print(json.dumps(row), flush=True)
                if recall >= 0.99:
                    break
            del index
        del data
    return rows


# ---- lexical engines --------------------------------------------------------------------
class Bm25sEngine:
    """What the index uses now: bm25s over all chunk rows, refitted whole on every update."""

    name = "bm25s"

    def build(self, texts: list[str], folder: Path) -> None:
        from qa.lexical import LexicalIndex, tokenize

        self.tokens = [tokenize(t) for t in texts]
        self.index = LexicalIndex.fit(self.tokens)
        self.index.save(folder)

    def search(self, query: str, k: int = 50):
        scores = self.index.scores(query)
        top = np.argpartition(-scores, min(k, len(scores) - 1))[:k]
        return top[np.argsort(-scores[top])]

    def update(self, texts: list[str], folder: Path) -> None:
        from qa.lexical import LexicalIndex, tokenize

        self.tokens[:len(texts)] = [tokenize(t) for t in texts]
        self.index = LexicalIndex.fit(self.tokens)
        self.index.save(folder)


class TantivyEngine:
    """tantivy: segments written per commit and merged in the background, so an update writes
    only the new documents and marks the old ones deleted."""

    name = "tantivy"

    def build(self, texts: list[str], folder: Path) -> None:
        import tantivy

        builder = tantivy.SchemaBuilder()
        builder.add_integer_field("row", stored=True, indexed=True, fast=True)
        builder.add_text_field("text", stored=False, tokenizer_name="en_stem")
        self.schema = builder.build()
        folder.mkdir(parents=True, exist_ok=True)
        self.index = tantivy.Index(self.schema, path=str(folder))
        writer = self.index.writer(heap_size=256_000_000, num_threads=2)
        for row, text in enumerate(texts):
            writer.add_document(tantivy.Document(row=row, text=text))
        writer.commit()
        writer.wait_merging_threads()
        self.index.reload()

    def search(self, query: str, k: int = 50):
        from qa.lexical import _TOKEN, STOPWORDS

        # The words as typed: tantivy's en_stem analyser lowercases and stems them as it did the text.
        terms = [t for t in dict.fromkeys(_TOKEN.findall(query.lower())) if t not in STOPWORDS][:64]
        if not terms:
            return []
        parsed = self.index.parse_query(" OR ".join(f'"{t}"' for t in terms), ["text"])
        hits = self.index.searcher().search(parsed, k).hits
        searcher = self.index.searcher()
        return [searcher.doc(address)["row"][0] for _, address in hits]

    def update(self, texts: list[str], folder: Path) -> None:
        import tantivy

        writer = self.index.writer(heap_size=50_000_000, num_threads=1)
        for row in range(len(texts)):
            writer.delete_documents("row", row)
        for row, text in enumerate(texts):
            writer.add_document(tantivy.Document(row=row, text=text))
        writer.commit()
        writer.wait_merging_threads()
        self.index.reload()


ENGINES = {"bm25s": Bm25sEngine, "tantivy": TantivyEngine}
QUERY_TEXTS = [
    "How many jobs will the program create?", "oil prices rise opec", "interest rates bank of england",
    "football match result", "vitamin D deficiency risk", "mobile phone sales", "election campaign",
    "coffee exports Brazil", "What is the capital of France?", "gene expression in cancer cells",
]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench_lexical(sizes: list[int], engines: list[str]) -> list[dict]:
    _, real_texts = load_real()
    rows = []
    for n in sizes:
        texts = grown_texts(real_texts, n)
        for name in engines:
            folder = Path(tempfile.mkdtemp(prefix=f"qa-scale-{name}-", dir=SCALE_DIR))
            try:
                gc.collect()
                engine = ENGINES[name]()
                t0 = time.perf_counter()
                engine.build(texts, folder)
                build_s = time.perf_counter() - t0
                seconds = []
                for _ in range(3):
                    for q in QUERY_TEXTS:
                        t1 = time.perf_counter()
                        engine.search(q)
                        seconds.append(time.perf_counter() - t1)
                stats = percentiles(seconds)
                t2 = time.perf_counter()
                engine.update(texts[:3], folder)
                update_s = time.perf_counter() - t2
                size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
                row = {"chunks": n, "engine": name, "build_s": round(build_s, 1),
                       "search_p50_ms": stats["p50_ms"], "search_p95_ms": stats["p95_ms"],
                       "update_3_chunks_s": round(update_s, 2), "on_disk_mb": round(size / 2**20, 1),
                       "process_peak_rss_mb": round(peak_rss_mb())}
                rows.append(row)
                print(json.dumps(row), flush=True)
                del engine
            finally:
                shutil.rmtree(folder, ignore_errors=True)
    return rows


# ---- the whole store: build, load, retrieve with filters, one-article updates --------------
def grown_collection(n: int, docs_dir: Path) -> tuple[list, list, np.ndarray]:
    """Whole documents up to ``n`` chunk rows: the real ones, then copies (``<id>~<c>``, the same
    text and chunk offsets) whose vectors are the real ones plus noise, as in ``grown_vectors``.
    Every document gets a date (real ones have none): a seeded one between 2000 and 2020, so that
    date filters have something to select. ``source_path`` names a file in ``docs_dir`` that
    is written only for the documents an update touches."""
    from dataclasses import replace

    from qa.segments import ChunkRow

    documents, rows, real = real_parts()
    rows_of: dict[str, list[int]] = {}
    for i, r in enumerate(rows):
        rows_of.setdefault(r.doc_id, []).append(i)
    rng = np.random.default_rng(SEED)
    days = rng.integers(0, 21 * 365, size=len(documents) * (1 + n // max(len(rows), 1)) + 1)
    out_docs, out_rows, source = [], [], []
    copy = 0
    while len(out_rows) < n:
        for d in documents:
            if len(out_rows) >= n:
                break
            doc_id = d.doc_id if copy == 0 else f"{d.doc_id}~{copy}"
            date = str(np.datetime64("2000-01-01") + np.timedelta64(int(days[len(out_docs)]), "D"))
            out_docs.append(replace(d, doc_id=doc_id, date=date, source_path=str(docs_dir / f"{doc_id}.txt"),
                                    sha256=f"synthetic:{doc_id}"))
            for i, r in enumerate(rows_of[d.doc_id]):
                row = rows[r]
                out_rows.append(ChunkRow(len(out_rows), f"{doc_id}#{i}", doc_id, row.start, row.end, row.sentences))
                source.append(r)
        copy += 1
    source = np.asarray(source)
    vectors = real[source]
    copies = np.arange(len(source)) >= len(rows)
    for start in range(0, len(source), 100_000):
        block = slice(start, min(len(source), start + 100_000))
        noisy = copies[block]
        if noisy.any():
            v = vectors[block][noisy] + rng.normal(0, NOISE_SIGMA, (int(noisy.sum()), real.shape[1])).astype(np.float32)
            vectors[block][noisy] = v / np.linalg.norm(v, axis=1, keepdims=True)
    return out_docs, out_rows, vectors


def write_grown_index(index_dir: Path, documents: list, rows: list, vectors: np.ndarray) -> float:
    """The store's own write path (``_write_generation``: segment, vector index, tantivy,
    manifest) over rows that are already chunked and embedded; seconds taken."""
    from dataclasses import asdict

    from qa.chunking import ChunkerSettings
    from qa.segments import NewRows
    from qa.store import FORMAT_VERSION, _write_generation

    manifest = json.loads((REAL_INDEX / "manifest.json").read_text())
    settings = {"format_version": FORMAT_VERSION, "model": manifest["model"],
                "embedding_backend": manifest.get("embedding_backend", "torch"), "dimension": int(vectors.shape[1]),
                "chunker": manifest.get("chunker") or asdict(ChunkerSettings()), "requested_index_type": "auto",
                "next_vector_id": len(rows)}
    shutil.rmtree(index_dir, ignore_errors=True)
    index_dir.mkdir(parents=True)
    t0 = time.perf_counter()
    _write_generation(index_dir, None, None, settings, NewRows(documents, rows, vectors),
                      np.zeros(0, np.int64), np.zeros(0, np.int64), {"documents": len(documents), "chunks": len(rows)})
    return time.perf_counter() - t0


def serve(index_dir: Path) -> dict:
    """In a fresh process: load the index as the app does, then time ``retrieve`` (hybrid, k=5,
    the question embedded each time) on 300 real questions, unfiltered and with filters."""
    import qa

    t0 = time.perf_counter()
    index = qa.Index.load(index_dir)
    load_s = time.perf_counter() - t0
    texts = query_texts()[:300]
    rng = np.random.default_rng(SEED)
    some_docs = [str(d) for d in rng.choice(index.store.doc_ids, 20, replace=False)]
    variants = {"none": None, "dates (2 of 21 years)": {"date_from": "2005-01-01", "date_to": "2006-12-31"},
                "20 documents": {"doc_ids": some_docs}}
    for q in texts[:5]:
        index.retrieve(q, k=5)  # warm-up: the query model's first runs
    out = {"chunks": len(index.store), "documents": len(index.store.doc_ids), "load_s": round(load_s, 1),
           "segments": len(index.store.segments), "latency": {}}
    runs = [(name, filters, "hybrid") for name, filters in variants.items()]
    runs += [(f"{mode} only", None, mode) for mode in ("dense", "lexical")]
    for name, filters, mode in runs:
        seconds = []
        for q in texts:
            t1 = time.perf_counter()
            index.retrieve(q, k=5, filters=filters, mode=mode)
            seconds.append(time.perf_counter() - t1)
        out["latency"][name] = percentiles(seconds)
    status = Path("/proc/self/status").read_text()
    out["rss_mb"] = round(int(status.split("VmRSS:")[1].split()[0]) / 1024)
    out["peak_rss_mb"] = round(peak_rss_mb())
    return out


def updates(index_dir: Path, docs_dir: Path, repeats: int = 3) -> dict:
    """One-article add, change and delete through ``sync(..., changed=[file])``, the embedder
    loaded once beforehand (as in a running service); each ``repeats`` times, median seconds."""
    import qa
    from qa import models
    from qa.store import Store, sync

    manifest = json.loads((index_dir / "manifest.json").read_text())
    embedder = models.embedder(manifest["model"], manifest.get("embedding_backend", "torch"))
    embedder.encode(["warm-up"])
    docs_dir.mkdir(parents=True, exist_ok=True)
    ids = Store.load(index_dir, vectors=False).doc_ids.tolist()
    # A new draw and new texts each run: a run on an index that an earlier run updated must still
    # add, change and delete (the same text again would be "unchanged").
    nonce = time.time_ns()
    rng = np.random.default_rng(nonce)
    picks = [ids[int(i)] for i in rng.choice(len(ids), 2 * repeats, replace=False)]
    text = ("Oil prices rose on Monday after producers agreed to extend output cuts into next year, "
            "traders said, while analysts warned that demand in Asia remained weak. ") * 12
    timings: dict[str, list[float]] = {"add": [], "change": [], "delete": []}
    for i in range(repeats):
        path = docs_dir / f"zz_added_{nonce}_{i}.txt"
        path.write_text(f"Added article {i} ({nonce})\n\n{text}", encoding="utf-8")
        changed = docs_dir / f"{picks[i]}.txt"
        changed.write_text(f"Changed article {i} ({nonce})\n\n{text}", encoding="utf-8")
        for kind, target in (("add", path), ("change", changed), ("delete", docs_dir / f"{picks[repeats + i]}.txt")):
            t0 = time.perf_counter()
            summary = sync(docs_dir, index_dir, changed=[target], embedder=embedder)
            timings[kind].append(time.perf_counter() - t0)
            assert summary.changed, (kind, summary)
    index = qa.Index.load(index_dir)
    found = index.retrieve(f"Added article 0 ({nonce}) oil prices output cuts", k=10, mode="lexical")
    return {kind: {"median_s": round(float(np.median(t)), 2), "max_s": round(max(t), 2)} for kind, t in timings.items()} | {
        "added_article_found": any(p.doc_id == f"zz_added_{nonce}_0" for p in found),
        "segments_after": len(json.loads((index_dir / "manifest.json").read_text())["segments"])}


def bench_store(sizes: list[int]) -> list[dict]:
    import subprocess
    import sys

    out = []
    for n in sizes:
        work = SCALE_DIR / f"store_{n}"
        docs_dir = work / "documents"
        shutil.rmtree(work, ignore_errors=True)
        documents, rows, vectors = grown_collection(n, docs_dir)
        build_s = write_grown_index(work / "index", documents, rows, vectors)
        del documents, rows, vectors
        gc.collect()
        disk = sum(p.stat().st_size for p in (work / "index").rglob("*") if p.is_file())
        done = subprocess.run([sys.executable, __file__, "serve", "--index", str(work / "index")],
                              capture_output=True, text=True, check=True)
        row = {"chunks_asked": n, "build_s": round(build_s, 1), "on_disk_mb": round(disk / 2**20),
               **json.loads(done.stdout.strip().splitlines()[-1]), "updates": updates(work / "index", docs_dir)}
        out.append(row)
        print(json.dumps(row), flush=True)
    return out


# ---- plot -------------------------------------------------------------------------------
def plot() -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    vectors = json.loads((RESULTS / "scale_vectors.json").read_text())["rows"]
    lexical = json.loads((RESULTS / "scale_lexical.json").read_text())["rows"]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    best = {}
    for r in vectors:  # per kind and size: the least effort that reaches recall 0.95
        key = (r["kind"], r["chunks"])
        if r["recall_at_10"] >= 0.95 and key not in best:
            best[key] = r
    for kind in dict.fromkeys(r["kind"] for r in vectors):
        pts = sorted((n, r) for (k, n), r in best.items() if k == kind)
        if pts:
            axes[0].plot([n for n, _ in pts], [r["search_p50_ms"] for _, r in pts], marker="o", label=kind)
            axes[1].plot([n for n, _ in pts], [r["index_mb"] for _, r in pts], marker="o", label=kind)
    for name in dict.fromkeys(r["engine"] for r in lexical):
        pts = sorted((r["chunks"], r) for r in lexical if r["engine"] == name)
        axes[0].plot([n for n, _ in pts], [r["search_p50_ms"] for _, r in pts], marker="s", ls="--", label=f"lexical {name}")
        axes[2].plot([n for n, _ in pts], [r["update_3_chunks_s"] for _, r in pts], marker="s", ls="--", label=f"lexical {name}")
    axes[0].set_title("search p50 (ms; vectors at recall@10 >= 0.95)")
    axes[1].set_title("vector index size (MB)")
    axes[2].set_title("one-article update, lexical (s)")
    for ax in axes:
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("chunks")
        ax.legend(fontsize=8)
    fig.tight_layout()
    out = RESULTS.parent / "plots" / "scale.png"  # tracked, for BENCHMARKS.md (results/ is not)
    out.parent.mkdir(exist_ok=True)
    fig.savefig(out, dpi=110)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("part", choices=("real", "vectors", "lexical", "store", "serve", "plot"))
    parser.add_argument("--index", default=None, help="serve: the index folder to load")
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--kinds", default="flat,ivf_flat,ivf_sq8,hnsw")
    parser.add_argument("--hnsw-max", type=int, default=1_000_000, help="largest size HNSW is built at")
    parser.add_argument("--engines", default="bm25s,tantivy")
    parser.add_argument("--embedding-backend", default="onnx-int8",
                        help="for the real chunks (default onnx-int8, the fastest on these CPUs)")
    args = parser.parse_args()
    SCALE_DIR.mkdir(parents=True, exist_ok=True)
    sizes = [int(s) for s in args.sizes.split(",")]
    if args.part == "real":
        result = build_real(args.embedding_backend)
        print(result)
        save("scale_real", result)
    elif args.part == "vectors":
        save("scale_vectors", {"noise_sigma": NOISE_SIGMA, "rows": bench_vectors(sizes, args.kinds.split(","), args.hnsw_max)})
    elif args.part == "lexical":
        save("scale_lexical", {"rows": bench_lexical(sizes, args.engines.split(","))})
    elif args.part == "store":
        save("scale_store", {"noise_sigma": NOISE_SIGMA, "rows": bench_store(sizes)})
    elif args.part == "serve":
        print(json.dumps(serve(Path(args.index))))
    else:
        print(plot())


if __name__ == "__main__":
    main()

"""Index benchmarks: build throughput vs bare encode, one-article update vs full rebuild, retrieve latency.

    python bench/bench_index.py build   [--articles 300] [--repeats 3] [--backends torch,onnx,onnx-int8,onnx-int8-full,torch-bf16]
    python bench/bench_index.py update                       # 2,225 BBC articles
    python bench/bench_index.py latency                      # seed collection and 2,225 BBC articles
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from common import ROOT, percentiles, save, timed, write_bbc_articles

QUERIES = [
    "How many jobs will the Enbek Program create?", "Who received Baibek?", "What does Bakytty Otbasy mean?",
    "KZT560 billion drinking water", "Yertysbayev", "Where did the chairman of the People's Party go?",
    "oil prices rise", "football match result", "mobile phone sales", "election campaign", "film awards",
    "interest rates bank of england", "Tony Blair", "broadband internet", "rugby world cup", "music chart",
]


def bench_build(articles: int, repeats: int, backends: list[str]) -> dict:
    """Index build time per embedding backend, interleaved repeat by repeat (a noisy neighbour
    slows all alike); the ratio is against torch, the backend before this benchmark existed."""
    from qa.chunking import Chunker, ChunkerSettings
    from qa.documents import load_documents
    from qa import models
    from qa.store import sync

    work = Path(tempfile.mkdtemp(prefix="qa-bench-build-"))
    docs = work / "documents"
    write_bbc_articles(docs, limit=articles)
    embedders = {b: models.embedder(backend=b) for b in backends}
    chunker = Chunker(embedders[backends[0]].count_tokens, ChunkerSettings())
    chunks = [c.text for d in load_documents(docs).documents for c in chunker.split(d)]
    for embedder in embedders.values():
        embedder.encode(chunks[:64])  # warm-up

    bare: dict[str, list[float]] = {b: [] for b in backends}
    pipeline: dict[str, list[float]] = {b: [] for b in backends}
    for r in range(repeats):
        for backend, embedder in embedders.items():
            t, _ = timed(embedder.encode, chunks)
            bare[backend].append(t)
            index_dir = work / f"index-{backend}-{r}"
            t, summary = timed(sync, docs, index_dir, embedder=embedder)
            assert summary.total_chunks == len(chunks), (summary.total_chunks, len(chunks))
            pipeline[backend].append(t)
            shutil.rmtree(index_dir)
    shutil.rmtree(work)
    result = {"articles": articles, "chunks": len(chunks), "repeats": repeats, "backends": {}}
    base = statistics.median(pipeline[backends[0]])
    for backend in backends:
        bare_med, pipe_med = statistics.median(bare[backend]), statistics.median(pipeline[backend])
        result["backends"][backend] = {
            "bare_encode_s": [round(x, 2) for x in bare[backend]], "pipeline_s": [round(x, 2) for x in pipeline[backend]],
            "bare_chunks_per_s": round(len(chunks) / bare_med, 2), "pipeline_chunks_per_s": round(len(chunks) / pipe_med, 2),
            "pipeline_overhead": round(pipe_med / bare_med - 1, 4),
            f"build_speedup_vs_{backends[0]}": round(base / pipe_med, 3),
        }
    return result


def bench_update(repeats: int) -> dict:
    import subprocess
    import sys

    from qa import models
    from qa.store import sync

    work = Path(tempfile.mkdtemp(prefix="qa-bench-update-"))
    docs = work / "documents"
    paths = write_bbc_articles(docs)
    index_dir = work / "index"
    embedder = models.embedder()
    full_s, summary = timed(sync, docs, index_dir, embedder=embedder)
    warm, cold = [], []
    target = paths[len(paths) // 2]
    original = target.read_text(encoding="utf-8")
    for r in range(repeats):
        target.write_text(original + f"\n\nUpdate {r}: the figures were revised on Monday.", encoding="utf-8")
        t, s = timed(sync, docs, index_dir, embedder=embedder)
        assert (s.updated, s.added, s.removed) == (1, 0, 0)
        warm.append(t)
        # The same through the command line, paying interpreter start and model load.
        target.write_text(original + f"\n\nCLI update {r}: the figures were revised again.", encoding="utf-8")
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "qa", "index", "--documents", str(docs), "--index", str(index_dir)],
                       cwd=ROOT, check=True, capture_output=True)
        cold.append(time.perf_counter() - t0)
    shutil.rmtree(work)
    return {
        "articles": len(paths), "chunks": summary.total_chunks, "full_build_s": round(full_s, 2),
        "update_one_article_s": [round(x, 3) for x in warm], "update_median_s": round(statistics.median(warm), 3),
        "cli_update_one_article_s": [round(x, 3) for x in cold], "cli_update_median_s": round(statistics.median(cold), 3),
        "full_over_update": round(full_s / statistics.median(warm), 1),
    }


def bench_latency(repeats: int) -> dict:
    import qa
    from qa.store import sync

    out = {}
    work = Path(tempfile.mkdtemp(prefix="qa-bench-latency-"))
    seed_index = work / "seed-index"
    sync(ROOT / "documents", seed_index)
    bbc_docs = work / "bbc"
    write_bbc_articles(bbc_docs)
    bbc_index = work / "bbc-index"
    sync(bbc_docs, bbc_index)
    for name, index_dir in (("seed", seed_index), ("bbc_2225", bbc_index)):
        index = qa.Index.load(index_dir)
        for q in QUERIES[:3]:
            index.retrieve(q)  # warm-up
        times = []
        for _ in range(repeats):
            for q in QUERIES:
                t0 = time.perf_counter()
                index.retrieve(q, k=5)
                times.append(time.perf_counter() - t0)
        out[name] = {"documents": len(index), "chunks": len(index.store.rows), **percentiles(times)}
    shutil.rmtree(work)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("what", choices=["build", "update", "latency"])
    parser.add_argument("--articles", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--backends", default="torch,onnx,onnx-int8,torch-bf16", help="build: embedding backends, the first is the baseline")
    args = parser.parse_args()
    if args.what == "build":
        save("index_build", bench_build(args.articles, args.repeats, args.backends.split(",")))
    elif args.what == "update":
        save("index_update", bench_update(args.repeats))
    else:
        save("retrieve_latency", bench_latency(max(args.repeats, 5)))


if __name__ == "__main__":
    main()

"""Retrieval quality on BEIR SciFact (5,183 abstracts, 300 test claims) through the project's own index.

    python bench/bench_scifact.py            # nDCG@10 and Recall@100 for dense, BM25 and fused
    python bench/bench_scifact.py --backends torch,onnx-int8   # the same per embedding backend

Documents are indexed as title + abstract (the BEIR convention), chunked like any article; a
document's rank is the rank of its best chunk.
"""
from __future__ import annotations

import csv
import json
import shutil
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from common import EVALDATA, require, save

PUBLISHED = {"bm25_lucene_flat": 0.6789, "all-MiniLM-L6-v2": 0.6451, "txtai_hybrid": 0.713}


def main() -> None:
    import argparse

    import qa

    root = require(EVALDATA / "beir-scifact")
    work = Path(tempfile.mkdtemp(prefix="qa-bench-scifact-"))
    docs = work / "documents"
    docs.mkdir()
    with open(root / "corpus.jsonl", encoding="utf-8") as src, open(docs / "scifact.jsonl", "w", encoding="utf-8") as dst:
        for line in src:
            r = json.loads(line)
            text = f"{r['title']}\n\n{r['text']}" if r.get("title") else r["text"]
            dst.write(json.dumps({"id": r["_id"], "title": r.get("title") or None, "text": text}) + "\n")
    queries = {json.loads(l)["_id"]: json.loads(l)["text"] for l in open(root / "queries.jsonl", encoding="utf-8")}
    qrels: dict[str, set[str]] = defaultdict(set)
    with open(root / "qrels" / "test.tsv", encoding="utf-8") as fh:
        for row in csv.DictReader(fh, delimiter="\t"):
            if int(row["score"]) > 0:
                qrels[row["query-id"]].add(row["corpus-id"])

    parser = argparse.ArgumentParser()
    parser.add_argument("--backends", default="torch", help="embedding backends, comma-separated; the first is the baseline")
    backends = parser.parse_args().backends.split(",")
    result = {"queries": len(qrels), "published_ndcg10": PUBLISHED, "backends": {}}
    for backend in backends:
        result["backends"][backend] = _evaluate(qa, work, docs, backend, queries, qrels)
        base, this = result["backends"][backends[0]]["hybrid"], result["backends"][backend]["hybrid"]
        this["ndcg@10_minus_baseline"] = round(this["ndcg@10"] - base["ndcg@10"], 4)
    shutil.rmtree(work)
    save("scifact", result)


def _evaluate(qa, work: Path, docs: Path, backend: str, queries: dict, qrels: dict) -> dict:
    from qa.evaluation import ndcg_at_k, recall_at_k
    from qa.store import sync

    t0 = time.perf_counter()
    summary = sync(docs, work / f"index-{backend}", embedding_backend=backend)
    build_s = time.perf_counter() - t0
    index = qa.Index.load(work / f"index-{backend}")
    result = {"documents": summary.total_documents, "chunks": summary.total_chunks, "build_s": round(build_s, 1)}
    for mode in ("dense", "lexical", "hybrid"):
        ndcg, recall = [], []
        t0 = time.perf_counter()
        for qid, relevant in qrels.items():
            ranked = []
            # Recall@100 of documents needs more passages than a question may ask for (MAX_K).
            for p in index.retriever.retrieve(queries[qid], k=400, mode=mode, limit=400):
                if p.doc_id not in ranked:
                    ranked.append(p.doc_id)
            ndcg.append(ndcg_at_k(ranked, relevant, 10))
            recall.append(recall_at_k(ranked, relevant, 100))
        result[mode] = {"ndcg@10": round(sum(ndcg) / len(ndcg), 4), "recall@100": round(sum(recall) / len(recall), 4),
                        "seconds": round(time.perf_counter() - t0, 1)}
    return result


if __name__ == "__main__":
    main()

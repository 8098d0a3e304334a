"""The Ray Data build engine against the local one, with 1 and 2 workers (``--engine ray``).

    python bench/bench_ray.py [--articles 300] [--workers 1,2]

Builds the same BBC articles with the local engine and with Ray at each worker count (a fresh
index each time, Ray started once and warmed up first so that its start-up is not counted), and
checks that every build wrote the same chunk ids as the local one. The per-worker rate gives the
projection for an archive: workers and hours for 1,000,000 articles.
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from common import save, timed, write_bbc_articles

ARCHIVE_ARTICLES = 1_000_000


def main() -> None:
    import ray

    from qa.engines import LocalEngine, get_engine
    from qa.store import Store, sync

    parser = argparse.ArgumentParser()
    parser.add_argument("--articles", type=int, default=300)
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="qa-bench-ray-"))
    docs = work / "documents"
    write_bbc_articles(docs, limit=args.articles)
    warm = work / "warm"
    write_bbc_articles(warm, limit=4)
    counts = [int(w) for w in args.workers.split(",")]
    t0 = time.perf_counter()
    ray.init(num_cpus=max(counts), include_dashboard=False, log_to_driver=False, configure_logging=False)
    ray_start_s = time.perf_counter() - t0
    engines = {"local": LocalEngine(), **{f"ray-{w}": get_engine("ray", workers=w) for w in counts}}
    for name, engine in engines.items():  # warm-up: model loads, actor start-up, exports
        sync(warm, work / f"warm-{name}", engine=engine)

    times: dict[str, list[float]] = {name: [] for name in engines}
    reference = None
    chunks = 0
    for r in range(args.repeats):
        for name, engine in engines.items():
            target = work / f"index-{name}-{r}"
            t, summary = timed(sync, docs, target, engine=engine)
            times[name].append(t)
            chunks = summary.total_chunks
            ids = [row.chunk_id for row in Store.load(target).rows]
            reference = reference or ids
            assert ids == reference, f"{name} wrote other chunks than the local build"
            shutil.rmtree(target)
    ray.shutdown()
    shutil.rmtree(work)
    result = {"articles": args.articles, "chunks": chunks, "repeats": args.repeats,
              "ray_start_s": round(ray_start_s, 1), "same_chunk_ids": True, "engines": {}}
    chunks_per_article = chunks / args.articles
    for name, ts in times.items():
        med = statistics.median(ts)
        result["engines"][name] = {"build_s": [round(t, 2) for t in ts], "chunks_per_s": round(chunks / med, 2),
                                   "speedup_vs_local": round(statistics.median(times["local"]) / med, 3)}
    one = result["engines"].get("ray-1", {}).get("chunks_per_s")
    if one:
        archive_chunks = ARCHIVE_ARTICLES * chunks_per_article
        result["projection_1M_articles"] = {
            "chunks": round(archive_chunks), "per_worker_chunks_per_s": one,
            "hours_by_workers": {w: round(archive_chunks / (one * w) / 3600, 1) for w in (1, 8, 32, 64, 128)},
            "assumes": "one CPU per worker at this machine's per-worker rate and linear scaling "
                       "(the 2-worker measurement shows how far from linear two workers on one machine are)",
        }
    save("ray_build", result)


if __name__ == "__main__":
    main()

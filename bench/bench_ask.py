"""``ask()`` latency on the seed collection after warm-up (the reader and the embedder loaded).

    python bench/bench_ask.py [--repeats 5]
"""
from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

from common import ROOT, percentiles, save


def main() -> None:
    import qa
    from qa.store import sync

    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    rows = [json.loads(l) for l in (ROOT / "tests" / "data" / "seed_questions.jsonl").read_text().splitlines() if l.strip()]
    work = Path(tempfile.mkdtemp(prefix="qa-bench-ask-"))
    sync(ROOT / "documents", work / "index")
    index = qa.Index.load(work / "index")
    for r in rows[:3]:
        index.ask(r["question"], history=r["history"])  # warm-up
    ask_times, retrieve_times = [], []
    for _ in range(args.repeats):
        for r in rows:
            t0 = time.perf_counter()
            index.ask(r["question"], history=r["history"])
            ask_times.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            index.retrieve(r["question"])
            retrieve_times.append(time.perf_counter() - t0)
    shutil.rmtree(work)
    save("ask_latency", {"questions": len(rows), "repeats": args.repeats, "ask": percentiles(ask_times),
                         "retrieve_alone": percentiles(retrieve_times)})


if __name__ == "__main__":
    main()

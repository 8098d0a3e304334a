"""``ask()`` latency of two versions of the code, interleaved in one run (a same-run ratio).

    python bench/bench_versions.py OLD_CHECKOUT NEW_CHECKOUT [--repeats 5]

Each checkout (a git worktree of the revision to measure) answers in its own process over the
same seed index; the driver sends them the seed questions alternately, so a noisy neighbour
slows both alike. Used to check that a restructure kept ``ask`` as fast as before.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from common import ROOT, percentiles, save

WORKER = r"""
import json, sys, time
import qa
index = qa.Index.load(sys.argv[1])
for line in sys.stdin:
    r = json.loads(line)
    t0 = time.perf_counter()
    a = index.ask(r["question"], history=r["history"])
    print(json.dumps({"seconds": time.perf_counter() - t0, "text": a.text, "score": a.score}), flush=True)
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("old")
    parser.add_argument("new")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    rows = [json.loads(l) for l in (ROOT / "tests" / "data" / "seed_questions.jsonl").read_text().splitlines() if l.strip()]
    work = Path(tempfile.mkdtemp(prefix="qa-bench-versions-"))
    import qa

    qa.update_index(ROOT / "documents", work / "index")
    workers = {}
    for name in ("old", "new"):
        checkout = Path(getattr(args, name)).resolve()
        env = {**os.environ, "PYTHONPATH": str(checkout), "HF_HUB_OFFLINE": "1"}
        workers[name] = subprocess.Popen([sys.executable, "-c", WORKER, str(work / "index")], cwd=checkout, env=env,
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    times = {name: [] for name in workers}
    answers = {name: [] for name in workers}
    for repeat in range(args.repeats + 1):  # the first round warms up
        for r in rows:
            for name, w in workers.items():
                w.stdin.write(json.dumps(r) + "\n")
                w.stdin.flush()
                out = json.loads(w.stdout.readline())
                if repeat:
                    times[name].append(out["seconds"])
                    answers[name].append((out["text"], round(out["score"], 6)))
    for w in workers.values():
        w.stdin.close()
        w.wait()
    old, new = percentiles(times["old"]), percentiles(times["new"])
    save("ask_versions", {"old": str(args.old), "new": str(args.new), "questions": len(rows), "repeats": args.repeats,
                          "old_ask": old, "new_ask": new, "p50_ratio_new_to_old": round(new["p50_ms"] / old["p50_ms"], 3),
                          "same_answers_and_scores": answers["old"] == answers["new"]})


if __name__ == "__main__":
    main()

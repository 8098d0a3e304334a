"""Shared helpers for the benchmarks: where the outside data lives, timing, results on disk.

The public data sets are read from ../shared/evaldata (or $QA_EVALDATA) and written only to
temporary folders: they are research-use data and are never copied into the project.
"""
from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

EVALDATA = Path(os.environ.get("QA_EVALDATA", ROOT.parent / "shared" / "evaldata"))
RESULTS = ROOT / "bench" / "results"


def require(path: Path) -> Path:
    if not path.exists():
        sys.exit(f"benchmark data not found: {path} (set QA_EVALDATA to the evaldata folder)")
    return path


def write_bbc_articles(target: Path, limit: int | None = None) -> list[Path]:
    """BBC News as one .txt file per article (title line, blank line, body), like a documents/ folder."""
    target.mkdir(parents=True, exist_ok=True)
    paths = []
    with open(require(EVALDATA / "bbc-news" / "bbc_news.jsonl"), encoding="utf-8") as fh:
        for i, line in enumerate(fh):
            if limit is not None and i >= limit:
                break
            r = json.loads(line)
            path = target / (r["id"].replace("/", "_") + ".txt")
            path.write_text(f"{r['title']}\n\n{r['text']}", encoding="utf-8")
            paths.append(path)
    return paths


def timed(fn, *args, **kwargs):
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return time.perf_counter() - t0, out


def percentiles(seconds: list[float]) -> dict:
    from qa.evaluation import latency_stats

    return {k: round(v, 2) if isinstance(v, float) else v for k, v in latency_stats(seconds).items()}


def machine() -> dict:
    return {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()}


def save(name: str, result: dict) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    result = {"benchmark": name, "machine": machine(), "when": time.strftime("%Y-%m-%d %H:%M:%S"), **result}
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))

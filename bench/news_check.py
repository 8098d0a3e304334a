"""News check: does the reader (trained on Wikipedia-style text) answer questions over news wire?

    python bench/news_check.py                              # shipped reader; index in a new temp folder
    python bench/news_check.py --work /tmp/qa-news          # build once there, reuse it on later runs
    python bench/news_check.py --work /tmp/qa-news --reader-rev 45cf9d6^   # the reader before the retrained one
    python bench/news_check.py --check-only                 # verify the gold spans only (no index, no models)

The questions (``bench/news/reuters_questions.jsonl``, see ``bench/news/README.md``) were written
by hand over Reuters-21578 stories. The stories themselves are research-use data and are never
copied into the project: this script reads them from ``../shared/evaldata/reuters-21578`` (or
``$QA_EVALDATA``) and writes the selected ones into a work folder (default: a new folder under
/tmp).

Selection rule (deterministic): the first ``--stories`` (3,000) stories by NEWID whose body is not
empty, plus every story a question cites that is not among them. Each story becomes one
``.jsonl`` record ``{"id": "reuters-<NEWID>", "title", "date": ISO date, "text"}``, its body
reflowed (see ``reflow``): the wire's fixed-width lines are joined into paragraphs and the closing
"Reuter" sign-off is dropped. ``answer_start`` in the question file is an offset in that text.

The evaluation is the one ``python -m qa eval FILE`` runs (``qa.evaluation.evaluate_questions``),
with ``ask`` from an ``Index`` loaded on the work folder's index and built with
``AnswerSettings(reader_dir=..., scorer_file=...)`` when another reader is asked for.
"""
from __future__ import annotations

import argparse
import gzip
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import EVALDATA, ROOT, require

QUESTIONS = ROOT / "bench" / "news" / "reuters_questions.jsonl"
SOURCE = EVALDATA / "reuters-21578" / "reuters21578.jsonl.gz"
READER_FILES = ("reader.safetensors", "reader_config.json", "answerer.json")
_MONTHS = {m: i for i, m in enumerate(("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"), 1)}


# --------------------------------------------------------------------------- documents


def reflow(text: str) -> str:
    """A Reuters body as paragraphs: a line that starts with indentation (or follows a blank line)
    starts a paragraph, other line breaks become spaces; paragraphs are separated by a blank line;
    the closing "Reuter"/"REUTER" sign-off is dropped. The result is already in the form the
    project's loader leaves it (``normalize_whitespace``), so offsets in it are offsets in the
    indexed ``Document.text``. Tables become one paragraph per row."""
    from qa.documents import normalize_whitespace

    text = re.sub(r"\n\s*reuters?\s*\Z", "", text.rstrip(), flags=re.I)
    paragraphs: list[list[str]] = []
    current: list[str] = []
    for line in text.split("\n"):
        if not line.strip():
            if current:
                paragraphs.append(current)
                current = []
            continue
        if line[:1].isspace() and current:
            paragraphs.append(current)
            current = []
        current.append(line.strip())
    if current:
        paragraphs.append(current)
    return normalize_whitespace("\n\n".join(" ".join(p) for p in paragraphs))


def iso_date(value: str) -> str | None:
    """ "26-FEB-1987 15:01:01.79" -> "1987-02-26"."""
    m = re.match(r"\s*(\d{1,2})-([A-Z]{3})-(\d{4})", value or "", re.I)
    if not m or m.group(2).upper() not in _MONTHS:
        return None
    return f"{int(m.group(3)):04d}-{_MONTHS[m.group(2).upper()]:02d}-{int(m.group(1)):02d}"


def doc_id(newid: str | int) -> str:
    return f"reuters-{newid}"


def load_questions(path: Path = QUESTIONS) -> list[dict]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def select_stories(n: int, wanted: set[str]) -> list[dict]:
    """The first ``n`` stories by NEWID with a non-empty body, plus the ``wanted`` doc ids outside them."""
    with gzip.open(require(SOURCE), "rt", encoding="utf-8") as fh:
        stories = [json.loads(line) for line in fh]
    stories.sort(key=lambda r: int(r["id"]))
    with_body = [r for r in stories if r["text"].strip()]
    chosen = with_body[:n]
    have = {doc_id(r["id"]) for r in chosen}
    chosen += [r for r in with_body[n:] if doc_id(r["id"]) in wanted and doc_id(r["id"]) not in have]
    missing = wanted - {doc_id(r["id"]) for r in chosen}
    if missing:
        sys.exit(f"questions cite stories that have no body or do not exist: {sorted(missing)}")
    return chosen


def records(stories: list[dict]) -> list[dict]:
    return [{"id": doc_id(r["id"]), "title": r["title"] or None, "date": iso_date(r["date"]), "text": reflow(r["text"])}
            for r in stories]


def write_documents(recs: list[dict], folder: Path) -> Path:
    """One ``reuters.jsonl`` in ``folder``, rewritten only when its content changes (so a reused
    work folder's index stays up to date at no cost)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "reuters.jsonl"
    body = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in recs)
    if not path.exists() or path.read_text(encoding="utf-8") != body:
        path.write_text(body, encoding="utf-8")
    return path


# --------------------------------------------------------------------------- gold spans


def check_questions(questions: list[dict], texts: dict[str, str]) -> list[str]:
    """Problems with the question file: duplicate ids, a gold span not found (as whole words) in
    its document, an ``answer_start`` that does not point at the first gold span, an answerable
    question without a document or an unanswerable one with one."""
    problems = []
    seen: set[str] = set()
    for q in questions:
        qid = q.get("id")
        if qid in seen:
            problems.append(f"{qid}: duplicate id")
        seen.add(qid)
        answers, doc = q.get("answers") or [], q.get("doc")
        if not answers:
            if doc:
                problems.append(f"{qid}: unanswerable question with a doc ({doc})")
            continue
        if doc not in texts:
            problems.append(f"{qid}: document {doc!r} not in the selection")
            continue
        text = texts[doc]
        for a in answers:
            if not re.search(r"(?<!\w)" + re.escape(a) + r"(?!\w)", text):
                problems.append(f"{qid}: gold span {a!r} not in {doc}")
        start = q.get("answer_start")
        if start is not None and text[start:start + len(answers[0])] != answers[0]:
            problems.append(f"{qid}: answer_start {start} does not point at {answers[0]!r} in {doc}")
    return problems


# --------------------------------------------------------------------------- readers


def extract_reader(rev: str, work: Path) -> Path:
    """``qa/reader_model/{reader.safetensors, reader_config.json, answerer.json}`` as of git ``rev``,
    written to ``work/readers/<commit>/``; returns that folder."""
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--verify", f"{rev}^{{commit}}"],
                            check=True, capture_output=True, text=True).stdout.strip()
    folder = work / "readers" / commit[:12]
    folder.mkdir(parents=True, exist_ok=True)
    for name in READER_FILES:
        target = folder / name
        if not target.exists():
            blob = subprocess.run(["git", "-C", str(ROOT), "show", f"{commit}:qa/reader_model/{name}"],
                                  check=True, capture_output=True).stdout
            target.write_bytes(blob)
    (folder / "COMMIT").write_text(commit + "\n")
    return folder


# --------------------------------------------------------------------------- failure analysis


def explain(index, question: dict, item: dict, k: int) -> dict:
    """Why an answerable question was missed, from the pipeline's own steps (``Answerer.ask``
    does the same: follow-up -> retrieve -> name guard -> candidates -> scorer threshold).

    ``cause`` is one of: ``correct``; ``other-story`` (an answer cited from another story, even
    one that overlaps the gold span); ``partial`` (answered from the gold story, overlapping the
    gold span); ``retrieval`` (the gold story is not among the ``k`` passages); ``name-guard`` (a
    name or figure of the question is in none of the passages, so ``ask`` abstains before
    reading); ``threshold-right`` / ``threshold-wrong`` (abstained: the best candidate scored under
    the threshold, and was / was not a gold span); ``reader`` (a wrong span from the gold story)."""
    from qa.evaluation import exact_match_score, metric_max_over_ground_truths
    from qa.followup import normalize_question, resolve_followup
    from qa.retrieval import check_query

    answerer = index.answerer
    golds, doc = question["answers"], question["doc"]
    resolved = resolve_followup(normalize_question(check_query(question["question"])),
                                [tuple(h) for h in question.get("history") or []])
    sources = answerer.sources(resolved, k=k)
    docs = [s.passage.doc_id for s in sources]
    reading = answerer.read(resolved.reader_question, sources, idf=answerer.retriever.idf)
    missing, candidates = list(reading.missing_names), reading.candidates
    for c in candidates:
        c.score = answerer.scorer.probability(c.features)
    best = max(candidates, key=lambda c: c.score, default=None)
    out = {"gold_doc_rank": docs.index(doc) + 1 if doc in docs else None, "missing_names": missing,
           "best_candidate": best.text if best else None, "best_score": round(best.score, 3) if best else None,
           "best_doc": best.passage.doc_id if best else None}
    best_right = bool(best) and bool(metric_max_over_ground_truths(exact_match_score, best.text, golds))
    if item.get("em"):
        cause = "correct"
    elif item["prediction"] and not item.get("top_citation_doc"):
        cause = "other-story"
    elif item.get("f1"):
        cause = "partial"
    elif doc not in docs:
        cause = "retrieval"
    elif not item["prediction"]:
        cause = "name-guard" if missing else ("threshold-right" if best_right else "threshold-wrong")
    else:
        cause = "reader"
    out["cause"] = cause
    return out


# --------------------------------------------------------------------------- report


def kind_table(report: dict) -> str:
    rows = {}
    for item in report["items"]:
        rows.setdefault(str(item["kind"]), []).append(item)

    def pct(vals):
        vals = [float(v) for v in vals if v is not None]
        return f"{100 * sum(vals) / len(vals):6.1f}" if vals else "   n/a"

    lines = ["  kind            n      EM      F1  contains answered abstain top-cit  recall@k"]
    for kind in sorted(rows):
        its = rows[kind]
        lines.append(
            f"  {kind:<13} {len(its):>3}  {pct([i.get('em') for i in its])}  {pct([i.get('f1') for i in its])}"
            f"  {pct([i.get('contains_gold') for i in its])}    {pct([i.get('answered') for i in its])}"
            f"  {pct([i.get('abstained') for i in its])}  {pct([i.get('top_citation_doc') for i in its])}"
            f"    {pct([i.get('gold_doc_recall') for i in its])}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", type=Path, default=None, help="work folder (documents/, index/, readers/); default: a new one under /tmp")
    ap.add_argument("--questions", type=Path, default=QUESTIONS)
    ap.add_argument("--stories", type=int, default=3000, help="the first N stories with a body, by NEWID (default 3000)")
    ap.add_argument("--reader-dir", type=Path, default=None, help="a reader folder (reader.safetensors, reader_config.json)")
    ap.add_argument("--scorer-file", type=Path, default=None, help="its answer scorer (default: answerer.json in --reader-dir)")
    ap.add_argument("--reader-rev", default=None, help="git revision whose qa/reader_model/ to evaluate (e.g. 45cf9d6^)")
    ap.add_argument("-k", type=int, default=5, help="passages per question (as `python -m qa eval -k`)")
    ap.add_argument("--json", type=Path, default=None, help="write the full report (every question's answer) here")
    ap.add_argument("--check-only", action="store_true", help="verify the question file against the stories and stop")
    ap.add_argument("--explain", action="store_true", help="classify every missed answerable question (retrieval, name guard, threshold, reader)")
    args = ap.parse_args(argv)

    questions = load_questions(args.questions)
    wanted = {q["doc"] for q in questions if q.get("doc")}
    recs = records(select_stories(args.stories, wanted))
    texts = {r["id"]: r["text"] for r in recs}
    problems = check_questions(questions, texts)
    n_ans = sum(1 for q in questions if q.get("answers"))
    print(f"{len(recs)} stories selected; {len(questions)} questions ({n_ans} answerable over {len(wanted)} stories, "
          f"{len(questions) - n_ans} unanswerable)")
    if problems:
        print("question file problems:\n  " + "\n  ".join(problems))
        return 1
    print("every gold span is in its story's text")
    if args.check_only:
        return 0

    import qa
    from qa.evaluation import evaluate_questions, format_report

    work = args.work or Path(tempfile.mkdtemp(prefix="qa-news-"))
    work.mkdir(parents=True, exist_ok=True)
    docs_dir, index_dir = work / "documents", work / "index"
    write_documents(recs, docs_dir)
    t0 = time.perf_counter()
    summary = qa.update_index(docs_dir, index_dir)
    print(f"index {index_dir}: {summary.total_documents} documents, {summary.total_chunks} chunks "
          f"({summary.chunks_embedded} embedded, {summary.unchanged} documents unchanged) in {time.perf_counter() - t0:.1f} s")
    for path, reason in summary.skipped:
        print(f"warning: skipped {path}: {reason}")

    reader_dir = args.reader_dir
    if args.reader_rev:
        if reader_dir:
            sys.exit("give --reader-dir or --reader-rev, not both")
        reader_dir = extract_reader(args.reader_rev, work)
    settings = qa.AnswerSettings()
    if reader_dir:
        scorer = args.scorer_file or reader_dir / "answerer.json"
        settings = qa.AnswerSettings(reader_dir=Path(reader_dir).resolve(), scorer_file=Path(scorer).resolve())
    elif args.scorer_file:
        settings = qa.AnswerSettings(scorer_file=args.scorer_file.resolve())
    index = qa.Index.load(index_dir, settings=settings)

    # The index must hold exactly the text the gold spans were checked against.
    indexed = {d: index.document(d).text for d in wanted}
    problems = check_questions(questions, indexed)
    if problems:
        print("gold spans do not match the indexed text:\n  " + "\n  ".join(problems))
        return 1

    print(f"reader {settings.reader_dir}\nscorer {settings.scorer_file}")
    report = evaluate_questions(args.questions, ask=index.ask, k=args.k)
    report["reader_dir"], report["scorer_file"] = str(settings.reader_dir), str(settings.scorer_file)
    report["reader_rev"] = args.reader_rev
    report["index"], report["stories"] = str(index_dir), len(recs)
    print(format_report(report))
    print("By kind (percent; EM/F1/contains/answered over answerable, abstain over unanswerable):")
    print(kind_table(report))
    if args.explain:
        by_id = {q["id"]: q for q in questions}
        causes: dict[str, list[str]] = {}
        print("Missed answerable questions (gold rank among the passages; best candidate and its score, even under the threshold):")
        for item in report["items"]:
            if not item["answerable"]:
                continue
            why = explain(index, by_id[item["id"]], item, args.k)
            item["explain"] = why
            causes.setdefault(why["cause"], []).append(item["id"])
            if why["cause"] != "correct":
                print(f"  {item['id']} {why['cause']:<15} said {item['prediction']!r}; gold {by_id[item['id']]['answers'][0]!r} "
                      f"(rank {why['gold_doc_rank']}); best {why['best_candidate']!r} {why['best_score']} from {why['best_doc']}"
                      + (f"; missing {why['missing_names']}" if why["missing_names"] else ""))
        report["causes"] = {c: len(ids) for c, ids in causes.items()}
        print("Causes: " + ", ".join(f"{c} {len(ids)}" for c, ids in sorted(causes.items(), key=lambda x: -len(x[1]))))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1, ensure_ascii=False), encoding="utf-8")
        print(f"report written to {args.json}")
    default = settings == qa.AnswerSettings()
    print("Shell equivalent" + ("" if default else " (with the shipped reader: `python -m qa eval` has no reader option)") + ":")
    questions_path = args.questions.resolve()
    if questions_path.is_relative_to(ROOT):
        questions_path = questions_path.relative_to(ROOT)
    print(f"  QA_INDEX={index_dir.resolve()} python -m qa eval {questions_path} -k {args.k}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Command line: ``python -m qa index | ask | eval``."""
from __future__ import annotations

import argparse
import json
import sys

from .embedding import AUTO_BACKEND, BACKENDS
from .engines import ENGINES
from .vectors import INDEX_TYPES


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m qa", description="Cited extractive answers from news articles.")
    sub = parser.add_subparsers(dest="command", required=True)

    p_index = sub.add_parser("index", help="bring the index up to date with the documents folder")
    p_index.add_argument("--documents", default=None, help="documents folder (default: documents/ or $QA_DOCUMENTS)")
    p_index.add_argument("--index", default=None, help="index folder (default: index/ or $QA_INDEX)")
    p_index.add_argument("--rebuild", action="store_true", help="re-embed everything from scratch")
    p_index.add_argument("--model", default=None, help="sentence-transformers model name or path (new or rebuilt index)")
    p_index.add_argument("--index-type", default="auto", choices=list(INDEX_TYPES),
                         help="FAISS index type (auto: exact below 50,000 chunks, ivf-sq8 above)")
    p_index.add_argument("--embedding-backend", default=None, choices=(AUTO_BACKEND, *BACKENDS),
                         help="how chunks and questions are embedded (new or rebuilt index; default torch "
                              "or $QA_EMBEDDING_BACKEND; auto: the fastest measured for this CPU); an index "
                              "keeps the one it was built with")
    p_index.add_argument("--engine", default="local", choices=list(ENGINES),
                         help="read, chunk and embed here (local) or on Ray Data (a local instance, or the "
                              "cluster at $RAY_ADDRESS; needs the [ray] extra); both write the same index")
    p_index.add_argument("--workers", type=int, default=None, help="ray: embedding actors (default: one per CPU)")
    p_index.add_argument("--changed", nargs="+", default=None, metavar="FILE",
                         help="update only these files of the documents folder (new, edited or deleted) and take "
                              "the others as unchanged without reading them: for large archives")

    p_ask = sub.add_parser("ask", help="answer a question with citations")
    p_ask.add_argument("question")
    p_ask.add_argument("--index", default=None)
    p_ask.add_argument("-k", type=int, default=5, help="passages to read")
    p_ask.add_argument("--json", action="store_true", help="print the Answer as JSON")

    p_ret = sub.add_parser("retrieve", help="show the passages retrieved for a query")
    p_ret.add_argument("query")
    p_ret.add_argument("--index", default=None)
    p_ret.add_argument("-k", type=int, default=5)

    p_eval = sub.add_parser("eval", help="evaluate on a JSONL question file or a SQuAD JSON file")
    p_eval.add_argument("file")
    p_eval.add_argument("--articles", default=None, help="SQuAD: article slice, e.g. 24:48 (the held-out half)")
    p_eval.add_argument("-k", type=int, default=5)
    p_eval.add_argument("--json", action="store_true", help="print the full report as JSON")

    args = parser.parse_args(argv)
    import qa

    try:
        if args.command == "index":
            return _index(args)
        if args.command == "ask":
            index = qa.Index.load(args.index) if args.index else None
            answer = (index or qa).ask(args.question, k=args.k)
            print(json.dumps(answer.to_dict(), indent=1, ensure_ascii=False) if args.json else format_answer(answer))
            return 0
        if args.command == "retrieve":
            index = qa.Index.load(args.index) if args.index else None
            for i, p in enumerate((index or qa).retrieve(args.query, k=args.k), start=1):
                print(f"[{i}] {p.doc_id} {p.title or ''} {p.date or ''} score={p.score:.4f} chars {p.start}-{p.end}")
                print("    " + p.text.replace("\n", " ")[:300])
            return 0
        if args.command == "eval":
            from .evaluation import format_report, run_eval

            report = run_eval(args.file, articles=args.articles, k=args.k)
            print(json.dumps(report, indent=1, ensure_ascii=False) if args.json else format_report(report))
            return 0
    except (ValueError, FileNotFoundError, qa.QAError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: the index on disk is unchanged unless the update had finished", file=sys.stderr)
        return 130
    return 1


def _index(args) -> int:
    import qa

    # No callback: the embedding step draws its own progress bar on the terminal for long runs.
    summary = qa.update_index(args.documents, args.index, rebuild=args.rebuild,
                              model=args.model, index_type=args.index_type, embedding_backend=args.embedding_backend,
                              engine=args.engine, workers=args.workers, changed=args.changed)
    for path, reason in summary.skipped:
        print(f"warning: skipped {path}: {reason}", file=sys.stderr)
    print(
        f"added {summary.added}, updated {summary.updated}, removed {summary.removed}, "
        f"unchanged {summary.unchanged}, skipped {len(summary.skipped)}; "
        f"{summary.total_documents} documents, {summary.total_chunks} chunks "
        f"({summary.chunks_embedded} embedded) in {summary.seconds:.2f} s"
    )
    return 0


def format_answer(answer) -> str:
    lines = []
    if answer.text:
        lines.append(f"Answer: {answer.text}   (confidence {answer.score:.2f})")
    else:
        lines.append(f"The articles don't contain an answer to that (best guess scored {answer.score:.2f}).")
    if answer.resolved_question and answer.resolved_question != answer.question:
        lines.append(f"(read as: {answer.resolved_question})")
    for i, c in enumerate(answer.citations, start=1):
        head = " ".join(x for x in (c.title, c.date) if x)
        lines.append(f"[{i}] {c.doc_id}{' - ' + head if head else ''}  (chars {c.start}-{c.end}, answer {c.answer_start}-{c.answer_end})")
        rel_s, rel_e = c.answer_start - c.start, c.answer_end - c.start
        passage = c.text[:rel_s] + "**" + c.text[rel_s:rel_e] + "**" + c.text[rel_e:]
        lines.append("    " + passage.replace("\n", " "))
    for alt in answer.alternatives:
        src = alt.citations[0].doc_id if alt.citations else "?"
        lines.append(f"Also: {alt.text} ({alt.score:.2f}, {src})")
    if not answer.text and answer.passages:
        lines.append("Closest passages:")
        for p in answer.passages[:3]:
            lines.append(f"  - {p.doc_id}: {p.text[:160].replace(chr(10), ' ')}...")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())

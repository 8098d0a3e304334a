"""Web chat over the indexed news articles (Gradio).

    python app.py [--port 7860] [--host 127.0.0.1] [--index index] [--documents documents]
                  [--admin-token TOKEN | QA_ADMIN_TOKEN=TOKEN] [--max-upload-mb 5]

Brings ``--index`` up to date with ``--documents`` (``qa.update_index``), then serves a
chat where every answer is a span copied from an article, shown with numbered
citations, the passage it came from (answer highlighted) and the whole article.

The UI is deliberately thin: retrieval and answering live in the ``qa`` package; this
file only formats ``qa.Answer`` objects. Article text is untrusted: everything derived
from an article is HTML-escaped (and markdown-neutralised) before it is rendered.

Who may do what: asking (the chat, ``/ask``) is open to anyone who can reach the server.
Uploading and updating the index are writes: they are refused unless the operator set an
admin token (``--admin-token`` or ``QA_ADMIN_TOKEN``), and then need that token. The check is
inside the handler, so calling it through Gradio's queue with its fn_index is refused too.

Asking over HTTP (``answer.to_dict()`` as JSON), two ways:

    curl -X POST http://127.0.0.1:7860/api/ask -H 'content-type: application/json' \
         -d '{"question": "How many jobs will the Enbek Program create?"}'

    from gradio_client import Client   # Gradio's named endpoint, through its queue
    Client("http://127.0.0.1:7860").predict("How many jobs will the Enbek Program create?", api_name="/ask")

The server is uvicorn running a FastAPI app: ``POST /api/ask``, with the Gradio app mounted at
the root (``build_server``).
"""
from __future__ import annotations

import argparse
import hmac
import logging
import os
import re
import shutil
import sys
import threading
import time
from pathlib import Path
from typing import Any

_T0 = time.monotonic()

import anyio  # noqa: E402
import fastapi  # noqa: E402
import gradio as gr  # noqa: E402
import uvicorn  # noqa: E402
from fastapi.responses import JSONResponse  # noqa: E402
from pydantic import BaseModel, Field  # noqa: E402

import qa  # noqa: E402

log = logging.getLogger("qa.app")

MAX_QUESTION_CHARS = qa.MAX_QUESTION_CHARS  # the reader reads no further: a longer message is refused, not cut
DEFAULT_K = 5
UPLOAD_SUFFIXES = qa.SUPPORTED_SUFFIXES
# Questions answered at once. One at a time left 16 users 5.5 answers/s: while one question was
# in the reader, nothing else moved. Several in flight overlap retrieval and parsing with the
# reader's forward pass (which the reader still runs one at a time: qa.reader.WindowBatcher).
ASK_CONCURRENCY = 4
ASK_SLOTS = threading.BoundedSemaphore(ASK_CONCURRENCY)  # shared by every route that answers
API_THREADS = anyio.CapacityLimiter(ASK_CONCURRENCY)  # worker threads of POST /api/ask
DEFAULT_MAX_UPLOAD_MB = 5.0  # the largest seed article is 7 kB; a 5 MB "article" is a mistake or an attack
WRITES_OFF = ("Uploading and updating are turned off on this server. The operator can turn them on by "
              "starting the app with an admin token (--admin-token or QA_ADMIN_TOKEN).")
WRONG_TOKEN = "Wrong or missing admin token: uploading and updating need the token the app was started with."
INDEX_UNAVAILABLE = ("The article index is not available right now; the operator has been told why "
                     "(see the server log). Please try again later.")
INDEX_LOADING = "The article index is still loading. Please try again in a few seconds."
ANSWER_FAILED = "Sorry, something went wrong while answering. Please try again."
NO_ANSWER = "The articles don't say."

# What the bundled articles can show: figures with their units, a gloss, a place, an honest
# "the articles don't say", and (the last two) a follow-up that needs the previous turn.
EXAMPLES = [
    "By how much has Kazakhstan's GDP grown?",
    "What does Bakytty Otbasy mean?",
    "Where did the chairman of the People's Party of Kazakhstan go?",
    "What is the capital of France?",
    "How many jobs will the Enbek Program create?",
    "How many people will it cover?",
]

CSS = """
.qa-reply { line-height: 1.45; }
.qa-answer { font-size: 1.15em; margin-bottom: .35em; }
.qa-answer-text { font-weight: 700; }
.qa-noanswer { font-weight: 600; }
.qa-conf { font-size: .75em; padding: .1em .5em; border-radius: .8em; margin-left: .4em; white-space: nowrap; vertical-align: middle; }
.qa-conf-high { background: #d1fae5; color: #065f46; }
.qa-conf-medium { background: #fef3c7; color: #92400e; }
.qa-conf-low { background: #fee2e2; color: #991b1b; }
.qa-resolved, .qa-meta, .qa-alts { font-size: .8em; color: #6b7280; }
.qa-docid { font-size: .8em; color: #6b7280; font-family: monospace; }
.qa-cites { margin: .4em 0 0 0; padding-left: 0; list-style: none; }
.qa-cite { margin: .5em 0; }
.qa-cite-head { font-size: .9em; }
.qa-passage { border-left: 3px solid #d1d5db; margin: .25em 0; padding: .15em .6em; font-size: .92em; }
.qa-passage mark, .qa-article mark { background: #fde047; color: inherit; padding: 0 .1em; }
.qa-article { max-height: 24em; overflow-y: auto; font-size: .9em; padding: .3em .6em; border: 1px solid #e5e7eb; border-radius: .3em; }
.qa-details summary { cursor: pointer; font-size: .85em; color: #2563eb; }
.qa-error { color: #991b1b; }
"""

# HTML-special characters as entities, plus the characters markdown (or LaTeX) could
# interpret as numeric entities, so the text shows literally and can never become a tag,
# a link, emphasis, code...; newlines become <br> (no raw newline ever reaches the
# markdown renderer, so the whole reply stays one inert HTML block).
_ESCAPES = {ord(c): f"&#{ord(c)};" for c in "\\`*_[](){}#|~$!:^=+-"}
_ESCAPES.update({ord("&"): "&amp;", ord("<"): "&lt;", ord(">"): "&gt;", ord('"'): "&quot;", ord("'"): "&#39;"})
_ESCAPES.update({ord("\n"): "<br>", ord("\r"): ""})


def esc(text: Any) -> str:
    """Untrusted text -> inert HTML (same result as html.escape, plus markdown neutralised)."""
    if text is None:
        return ""
    return str(text).translate(_ESCAPES)


def highlight(text: str, start: int | None, end: int | None) -> str:
    """Escape ``text`` and wrap the escaped ``text[start:end]`` in <mark> (if the offsets are sane)."""
    if start is None or end is None or not (0 <= start < end <= len(text)):
        return esc(text)
    return f"{esc(text[:start])}<mark>{esc(text[start:end])}</mark>{esc(text[end:])}"


def confidence(score: float) -> str:
    if score >= 0.7:
        return "high"
    if score >= 0.4:
        return "medium"
    return "low"


# ---------------------------------------------------------------------------------------
# The current index, swappable while the app runs
# ---------------------------------------------------------------------------------------
class UpdateRunning(RuntimeError):
    """An update was asked for while one runs."""


class IndexHolder:
    """Holds the live ``qa.Index``; ``update()`` rebuilds on disk and swaps a fresh one in."""

    def __init__(self, index_dir: str, documents_dir: str):
        self.index_dir = index_dir
        self.documents_dir = documents_dir
        self._lock = threading.Lock()  # guards _index / _error
        self._update_lock = threading.Lock()  # one update at a time
        self._index: qa.Index | None = None
        self._error: str | None = "The index is still loading."
        self.ready = threading.Event()

    def get(self, wait: float = 120.0) -> qa.Index:
        self.ready.wait(wait)
        with self._lock:
            if self._index is None:
                raise IndexUnavailable(self._error or "No index is loaded.")
            return self._index

    @property
    def error(self) -> str | None:
        """Why no index is loaded (for the operator: it may name paths), or None."""
        with self._lock:
            return self._error if self._index is None else None

    def peek(self) -> qa.Index | None:
        with self._lock:
            return self._index

    def _load(self) -> None:
        idx = qa.Index.load(self.index_dir)
        try:  # warm up (model load, caches) before serving questions from it
            idx.retrieve("warm up", k=1)
        except Exception:  # noqa: BLE001 - an empty index may not retrieve; still usable
            log.debug("warm-up retrieve failed", exc_info=True)
        with self._lock:
            self._index, self._error = idx, None

    def startup(self) -> None:
        """Bring the index up to date, load it and warm it up (runs in a background thread)."""
        try:
            if Path(self.documents_dir).is_dir():
                try:
                    summary = qa.update_index(self.documents_dir, self.index_dir)
                    log.info("index update: %s", summary)
                except Exception:  # noqa: BLE001 - fall back to whatever index exists
                    log.exception("updating the index from %s failed", self.documents_dir)
            else:
                log.warning("documents folder %s not found; serving the existing index", self.documents_dir)
            self._load()
            try:
                # Loading the models here, one after the other, is faster on two cores than
                # loading them while the index is brought up to date (measured: 8.8 s against 9.3 s
                # to the first answer).
                qa.load_models()
                self.get(0).ask("What happened?", k=2)  # and one question through all of them
            except Exception:  # noqa: BLE001
                log.debug("warm-up ask failed", exc_info=True)
            log.info("index ready %.1f s after start", time.monotonic() - _T0)
        except Exception as exc:  # noqa: BLE001
            log.error("could not load the index from %s: %s", self.index_dir, exc,
                      exc_info=not isinstance(exc, qa.QAError))  # a qa error says it all; others need the trace
            with self._lock:
                self._error = str(exc) if isinstance(exc, qa.QAError) else f"{type(exc).__name__}: {exc}"
        finally:
            self.ready.set()

    def update(self, progress=None) -> qa.types.UpdateSummary:
        if not self._update_lock.acquire(blocking=False):
            raise UpdateRunning("An update is already running; please wait for it to finish.")
        try:
            Path(self.documents_dir).mkdir(parents=True, exist_ok=True)
            summary = qa.update_index(self.documents_dir, self.index_dir, progress=progress)
            self._load()  # chat keeps using the old index until this swap
            return summary
        finally:
            self._update_lock.release()


class IndexUnavailable(RuntimeError):
    """No index is loaded; the message is for the operator's log, never for the client."""


HOLDER: IndexHolder | None = None
ADMIN_TOKEN: str | None = None  # None: uploads and updates are off
MAX_UPLOAD_BYTES = int(DEFAULT_MAX_UPLOAD_MB * 1024 * 1024)


def holder() -> IndexHolder:
    if HOLDER is None:
        raise RuntimeError("The app is not initialised.")
    return HOLDER


# ---------------------------------------------------------------------------------------
# Rendering answers
# ---------------------------------------------------------------------------------------
def _article_details(idx: qa.Index | None, doc_id: str, answer_start: int | None, answer_end: int | None) -> str:
    if idx is None:
        return ""
    try:
        text = idx.document(doc_id).text
    except Exception:  # noqa: BLE001 - unknown/removed document: just no whole-article view
        return ""
    return (
        '<details class="qa-details"><summary>Read the whole article</summary>'
        f'<div class="qa-article">{highlight(text, answer_start, answer_end)}</div></details>'
    )


def _source_head(n: int, title: str | None, date: str | None, doc_id: str) -> str:
    parts = [f"<b>[{n}]</b> <b>{esc(title)}</b>" if title else f"<b>[{n}]</b> <i>untitled</i>"]
    if date:
        parts.append(f" · {esc(date)}")
    parts.append(f' <span class="qa-docid">{esc(doc_id)}</span>')
    return f'<div class="qa-cite-head">{"".join(parts)}</div>'


def render_answer(answer: qa.Answer, idx: qa.Index | None) -> str:
    """Build the reply HTML from an Answer. Every article-derived string goes through esc()."""
    out = ['<div class="qa-reply">']
    if answer.text:
        level = confidence(answer.score)
        refs = "".join(f"<sup>[{i}]</sup>" for i in range(1, len(answer.citations) + 1))
        out.append(
            f'<div class="qa-answer"><span class="qa-answer-text">{esc(answer.text)}</span>{refs}'
            f'<span class="qa-conf qa-conf-{level}" title="calibrated score {answer.score:.2f}">'
            f"{level} confidence</span></div>"
        )
    else:
        out.append(f'<div class="qa-answer"><span class="qa-noanswer">{NO_ANSWER}</span></div>')
    if answer.resolved_question and answer.resolved_question.strip() != answer.question.strip():
        out.append(f'<div class="qa-resolved">Read as: {esc(answer.resolved_question)}</div>')

    if answer.text and answer.citations:
        out.append('<ol class="qa-cites">')
        for n, c in enumerate(answer.citations, 1):
            out.append(
                f'<li class="qa-cite">'
                f"{_source_head(n, c.title, c.date, c.doc_id)}"
                f'<div class="qa-passage">{highlight(c.text, c.answer_start - c.start, c.answer_end - c.start)}</div>'
                f"{_article_details(idx, c.doc_id, c.answer_start, c.answer_end)}</li>"
            )
        out.append("</ol>")
        alts = [a for a in answer.alternatives if a.text and a.text != answer.text][:3]
        if alts:
            shown = ", ".join(f"{esc(a.text)} ({confidence(a.score)})" for a in alts)
            out.append(f'<div class="qa-alts">Other candidates: {shown}</div>')
    elif answer.passages:
        out.append('<div class="qa-meta">Closest passages:</div><ol class="qa-cites">')
        for n, p in enumerate(answer.passages, 1):
            out.append(
                f'<li class="qa-cite">'
                f"{_source_head(n, p.title, p.date, p.doc_id)}"
                f'<div class="qa-passage">{esc(p.text)}</div>'
                f"{_article_details(idx, p.doc_id, None, None)}</li>"
            )
        out.append("</ol>")
    out.append("</div>")
    return "".join(out)


def _message(text: str, cls: str = "qa-reply") -> str:
    return f'<div class="{cls}">{text}</div>'


def _filters(date_from: str | None, date_to: str | None, doc_ids: list[str] | None) -> dict | None:
    filters: dict[str, Any] = {}
    for key, value in (("date_from", date_from), ("date_to", date_to)):
        value = (value or "").strip()
        if not value:
            continue
        filters[key] = value
    if doc_ids:
        filters["doc_ids"] = list(doc_ids)
    qa.Filters.parse(filters)  # a bad date is refused here, with qa's message, before any work
    return filters or None


def _check_question(question: str | None) -> str:
    question = (question or "").strip()
    if not question:
        raise qa.QuestionError("Please type a question about the articles.")
    if len(question) > MAX_QUESTION_CHARS:
        raise qa.QuestionError(
            f"That message is too long ({len(question):,} characters). "
            f"Please ask a shorter question (at most {MAX_QUESTION_CHARS:,} characters)."
        )
    return question


# ---------------------------------------------------------------------------------------
# Event handlers
# ---------------------------------------------------------------------------------------
def respond(message, chat, pairs, k, date_from, date_to, doc_ids):
    """Chat handler (generator): echo the question, then replace the placeholder with the answer."""
    chat = list(chat or [])
    pairs = list(pairs or [])
    raw = message or ""
    shown = raw if len(raw) <= 300 else raw[:300] + f"… ({len(raw):,} characters)"
    chat.append({"role": "user", "content": esc(shown) if shown.strip() else "<i>(empty message)</i>"})
    chat.append({"role": "assistant", "content": _message("Searching the articles…", "qa-pending")})
    yield "", chat, pairs
    try:
        answer, idx = _answer(raw, [tuple(p) for p in pairs], k, date_from, date_to, doc_ids)
        reply = render_answer(answer, idx)
        pairs.append([answer.question, answer.text])
    except qa.QuestionError as exc:
        reply = _message(f'<span class="qa-error">{esc(exc)}</span>')
    except Exception as exc:  # noqa: BLE001 - never a traceback, a path or a class name in the page
        reply = _message(f'<span class="qa-error">{esc(_client_error(exc, raw))}</span>')
    chat[-1] = {"role": "assistant", "content": reply}
    yield "", chat, pairs


class ClientError(Exception):
    """What a client is told when a question can't be answered, and the HTTP status it gets."""

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status


def _answer(question: str, history: list[tuple[str, str]], k, date_from: str, date_to: str,
            doc_ids: list[str] | None) -> tuple[qa.Answer, qa.Index]:
    """Where every route answers (the chat, Gradio's ``/ask``, ``POST /api/ask``): the same
    checks, and ASK_SLOTS bounds the questions answered at once across all of them. Raises
    qa.QuestionError for a question, filter or ``k`` the client must fix."""
    question = _check_question(question)
    filters = _filters(date_from, date_to, doc_ids)
    try:
        k = int(k or DEFAULT_K)
    except (TypeError, ValueError):
        raise qa.QuestionError(f"k must be a whole number of passages, got {k!r}") from None
    idx = holder().get()
    with ASK_SLOTS:
        return idx.ask(question, history=history or None, k=k, filters=filters), idx


def answer_question(
    question: str,
    history: list[list[str]] | None = None,
    k: int = DEFAULT_K,
    date_from: str = "",
    date_to: str = "",
    doc_ids: list[str] | None = None,
) -> dict:
    """``qa.Answer.to_dict()`` for a question, or ClientError with a message fit for the client
    (both API routes: Gradio's ``/gradio_api/call/ask`` and the lean ``POST /api/ask``)."""
    try:
        hist = [(str(h[0]), str(h[1])) for h in (history or []) if len(h) >= 2]
        return _answer(question, hist, k, date_from, date_to, doc_ids)[0].to_dict()
    except qa.QuestionError as exc:
        raise ClientError(str(exc), 400) from None
    except Exception as exc:  # noqa: BLE001
        unavailable = isinstance(exc, (IndexUnavailable, qa.IndexStateError))
        raise ClientError(_client_error(exc, question), 503 if unavailable else 500) from None


def ask(
    question: str,
    history: list[list[str]] | None = None,
    k: int = DEFAULT_K,
    date_from: str = "",
    date_to: str = "",
    doc_ids: list[str] | None = None,
) -> dict:
    """Answer a question over the indexed articles. Returns qa.Answer.to_dict():
    text ("" when the articles don't say), score, citations (doc_id, title, date, passage text,
    offsets, answer offsets in the document), alternatives, passages, resolved_question.
    history: previous [question, answer_text] pairs for follow-up questions."""
    try:
        return answer_question(question, history, k, date_from, date_to, doc_ids)
    except ClientError as exc:
        raise gr.Error(str(exc)) from None


class AskRequest(BaseModel):
    """Body of ``POST /api/ask``: the arguments of ``ask``."""

    question: str
    history: list[list[str]] = Field(default_factory=list)
    k: int = DEFAULT_K
    date_from: str = ""
    date_to: str = ""
    doc_ids: list[str] | None = None


async def api_ask(request: AskRequest) -> JSONResponse:
    """``POST /api/ask``: the same answer as Gradio's ``/ask``, without Gradio's queue and event
    stream. Waiting requests wait here, on API_THREADS, not in the worker-thread pool that Gradio's
    queue and pages share: a crowd of API clients cannot starve the chat or the page."""
    if not holder().ready.is_set():
        return JSONResponse({"error": INDEX_LOADING}, status_code=503, headers={"Retry-After": "5"})
    try:
        answer = await anyio.to_thread.run_sync(
            answer_question, request.question, request.history, request.k, request.date_from, request.date_to,
            request.doc_ids, limiter=API_THREADS)
        return JSONResponse(answer)
    except ClientError as exc:
        return JSONResponse({"error": str(exc)}, status_code=exc.status)


def _client_error(exc: Exception, question) -> str:
    """What a client is told when answering fails: what to do, never a server path or a class
    name. The operator's log gets the details."""
    if isinstance(exc, (IndexUnavailable, qa.IndexStateError)):
        log.error("no index to answer from: %s", exc)
        return INDEX_UNAVAILABLE
    log.exception("answering %r failed", str(question or "")[:200])
    return ANSWER_FAILED


DOC_HEADERS = ["doc_id", "title", "date", "passages", "characters"]
# A browser table or drop-down of half a million rows does not load: a large archive lists its
# newest articles (the index still answers from all of them).
MAX_LISTED = 2000


def documents_view():
    """(table rows, article-picker update, filter update, status line) for the current index."""
    idx = holder().peek()
    infos = []
    total = passages = 0
    if idx is not None:
        try:
            total, passages = len(idx), idx.chunk_count
            infos = list(idx.documents(newest=MAX_LISTED if total > MAX_LISTED else None))
        except Exception:  # noqa: BLE001
            log.exception("listing documents failed")
    rows = [[d.doc_id, d.title or "", d.date or "", d.n_chunks, d.chars] for d in infos]
    choices = [((f"{d.title[:140]} ({d.doc_id})" if d.title else d.doc_id), d.doc_id) for d in infos]
    ids = [d.doc_id for d in infos]
    if idx is None:
        status = "No index loaded yet."
    else:
        status = f"{total:,} articles, {passages:,} passages indexed."
        if len(infos) < total:
            status += f" The {len(infos):,} newest are listed."
    return (
        gr.update(value=rows),
        gr.update(choices=choices),
        gr.update(choices=ids),
        status,
    )


def show_article(doc_id):
    if not doc_id:
        return ""
    idx = holder().peek()
    try:
        doc = idx.document(doc_id) if idx is not None else None
    except KeyError:
        doc = None
    if doc is None:
        return _message("That article is not in the index.", "qa-meta")
    meta = " · ".join(esc(x) for x in (doc.date, doc.dateline, doc.author) if x)
    return (
        f'<div class="qa-reply"><h3>{esc(doc.title or doc.doc_id)}</h3>'
        f'<div class="qa-meta">{meta} <span class="qa-docid">{esc(doc.doc_id)}</span></div>'
        f'<div class="qa-article" style="max-height:40em">{esc(doc.text)}</div></div>'
    )


def _progress_callback(progress: gr.Progress):
    def cb(done: int, total: int, message: str = "") -> None:
        try:
            if total:
                progress((int(done), int(total)), desc=str(message)[:120] or "Indexing", unit="steps")
            else:
                progress(0.0, desc=str(message)[:120] or "Indexing")
        except Exception:  # noqa: BLE001 - progress is cosmetic
            pass

    return cb


def _safe_filename(name: str) -> str | None:
    base = Path(name).name
    stem, suffix = Path(base).stem, Path(base).suffix.lower()
    if suffix not in UPLOAD_SUFFIXES:
        return None
    stem = re.sub(r"[^\w.-]+", "_", stem).strip("._")[:100] or "article"
    return stem + suffix


def authorised(token: str | None) -> bool:
    """Whether ``token`` allows writes: only when the operator set one, and it matches."""
    if not ADMIN_TOKEN:
        return False
    return hmac.compare_digest(str(token or "").encode("utf-8", "replace"), ADMIN_TOKEN.encode("utf-8"))


def _upload_ids(src: Path, target: str) -> set[str]:
    """The document ids an upload would add: its file stem, or the ids of its JSONL records."""
    if not target.endswith(".jsonl"):
        return {Path(target).stem}
    from qa.documents import load_file

    try:
        docs, _ = load_file(src)
    except qa.DocumentError:
        return set()  # the update reports the bad file by name
    return {d.doc_id for d in docs}


def _check_upload(src: Path, target: str, documents_dir: Path, replace: bool) -> str | None:
    """Why an upload is refused, or None to accept it. An upload never silently replaces an
    article: not a file of the same name, nor an indexed article of the same id in another file."""
    size = src.stat().st_size
    if size > MAX_UPLOAD_BYTES:
        return f"refused {target}: {size:,} bytes is over the {MAX_UPLOAD_BYTES:,}-byte limit"
    existing = documents_dir / target
    if existing.is_symlink():
        return f"refused {target}: a link of that name is in the documents folder"
    if existing.exists() and not replace:
        return f"refused {target}: a file of that name exists; tick \"Replace existing articles\" to replace it"
    idx = holder().peek()
    if idx is not None:
        for doc_id in sorted(_upload_ids(src, target)):
            try:
                source = idx.document(doc_id).source_path or ""
            except KeyError:
                continue
            if Path(source.rsplit(":", 1)[0] if ".jsonl:" in source else source).name != target:
                return (f"refused {target}: the article id {doc_id!r} is already used by another file "
                        f"({Path(source).name}); rename the upload")
    return None


def _copy_uploads(files, documents_dir: Path, replace: bool) -> list[str]:
    notes = []
    for f in files or []:
        src = Path(getattr(f, "name", None) or str(f))
        target = _safe_filename(src.name)
        if target is None:
            notes.append(f"ignored {src.name}: only {', '.join(UPLOAD_SUFFIXES)} files are accepted")
            continue
        refusal = _check_upload(src, target, documents_dir, replace)
        if refusal:
            notes.append(refusal)
            continue
        replaced = (documents_dir / target).exists()
        documents_dir.mkdir(parents=True, exist_ok=True)
        # Copied under a hidden name, then renamed: an update never indexes a half-written file.
        partial = documents_dir / f".{target}.partial"
        shutil.copyfile(src, partial)
        os.replace(partial, documents_dir / target)
        notes.append(f"{'replaced' if replaced else 'added'} {target}")
    return notes


def _public_summary(summary, documents_dir: Path) -> str:
    """The update summary with paths relative to the documents folder: no server paths."""
    root = str(documents_dir.resolve())
    text = str(summary)
    return text.replace(root + os.sep, "").replace(root, ".")


def run_update(files, token=None, replace=False, progress=gr.Progress()):
    """Copy uploaded articles into the documents folder, update the index, swap it in.
    Refused unless ``token`` is the operator's admin token: checked here, in the handler, so
    no route (the button, the queue with this fn_index) writes without it."""
    if not authorised(token):
        log.warning("refused an update without a valid admin token")
        return (WRITES_OFF if not ADMIN_TOKEN else WRONG_TOKEN, None, *documents_view())
    h = holder()
    documents_dir = Path(h.documents_dir)
    notes = _copy_uploads(files, documents_dir, bool(replace))
    progress(0.0, desc="Scanning documents")
    try:
        summary = h.update(progress=_progress_callback(progress))
        text = ("Index updated: " if summary.changed else "Index already up to date: ") + _public_summary(summary, documents_dir)
    except UpdateRunning as exc:
        text = str(exc)
    except qa.IndexBusyError:
        text = "Update failed: another process is updating the index; try again when it has finished."
    except Exception as exc:  # noqa: BLE001 - the operator's log gets the details, the page no paths
        log.exception("update failed")
        text = ("Update failed: the index could not be updated (see the server log)."
                + (" It may need a rebuild: python -m qa index --rebuild" if isinstance(exc, qa.IndexDamagedError) else ""))
    if notes:
        text = "\n".join(notes) + "\n" + text
    return (text, None, *documents_view())


# ---------------------------------------------------------------------------------------
# UI
# ---------------------------------------------------------------------------------------
def build_ui() -> gr.Blocks:
    with gr.Blocks(title="Ask the news articles") as demo:
        gr.Markdown(
            "## Ask the news articles\n"
            "Every answer is copied word for word from an article and shown with the passage it came from."
        )
        with gr.Tab("Chat"):
            chatbot = gr.Chatbot(
                label="Chat",
                height=560,
                elem_id="qa-chat",
                latex_delimiters=[],
                sanitize_html=True,
                allow_tags=False,
                feedback_options=None,
                buttons=["copy"],
                placeholder="Ask a question about the articles, or pick an example below.",
            )
            pairs = gr.State([])
            with gr.Row():
                msg = gr.Textbox(
                    placeholder="Ask a question and press Enter",
                    show_label=False,
                    scale=8,
                    elem_id="qa-input",
                    autofocus=True,
                    submit_btn=True,
                )
                clear = gr.Button("New conversation", scale=1, size="sm", elem_id="qa-clear")
            examples = gr.Dataset(
                components=[msg],
                samples=[[q] for q in EXAMPLES],
                label="Examples (click to ask; the last ones are a follow-up pair)",
                elem_id="qa-examples",
            )
            with gr.Accordion("Settings", open=False):
                k = gr.Slider(1, 20, value=DEFAULT_K, step=1, label="Passages to read (k)")
                with gr.Row():
                    date_from = gr.Textbox(label="From date (YYYY-MM-DD)", placeholder="any")
                    date_to = gr.Textbox(label="To date (YYYY-MM-DD)", placeholder="any")
                doc_filter = gr.Dropdown(label="Only these articles", choices=[], multiselect=True)

        with gr.Tab("Documents"):
            status = gr.Markdown("")
            table = gr.Dataframe(
                headers=DOC_HEADERS,
                datatype=["str", "str", "str", "number", "number"],
                interactive=False,
                wrap=True,
                column_widths=["20%", "50%", "12%", "9%", "9%"],
                elem_id="qa-docs",
            )
            with gr.Row():
                upload = gr.File(
                    label="Add articles (.txt, .md, .html, .jsonl)",
                    file_count="multiple",
                    file_types=list(UPLOAD_SUFFIXES),
                    elem_id="qa-upload",
                )
                with gr.Column():
                    admin_token = gr.Textbox(label="Admin token (uploading and updating need it)", type="password",
                                             elem_id="qa-admin-token")
                    replace_box = gr.Checkbox(label="Replace existing articles of the same name", value=False,
                                              elem_id="qa-replace")
                    update_btn = gr.Button(
                        "Add uploads & update index from the documents folder", variant="primary", elem_id="qa-update"
                    )
                    summary = gr.Textbox(label="Last update", lines=4, interactive=False, elem_id="qa-summary")
            picker = gr.Dropdown(label="Read an article", choices=[], elem_id="qa-picker")
            article = gr.HTML(elem_id="qa-article")

        chat_inputs = [msg, chatbot, pairs, k, date_from, date_to, doc_filter]
        chat_outputs = [msg, chatbot, pairs]
        msg.submit(respond, chat_inputs, chat_outputs, api_visibility="private", concurrency_id="qa", concurrency_limit=ASK_CONCURRENCY)
        examples.click(lambda s: s[0], examples, msg, api_visibility="private", queue=False).then(
            respond, chat_inputs, chat_outputs, api_visibility="private", concurrency_id="qa",
            concurrency_limit=ASK_CONCURRENCY,
        )
        clear.click(lambda: ([], []), None, [chatbot, pairs], api_visibility="private", queue=False)
        chatbot.clear(lambda: [], None, pairs, api_visibility="private", queue=False)

        docs_outputs = [table, picker, doc_filter, status]
        demo.load(documents_view, None, docs_outputs, api_visibility="private")
        update_btn.click(
            run_update,
            [upload, admin_token, replace_box],
            [summary, upload, *docs_outputs],
            api_visibility="private",
            concurrency_id="update",
            show_progress_on=[summary],
        )
        picker.change(show_article, picker, article, api_visibility="private")

        gr.api(ask, api_name="ask", concurrency_id="qa", concurrency_limit=ASK_CONCURRENCY)
    return demo


def configure_writes(token: str | None, max_upload_mb: float, host: str) -> None:
    """Set who may write. Without a token nobody may, on any address."""
    global ADMIN_TOKEN, MAX_UPLOAD_BYTES
    ADMIN_TOKEN = token or None
    MAX_UPLOAD_BYTES = int(max_upload_mb * 1024 * 1024)
    if ADMIN_TOKEN is None:
        log.info("uploading and updating are off (no admin token); asking is open")
    elif host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("uploading and updating are on for anyone with the admin token on %s; use HTTPS in front", host)


def main(argv: list[str] | None = None) -> None:
    global HOLDER, ASK_CONCURRENCY, ASK_SLOTS, API_THREADS
    parser = argparse.ArgumentParser(description="Chat with the indexed news articles.")
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    parser.add_argument("--index", default="index", help="index directory (default index/)")
    parser.add_argument("--documents", default="documents", help="articles folder (default documents/)")
    parser.add_argument("--admin-token", default=os.environ.get("QA_ADMIN_TOKEN") or None,
                        help="token that allows uploading and updating (default: $QA_ADMIN_TOKEN; unset: writes are off)")
    parser.add_argument("--ask-concurrency", type=int, default=ASK_CONCURRENCY,
                        help=f"questions answered at once (default {ASK_CONCURRENCY})")
    parser.add_argument("--max-upload-mb", type=float, default=DEFAULT_MAX_UPLOAD_MB,
                        help=f"largest upload accepted, in MB (default {DEFAULT_MAX_UPLOAD_MB:g})")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    configure_writes(args.admin_token, args.max_upload_mb, args.host)
    ASK_CONCURRENCY = max(1, args.ask_concurrency)
    ASK_SLOTS = threading.BoundedSemaphore(ASK_CONCURRENCY)
    API_THREADS = anyio.CapacityLimiter(ASK_CONCURRENCY)

    HOLDER = IndexHolder(args.index, args.documents)
    # Update/load/warm-up runs beside the UI start-up; questions wait for it (HOLDER.ready).
    threading.Thread(target=HOLDER.startup, name="index-startup", daemon=True).start()
    demo = build_ui()
    demo.queue(default_concurrency_limit=1)
    server = uvicorn.Server(uvicorn.Config(build_server(demo), host=args.host, port=args.port,
                                           log_level="warning", timeout_graceful_shutdown=5))
    threading.Thread(target=_report_start, args=(server, args.host, args.port), name="start-report", daemon=True).start()
    try:
        server.run()  # in the main thread, so uvicorn shuts down gracefully on Ctrl-C and SIGTERM
    except KeyboardInterrupt:  # uvicorn re-raises the Ctrl-C it handled
        pass


def build_server(demo: gr.Blocks) -> fastapi.FastAPI:
    """The web server: ``POST /api/ask`` beside the Gradio app (mounted at the root), which
    serves the chat, the Documents tab and Gradio's own ``/gradio_api/...`` routes."""
    server = fastapi.FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    server.post("/api/ask")(api_ask)
    # mount_gradio_app starts the queue from the server's lifespan but, unlike launch(), leaves
    # Gradio's /gradio_api/startup-events armed: its first caller would start a second queue
    # loop. This route, matched before the mounted app, answers as the armed one does once fired.
    server.get("/gradio_api/startup-events")(_startup_events_done)
    return gr.mount_gradio_app(
        server, demo, path="", css=CSS, show_error=False,
        max_file_size=MAX_UPLOAD_BYTES,  # Gradio refuses bigger files on /gradio_api/upload already
    )


async def _startup_events_done() -> bool:
    return False


def _report_start(server: uvicorn.Server, host: str, port: int) -> None:
    """Tell the operator (and the tests, which wait for these lines) when the server listens and
    whether the index loaded."""
    while not server.started:
        if server.should_exit:
            return
        time.sleep(0.05)
    print(f"Serving on http://{host}:{port} ({time.monotonic() - _T0:.1f} s after start)", flush=True)
    HOLDER.ready.wait()
    if HOLDER.error is None:
        print(f"Index ready ({time.monotonic() - _T0:.1f} s after start)", flush=True)
    else:
        print(f"Index NOT loaded: {HOLDER.error}\nThe chat answers that the index is unavailable until "
              f"this is fixed and the app restarted.", flush=True)

if __name__ == "__main__":
    sys.exit(main())

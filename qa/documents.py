"""Load articles from a folder, clean them, and extract their metadata.

One step of the pipeline: files -> ``Document``. Everything downstream (chunk offsets,
citations) indexes ``Document.text``, the cleaned text produced here.

Supported files: ``.txt``, ``.md``, ``.html``/``.htm`` (article text extracted with
trafilatura) and ``.jsonl`` (one article per line: ``id``, ``text``, optional ``title``,
``date``, ``url``). A file that cannot be read is reported in ``LoadReport.skipped`` and
never stops the others.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import unicodedata
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable
from .errors import DocumentError
from .text import MONTH_NAMES, iso_date
from .types import Document

SUPPORTED_SUFFIXES = (".txt", ".md", ".html", ".htm", ".jsonl")
MAX_FILE_BYTES = 200 * 1024 * 1024  # a single article larger than this is surely not an article

# "feb", "february" and "sept" -> month number
_MONTHS = {**{name: i for i, name in enumerate(MONTH_NAMES, start=1)},
           **{name[:3]: i for i, name in enumerate(MONTH_NAMES, start=1)}, "sept": 9}
_MONTH_RE = r"(Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?|Sept?(?:ember)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)"

# A crawler's marker on the first line: " date 2016-02-19 <first words of the page>".
_DATE_MARKER = re.compile(r"\A\s*date\s+(\d{4}-\d{2}-\d{2})\b[ \t]*")
_BODY_DATES = (
    # 26 July 2019, 17:00
    (re.compile(r"\b(\d{1,2})\s+" + _MONTH_RE + r"\.?,?\s+(\d{4})\b", re.I), ("d", "m", "y")),
    # July 26, 2019
    (re.compile(r"\b" + _MONTH_RE + r"\.?\s+(\d{1,2}),?\s+(\d{4})\b", re.I), ("m", "d", "y")),
    (re.compile(r"\b(\d{4})-(\d{2})-(\d{2})\b"), ("y", "m", "d")),
)
# "ASTANA. KAZINFORM - ", "NUR-SULTAN.KAZINFORM -", "NUR-SULTAN. KAZINFORM Chairman ..."
_DATELINE = re.compile(r"^([A-Z][A-Z'\-]+(?: [A-Z][A-Z'\-]+)*)\.\s?([A-Z]{3,})\b(?=\s*[-–—]|\s+[A-Z])", re.M)
_AUTHOR = re.compile(r"^\s*Author:\s*(?:\n\s*)*(\S[^\n]{0,80})$", re.M)

# Web-page furniture: whole lines that are never article text.
_FURNITURE_LINE = re.compile(
    r"""^(?:
        go\ to\ the\ main\ site
      | currency\ rates:?
      | (?:[a-z]{3}/[a-z]{3}\s+[\d.,]+\s*)+            # usd/kzt 450.16 eur/kzt 486.31
      | weather:?
      | [^\s\d]+[+-]\d+(?:[+-]\d+)?\s*°?[CF℃℉]?        # Astana+24+26℃
      | \+?\d[\d\s()\-]{7,}\d                           # phone number
      | [•·▪●]\s.*                                      # menu items, language switchers
      | .{1,40}\s>                                      # breadcrumb "News  >"
      | (?:share|print|tweet|subscribe|advertisement)(?:\s.*)?
    )$""",
    re.I | re.X,
)
# Everything from one of these lines to the end of the page is furniture.
_TAIL_MARKERS = re.compile(
    r"^(?:related\ news|popular|most\ read|read\ also|see\ also|latest\ news|more\ news|top\ news|tags:?|новости\ по\ теме)$",
    re.I | re.X,
)
_TERMINAL = re.compile(r"[.!?…»\"”:;]$")


@dataclass
class LoadReport:
    documents: list[Document] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)


def list_document_files(documents_dir: str | Path) -> list[Path]:
    """The article files under ``documents_dir`` (recursively), in a stable order; hidden files are ignored.

    Paths are absolute and resolved, so the same folder spelled two ways gives the same paths.
    Symbolic links are left out (``scan_documents`` reports them)."""
    return scan_documents(documents_dir)[0]


def scan_documents(documents_dir: str | Path) -> tuple[list[Path], list[tuple[str, str]]]:
    """(article files, skipped (path, reason)) under ``documents_dir``.

    A symbolic link is never followed, whether to a file or a folder, and wherever it points:
    a link inside documents/ could otherwise publish /etc/passwd through the chat."""
    root = Path(documents_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"documents folder not found: {root}")
    root = root.resolve()
    files: list[Path] = []
    skipped: list[tuple[str, str]] = []
    for folder, subdirs, names in os.walk(root, followlinks=False):
        base = Path(folder)
        subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))
        for name in subdirs + names:
            path = base / name
            if name.startswith(".") or not path.is_symlink():
                continue
            if name in names and path.suffix.lower() not in SUPPORTED_SUFFIXES:
                continue
            skipped.append((str(path), f"{name}: symbolic link, not followed (copy the file into the folder instead)"))
        files.extend(base / n for n in names
                     if not n.startswith(".") and Path(n).suffix.lower() in SUPPORTED_SUFFIXES
                     and not (base / n).is_symlink() and (base / n).is_file())
    return sorted(files), sorted(skipped)


def load_documents(documents_dir: str | Path, known: dict[str, Document] | None = None,
                   load_files: Callable | None = None, files: list[Path] | None = None) -> LoadReport:
    """Load every supported file under ``documents_dir`` (or only ``files``, when given: an
    update of listed files); bad files are skipped and reported.

    ``known`` maps content hashes to documents already loaded (the index's): a file or JSONL
    record whose bytes hash to one of them is not parsed and cleaned again.

    A document id found in two files (``004.txt`` and a ``.jsonl`` record with id ``004``) is
    ambiguous: every copy is skipped, each with a reason naming the other file, so that
    neither silently wins by sort order (the index keeps the version it had).

    ``load_files(paths, known)`` reads the files (default: one after the other, here); it returns
    ``(path, documents, problems, error)`` per file, in order (``qa/engines.py``).
    """
    report = LoadReport()
    if files is None:
        files, report.skipped = scan_documents(documents_dir)
    found: dict[str, list[tuple[str, Document]]] = {}
    results = (load_files or load_files_here)(files, known)
    for path, docs, problems, error in results:
        if error is not None:
            report.skipped.append((str(path), error))
            continue
        report.skipped.extend((str(path), problem) for problem in problems)
        for doc in docs:
            found.setdefault(doc.doc_id, []).append((str(path), doc))
    for doc_id, copies in found.items():
        if len(copies) == 1:
            report.documents.append(copies[0][1])
            continue
        sources = [doc.source_path or path for path, doc in copies]
        for path, doc in copies:
            others = ", ".join(src for src in sources if src != (doc.source_path or path))
            report.skipped.append((path, f"duplicate document id {doc_id!r} (also in {others}); rename one of them"))
    return report


def load_files_here(files, known: dict[str, Document] | None) -> list:
    """``load_file_or_report`` of each file, one after the other, in this process."""
    return [load_file_or_report(p, known) for p in files]


def load_file_or_report(path: Path, known: dict[str, Document] | None):
    """``(path, documents, problems, error)``: ``load_file``, its ``DocumentError`` as ``error``."""
    try:
        docs, problems = load_file(path, known)
        return str(path), docs, problems, None
    except DocumentError as exc:
        return str(path), [], [], str(exc)


def load_file(path: str | Path, known: dict[str, Document] | None = None) -> tuple[list[Document], list[str]]:
    """The documents in one file and the problems with parts of it (bad JSONL records).

    Raises ``DocumentError`` naming the file and the problem when nothing in it is usable.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise DocumentError(f"{path.name}: unsupported file type {suffix!r} (expected one of {', '.join(SUPPORTED_SUFFIXES)})")
    raw = _read_bytes(path)
    if suffix == ".jsonl":
        return _load_jsonl(path, raw, known or {})
    sha = hashlib.sha256(raw).hexdigest()
    previous = (known or {}).get(sha)
    if previous is not None and previous.doc_id == path.stem:
        return [replace(previous, source_path=str(path))], []
    text = _decode(path, raw)
    if suffix in (".html", ".htm"):
        doc = _from_html(path, text, sha)
    else:
        doc = _from_text(path.stem, text, sha, markdown=suffix == ".md", source_path=str(path))
    if not doc.text.strip():
        raise DocumentError(f"{path.name}: no article text after cleaning")
    return [doc], []


def _read_bytes(path: Path) -> bytes:
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise DocumentError(f"{path.name}: file too large ({size} bytes)")
        raw = path.read_bytes()
    except OSError as exc:
        raise DocumentError(f"{path.name}: cannot read file ({exc.strerror or exc})") from exc
    if not raw.strip():
        raise DocumentError(f"{path.name}: empty file")
    return raw


def _decode(path: Path, raw: bytes) -> str:
    if b"\x00" in raw[:8192]:
        raise DocumentError(f"{path.name}: binary file (contains NUL bytes), not text")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DocumentError(f"{path.name}: not valid UTF-8 (byte {exc.start}: {raw[exc.start:exc.start + 1]!r})") from exc
    printable = sum(ch.isprintable() or ch in "\n\r\t" for ch in text[:8192])
    if printable < 0.9 * len(text[:8192]):
        raise DocumentError(f"{path.name}: binary file (mostly unprintable characters), not text")
    return text


def _load_jsonl(path: Path, raw: bytes, known: dict[str, Document]) -> tuple[list[Document], list[str]]:
    text = _decode(path, raw)
    docs: list[Document] = []
    errors: list[str] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        sha = hashlib.sha256(line.encode("utf-8")).hexdigest()
        if sha in known:
            docs.append(replace(known[sha], source_path=f"{path}:{lineno}"))
            continue
        try:
            record = json.loads(line)
            if not isinstance(record, dict):
                raise ValueError("not a JSON object")
            doc_id = str(record.get("id") or "").strip()
            body = record.get("text")
            if not doc_id:
                raise ValueError("missing 'id'")
            if not isinstance(body, str) or not body.strip():
                raise ValueError("missing or empty 'text'")
        except ValueError as exc:
            errors.append(f"{path.name} line {lineno}: bad record skipped ({exc})")
            continue
        doc = _from_text(doc_id, body, sha, markdown=False, source_path=f"{path}:{lineno}")
        title = _clean_inline(record.get("title")) or doc.title
        date = _parse_date_field(record.get("date")) or doc.date
        url = _clean_inline(record.get("url"))
        docs.append(replace(doc, title=title, date=date, url=url))
    if not docs:
        raise DocumentError(f"{path.name}: no valid records ({'; '.join(errors[:3]) or 'empty'})")
    return docs, errors


def _from_html(path: Path, html: str, sha: str) -> Document:
    import trafilatura  # imported lazily: only HTML collections pay for it

    extracted = trafilatura.bare_extraction(
        html, with_metadata=True, include_comments=False, include_tables=True, favor_precision=True
    )
    if extracted is None:
        raise DocumentError(f"{path.name}: no article text found in the HTML")
    meta = extracted.as_dict() if hasattr(extracted, "as_dict") else dict(extracted)
    body = meta.get("text") or ""
    doc = _from_text(path.stem, body, sha, markdown=False, source_path=str(path))
    return replace(
        doc,
        title=_clean_inline(meta.get("title")) or doc.title,
        date=_parse_date_field(meta.get("date")) or doc.date,
        author=_clean_inline(meta.get("author")) or doc.author,
        url=_clean_inline(meta.get("url")),
    )


def _from_text(doc_id: str, raw_text: str, sha: str, *, markdown: bool, source_path: str) -> Document:
    text = normalize_whitespace(raw_text)
    date = None
    marker = _DATE_MARKER.match(text)
    if marker:
        date = iso_date(marker.group(1))
        text = text[marker.end():]
    text, author = _strip_furniture(text)
    title = None
    if markdown:
        heading = re.match(r"\A#{1,3}\s+(.+)\n", text)
        if heading:
            title = heading.group(1).strip()
    if title is None:
        title = _title_from_first_line(text)
    if date is None:
        date = _date_in_body(text[:600])
    dateline = None
    m = _DATELINE.search(text[:1500])
    if m:
        dateline = f"{m.group(1)}. {m.group(2)}"
    return Document(
        doc_id=doc_id,
        text=text,
        title=title,
        date=date,
        dateline=dateline,
        author=author,
        source_path=source_path,
        sha256=sha,
    )


def normalize_whitespace(text: str) -> str:
    """NFC, no control characters, spaces for NBSP/tabs, single spaces, at most one blank line."""
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n")
    text = text.replace("\u00a0", " ").replace("\u202f", " ").replace("\u2009", " ").replace("\t", " ")
    text = "".join(ch for ch in text if ch == "\n" or unicodedata.category(ch) not in ("Cc", "Cf") or ch == "\u200d")
    lines = [re.sub(r" {2,}", " ", line).strip() for line in text.split("\n")]
    text = "\n".join(lines)
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip()


def _strip_furniture(text: str) -> tuple[str, str | None]:
    """Drop navigation, rates, menus and trailing link lists; return (body, author)."""
    lines = text.split("\n")
    kept: list[str] = []
    author = None
    i = 0
    while i < len(lines):
        line = lines[i]
        if _TAIL_MARKERS.match(line):
            break
        if re.fullmatch(r"Author:\s*(.*)", line):
            name = re.fullmatch(r"Author:\s*(.*)", line).group(1).strip()
            j = i + 1
            while not name and j < len(lines):
                name = lines[j].strip()
                j += 1
            author = name or None
            break  # on news pages the author line closes the article: what follows is tags and links
        if _FURNITURE_LINE.match(line):
            i += 1
            if line.endswith(">"):
                # A breadcrumb trail ("Main Page >", "News >") ends with the section's name on its own line.
                while i < len(lines) and lines[i].endswith(">") and len(lines[i]) <= 42:
                    i += 1
                if i < len(lines) and _is_short_label(lines[i]):
                    i += 1
            continue
        kept.append(line)
        i += 1
    body = re.sub(r"\n{3,}", "\n\n", "\n".join(kept)).strip()
    return body, author


def _is_short_label(line: str) -> bool:
    return 0 < len(line.split()) <= 3 and not _TERMINAL.search(line)


def _title_from_first_line(text: str) -> str | None:
    """A headline: a first paragraph of one short line with no sentence punctuation, followed by more text."""
    first, sep, rest = text.partition("\n")
    first = first.strip()
    if not sep or not rest.strip():
        return None
    words = first.split()
    if not (3 <= len(words) <= 25) or len(first) > 200 or _TERMINAL.search(first):
        return None
    if _DATELINE.match(first):
        return None
    return first


def _date_in_body(text: str) -> str | None:
    for pattern, order in _BODY_DATES:
        m = pattern.search(text)
        if not m:
            continue
        parts = dict(zip(order, m.groups()))
        month = parts["m"]
        month_num = int(month) if month.isdigit() else _MONTHS.get(month.lower().rstrip("."))
        if month_num is None:
            continue
        iso = iso_date(f"{int(parts['y']):04d}-{month_num:02d}-{int(parts['d']):02d}")
        if iso:
            return iso
    return None


def _parse_date_field(value) -> str | None:
    if not value:
        return None
    value = str(value).strip()
    return iso_date(value[:10]) or _date_in_body(value)


def _clean_inline(value) -> str | None:
    if value is None:
        return None
    value = re.sub(r"\s+", " ", str(value)).strip()
    return value or None

"""Loading, cleaning and metadata, on the real seed articles and on bad files."""
from __future__ import annotations

import json
import re

from conftest import SEED_DOCUMENTS

from qa.documents import load_documents, load_file


def _doc(stem):
    docs, problems = load_file(SEED_DOCUMENTS / f"{stem}.txt")
    assert problems == []
    return docs[0]


def _sentences(raw: str) -> list[str]:
    """Sentences of a raw file, whitespace-normalised, for checking that none is lost."""
    flat = re.sub(r"\s+", " ", raw.replace("\u00a0", " "))
    return [s.strip() for s in re.split(r"(?<=[.!?»])\s+", flat) if len(s.split()) >= 6]


def test_web_page_furniture_is_dropped_and_the_body_kept():
    doc = _doc("002_47630b8a4ea02f01")
    for furniture in ["Go to the main site", "Currency rates", "usd/kzt", "Weather", "Astana+24", "759 90 19",
                      "中文", "Main Page", "News >", "Related news", "Popular", "Wildfires", "Zhukayev",
                      "Scarlett Johansson", "Almost 250,000 kids", "Новости"]:
        assert furniture not in doc.text, furniture
    assert doc.text.startswith("Tokayev: Nur Otan Party should become open and accessible to citizens")
    body = (SEED_DOCUMENTS / "002_47630b8a4ea02f01.txt").read_text(encoding="utf-8")
    body = body[body.index("NUR-SULTAN.KAZINFORM"):body.index("Author:")]
    flat_doc = re.sub(r"\s+", " ", doc.text)
    for sentence in _sentences(body):
        assert sentence in flat_doc, sentence


def test_every_sentence_of_the_clean_articles_stays():
    for path in sorted(SEED_DOCUMENTS.glob("*.txt")):
        if path.stem.startswith("002"):
            continue
        doc = _doc(path.stem)
        raw = re.sub(r"^\s*date \d{4}-\d{2}-\d{2}", "", path.read_text(encoding="utf-8"))
        flat_doc = re.sub(r"\s+", " ", doc.text)
        for sentence in _sentences(raw):
            assert sentence in flat_doc, (path.name, sentence)


def test_metadata_is_extracted_and_unknown_is_none():
    d0 = _doc("000_c8b47d81c06dd1e9")
    assert d0.date == "2016-02-19" and d0.dateline == "ASTANA. KAZINFORM" and d0.title is None and d0.author is None
    assert not d0.text.startswith("date")
    d2 = _doc("002_47630b8a4ea02f01")
    assert d2.date == "2019-07-26"
    assert d2.title == "Tokayev: Nur Otan Party should become open and accessible to citizens"
    assert d2.dateline == "NUR-SULTAN. KAZINFORM"
    assert d2.author == "Almas Zheksenbekov"
    d4 = _doc("004_c8ebc32f0d2447af")
    assert d4.title == "Nursultan Nazarbayev meets with representatives of Nur Otan Party regional branches"
    assert d4.date is None and d4.author is None
    assert _doc("003_8db47a1d31210196").title is None  # its first line is a sentence, not a headline


def test_date_in_body_without_marker(tmp_path):
    (tmp_path / "a.txt").write_text("Some headline about parties here\n\n26 July 2019, 17:00\n\nASTANA. KAZINFORM - Text.", encoding="utf-8")
    doc = load_file(tmp_path / "a.txt")[0][0]
    assert doc.date == "2019-07-26" and doc.title == "Some headline about parties here"
    assert doc.dateline == "ASTANA. KAZINFORM"


def test_whitespace_and_nbsp_are_normalised(tmp_path):
    (tmp_path / "w.txt").write_text("A\u00a0title  with\tspaces here\r\n\r\n\r\n\r\nBody\u00a0text   goes here.", encoding="utf-8")
    doc = load_file(tmp_path / "w.txt")[0][0]
    assert doc.text == "A title with spaces here\n\nBody text goes here."


def test_bad_files_are_skipped_with_a_reason_naming_them(tmp_path):
    (tmp_path / "good.txt").write_text("A good article with enough words in it.", encoding="utf-8")
    (tmp_path / "empty.txt").write_text("   \n", encoding="utf-8")
    (tmp_path / "latin1.txt").write_bytes("Caf\xe9 au lait".encode("latin-1"))
    (tmp_path / "binary.txt").write_bytes(bytes(range(256)) * 4)
    (tmp_path / "image.md").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    report = load_documents(tmp_path)
    assert [d.doc_id for d in report.documents] == ["good"]
    reasons = {path.rsplit("/", 1)[-1]: reason for path, reason in report.skipped}
    assert set(reasons) == {"empty.txt", "latin1.txt", "binary.txt", "image.md"}
    assert "empty" in reasons["empty.txt"] and "UTF-8" in reasons["latin1.txt"]
    assert "binary" in reasons["binary.txt"] and "binary" in reasons["image.md"]
    assert all(name in reason for name, reason in reasons.items())


def test_jsonl_collection_with_a_bad_record(tmp_path):
    lines = [
        json.dumps({"id": "a1", "text": "First article text here.", "title": "First", "date": "2020-01-02", "url": "http://x/a1"}),
        "{not json",
        json.dumps({"id": "a2", "text": "Second article text here."}),
        json.dumps({"text": "no id"}),
    ]
    (tmp_path / "bulk.jsonl").write_text("\n".join(lines), encoding="utf-8")
    report = load_documents(tmp_path)
    assert [(d.doc_id, d.title, d.date, d.url) for d in report.documents] == [
        ("a1", "First", "2020-01-02", "http://x/a1"), ("a2", None, None, None)]
    assert len(report.skipped) == 2 and all("bulk.jsonl line" in r for _, r in report.skipped)


def test_html_article_text_is_extracted(tmp_path):
    html = """<html><head><title>Parties meet voters | Kazinform</title>
    <meta name="author" content="Aida Bekova"><meta property="article:published_time" content="2023-03-10"></head>
    <body><nav><a href="/">Main Page</a> <a href="/news">News</a></nav>
    <article><h1>Parties meet voters</h1>
    <p>ASTANA. KAZINFORM - Candidates from the Auyl party met with the labor collective of May JSC in the East Kazakhstan region.</p>
    <p>May is one of the country's first and largest sunflower oil production plants in Central Asia, the party said.</p>
    </article><footer>Related news: something else entirely</footer></body></html>"""
    (tmp_path / "page.html").write_text(html, encoding="utf-8")
    doc = load_file(tmp_path / "page.html")[0][0]
    assert doc.doc_id == "page"
    assert "Candidates from the Auyl party met with the labor collective of May JSC" in doc.text
    assert "sunflower oil production plants" in doc.text
    assert "Main Page" not in doc.text
    assert doc.date == "2023-03-10"
    assert doc.title and "Parties meet voters" in doc.title


def test_markdown_heading_is_the_title(tmp_path):
    (tmp_path / "note.md").write_text("# Election day in Astana\n\nVoters came early to the polls.", encoding="utf-8")
    doc = load_file(tmp_path / "note.md")[0][0]
    assert doc.title == "Election day in Astana"

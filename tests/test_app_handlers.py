"""The app's handlers called in-process, as Gradio calls them (whatever route the request took),
over a real index: who may write, and what a client is told when the index is damaged."""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT, SEED_DOCUMENTS

ENBEK_DOC = "004_c8ebc32f0d2447af"


@pytest.fixture(scope="module")
def app():
    spec = importlib.util.spec_from_file_location("qa_app_under_test", ROOT / "app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def served(app, tmp_path, seed_index_dir):
    """The app's holder over a private copy of the seed documents and index."""
    docs, index_dir = tmp_path / "documents", tmp_path / "index"
    shutil.copytree(SEED_DOCUMENTS, docs)
    shutil.copytree(seed_index_dir, index_dir)
    app.HOLDER = app.IndexHolder(str(index_dir), str(docs))
    yield app, docs, index_dir
    app.HOLDER = None
    app.configure_writes(None, app.DEFAULT_MAX_UPLOAD_MB, "127.0.0.1")


def _forged(tmp_path: Path, name: str = f"{ENBEK_DOC}.txt") -> Path:
    path = tmp_path / "upload" / name
    path.parent.mkdir(exist_ok=True)
    path.write_text("ASTANA. KAZINFORM - The Enbek Program will create exactly 3 jobs.")
    return path


class _NoProgress:
    def __call__(self, *args, **kwargs):
        pass


@pytest.mark.parametrize("host", ["127.0.0.1", "0.0.0.0"])
def test_writes_are_off_without_an_admin_token(served, tmp_path, host):
    app, docs, _ = served
    app.configure_writes(None, 5, host)
    before = (docs / f"{ENBEK_DOC}.txt").read_bytes()
    new = _forged(tmp_path, "998_new.txt")
    for token in (None, "", "guess"):
        text, *_ = app.run_update([str(new)], token, True, progress=_NoProgress())
        assert text == app.WRITES_OFF
    assert not (docs / "998_new.txt").exists()
    assert (docs / f"{ENBEK_DOC}.txt").read_bytes() == before


def test_admin_token_allows_adding_but_not_silent_replacing(served, tmp_path):
    app, docs, _ = served
    app.configure_writes("s3cret", 5, "0.0.0.0")
    app.HOLDER._load()
    text, *_ = app.run_update([str(_forged(tmp_path))], "wrong", True, progress=_NoProgress())
    assert text == app.WRONG_TOKEN
    text, *_ = app.run_update([str(_forged(tmp_path))], "s3cret", False, progress=_NoProgress())
    assert f"refused {ENBEK_DOC}.txt" in text and "exists" in text
    markdown_twin = _forged(tmp_path, f"{ENBEK_DOC}.md")  # same id, another file name
    text, *_ = app.run_update([str(markdown_twin)], "s3cret", True, progress=_NoProgress())
    assert "already used by another file" in text and not (docs / f"{ENBEK_DOC}.md").exists()

    new = tmp_path / "upload" / "998_ice.txt"
    new.write_text("ASTANA. KAZINFORM - The Lake Balkhash Ice Festival marathon had 212 skaters.")
    text, *_ = app.run_update([str(new)], "s3cret", False, progress=_NoProgress())
    assert "added 998_ice.txt" in text and "added 1" in text
    assert str(docs.resolve()) not in text  # no server paths in what the page shows

    app.configure_writes("s3cret", 0.00001, "0.0.0.0")  # about 10 bytes
    text, *_ = app.run_update([str(_forged(tmp_path, "997_big.txt"))], "s3cret", False, progress=_NoProgress())
    assert "over the" in text and not (docs / "997_big.txt").exists()


def test_damaged_index_gives_clients_a_friendly_message(served, caplog):
    app, _, index_dir = served
    vectors = next(index_dir.glob("segments/*/vectors.npy"))
    vectors.write_bytes(vectors.read_bytes()[:100])
    app.HOLDER.startup()
    assert app.HOLDER.error is not None and "rebuild" in app.HOLDER.error  # the operator is told
    *_, (msg, chat, pairs) = list(app.respond("How many jobs?", [], [], 5, "", "", []))
    reply = chat[-1]["content"]
    assert "not available" in reply
    for leak in (str(index_dir), "IndexDamagedError", "RuntimeError", "faiss"):
        assert leak not in reply
    with pytest.raises(app.gr.Error) as info:
        app.ask("How many jobs?")
    assert str(index_dir) not in str(info.value) and "Error:" not in str(info.value)


@pytest.mark.slow
def test_app_does_not_say_index_ready_when_the_index_is_damaged(tmp_path, seed_index_dir):
    index_dir = tmp_path / "index"
    shutil.copytree(seed_index_dir, index_dir)
    (index_dir / "manifest.json").write_text("[1, 2, 3]")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log = tmp_path / "app.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "--port", str(port), "--index", str(index_dir),
                                 "--documents", str(tmp_path / "no_documents")], cwd=ROOT, stdout=out,
                                stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        try:
            deadline = time.monotonic() + 240
            while "Index" not in log.read_text() and time.monotonic() < deadline and proc.poll() is None:
                time.sleep(0.5)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    text = log.read_text()
    assert "Index NOT loaded" in text and "rebuild" in text, text[-3000:]
    assert "Index ready" not in text


def test_api_ask_bounds_k_and_answers_wrapped_questions(served):
    app, _, _ = served
    app.HOLDER._load()
    app.HOLDER.ready.set()
    with pytest.raises(app.gr.Error, match="at most 50"):
        app.ask("How many jobs will the Enbek Program create?", k=10_000)
    answer = app.ask('"How many jobs will the Enbek Program create?"')
    assert "750 thousand" in answer["text"]
    assert answer["question"] == '"How many jobs will the Enbek Program create?"'


def test_api_route_says_loading_until_the_index_is_ready(served):
    import anyio

    app, _, _ = served
    response = anyio.run(app.api_ask, app.AskRequest(question="How many jobs?"))
    assert response.status_code == 503 and response.headers["retry-after"] == "5"
    assert json.loads(response.body) == {"error": app.INDEX_LOADING}


def test_an_internal_value_error_is_a_server_error_not_the_clients(served, monkeypatch, caplog):
    """Only the checks of the question, filters and k are the client's to fix (400); a ValueError
    from inside answering is the server's (500), logged, and tells the client nothing internal."""
    app, _, _ = served
    app.HOLDER._load()
    app.HOLDER.ready.set()

    def broken(*args, **kwargs):
        raise ValueError("window 7 of /srv/secret/index has no tokens")

    monkeypatch.setattr(app.HOLDER.get(), "ask", broken)
    with pytest.raises(app.ClientError) as info:
        app.answer_question("How many jobs will the Enbek Program create?")
    assert info.value.status == 500 and str(info.value) == app.ANSWER_FAILED
    assert "/srv/secret" in caplog.text  # the operator's log has it
    with pytest.raises(app.ClientError) as info:
        app.answer_question("How many jobs?", k="many")
    assert info.value.status == 400 and "whole number" in str(info.value)


def test_a_large_archive_lists_its_newest_articles_only(served, monkeypatch):
    app, _, _ = served
    app.HOLDER._load()
    app.HOLDER.ready.set()
    table, picker, doc_filter, status = app.documents_view()
    assert len(table["value"]) == 5 and status == "5 articles, 21 passages indexed."
    monkeypatch.setattr(app, "MAX_LISTED", 2)
    table, picker, doc_filter, status = app.documents_view()
    newest = [d.doc_id for d in app.HOLDER.peek().documents(newest=2)]
    assert [row[0] for row in table["value"]] == newest and doc_filter["choices"] == newest
    assert status == "5 articles, 21 passages indexed. The 2 newest are listed."

"""End-to-end tests of the web app: the real ``app.py`` over a real index, driven through
gradio_client and a real browser (Playwright + the system Chromium at /usr/bin/chromium).

One app process serves the whole module. Timings go to tests/artifacts/timings.json and
screenshots to tests/artifacts/*.png (the folder is gitignored) for BENCHMARKS.md.
No timing is asserted.
"""
from __future__ import annotations

import json
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[1]
APP = Path(os.environ.get("QA_TEST_APP", ROOT / "app.py")).resolve()  # override only to debug the UI
DOCUMENTS = ROOT / "documents"
UNSAFE = Path(__file__).resolve().parent / "data" / "fixtures" / "unsafe"
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
pytestmark = pytest.mark.slow  # each module run starts the app: a server, the models, an index

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
ENBEK_Q = "How many jobs will the Enbek Program create?"
ENBEK_DOC = "004_c8ebc32f0d2447af"
UNSAFE_DOC = "999_injected_html"
ANSWER_TIMEOUT_MS = 90_000
ADMIN_TOKEN = "test-admin-token-3f9a"
MAX_UPLOAD_MB = 0.5

TIMINGS: dict = {}


def _record(**values) -> None:
    TIMINGS.update(values)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    data = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, {platform.system()}",
        "python": platform.python_version(),
        **TIMINGS,
    }
    (ARTIFACTS / "timings.json").write_text(json.dumps(data, indent=2) + "\n")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """Seed documents (+ the injected-HTML article) -> index built up front -> app serving it."""
    tmp = tmp_path_factory.mktemp("app")
    docs, index = tmp / "documents", tmp / "index"
    docs.mkdir()
    for src in [*sorted(DOCUMENTS.iterdir()), *sorted(UNSAFE.iterdir())]:
        if src.is_file():
            shutil.copy(src, docs / src.name)

    # Build the index first so the app start below is the "index is current" case.
    t = time.monotonic()
    subprocess.run(
        [sys.executable, "-c", "import sys, qa; print(qa.update_index(sys.argv[1], sys.argv[2]))", str(docs), str(index)],
        cwd=APP.parent, check=True, timeout=600,
    )
    _record(index_build_s=round(time.monotonic() - t, 2))

    port = _free_port()
    log_path = tmp / "app.log"
    log = open(log_path, "w")
    t0 = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, str(APP), "--port", str(port), "--index", str(index), "--documents", str(docs),
         "--max-upload-mb", str(MAX_UPLOAD_MB)],
        cwd=APP.parent, stdout=log, stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "GRADIO_ANALYTICS_ENABLED": "False", "QA_ADMIN_TOKEN": ADMIN_TOKEN},
    )
    try:
        while not _port_open(port):
            if proc.poll() is not None:
                pytest.fail(f"app.py exited with {proc.returncode}:\n{log_path.read_text()[-4000:]}")
            if time.monotonic() - t0 > 180:
                pytest.fail(f"app.py not serving after 180 s:\n{log_path.read_text()[-4000:]}")
            time.sleep(0.1)
        port_s = time.monotonic() - t0
        url = f"http://127.0.0.1:{port}"
        from gradio_client import Client

        client = Client(url, verbose=False)
        first = client.predict(ENBEK_Q, api_name="/ask")
        ready_s = time.monotonic() - t0
        _record(
            startup_to_port_open_s=round(port_s, 2),
            startup_to_first_api_answer_s=round(ready_s, 2),
            app_log_ready_line=next(
                (line.strip() for line in log_path.read_text().splitlines() if line.startswith("Index ready")), None
            ),
        )
        yield {"url": url, "client": client, "first": first, "docs": docs, "log": log_path}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


# ---------------------------------------------------------------------------------------
# API
# ---------------------------------------------------------------------------------------
def test_api_ask_returns_answer_with_citations(server):
    client = server["client"]
    t = time.monotonic()
    result = client.predict(ENBEK_Q, api_name="/ask")
    _record(api_ask_warm_s=round(time.monotonic() - t, 3))
    assert isinstance(result, dict), result
    assert {"question", "text", "score", "citations", "alternatives", "passages", "resolved_question"} <= set(result)
    assert "750 thousand" in result["text"], result["text"]
    assert result["citations"], result
    cite = result["citations"][0]
    assert cite["doc_id"] == ENBEK_DOC
    assert "750 thousand jobs" in cite["text"]
    assert cite["text"][cite["answer_start"] - cite["start"]:cite["answer_end"] - cite["start"]] == result["text"]


def test_api_rejects_empty_question_politely(server):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="type a question"):
        server["client"].predict("   ", api_name="/ask")


def test_lean_ask_route_answers_as_the_gradio_route_does(server):
    """POST /api/ask (no queue, no event stream) gives the same answer dict as Gradio's /ask."""
    response = httpx.post(f"{server['url']}/api/ask", json={"question": ENBEK_Q, "k": 5}, timeout=60)
    assert response.status_code == 200, response.text
    assert response.json() == server["client"].predict(ENBEK_Q, api_name="/ask")


@pytest.mark.parametrize("body, status, message", [
    ({"question": "   "}, 400, "type a question"),
    ({"question": ENBEK_Q, "k": 10_000}, 400, "at most 50"),
    ({"question": ENBEK_Q, "date_from": "yesterday"}, 400, "date"),
    ({"k": 3}, 422, "question"),
])
def test_lean_ask_route_refuses_bad_requests_by_name(server, body, status, message):
    response = httpx.post(f"{server['url']}/api/ask", json=body, timeout=60)
    assert response.status_code == status, response.text
    assert message in response.text
    assert "Traceback" not in response.text and str(ROOT) not in response.text


# ---------------------------------------------------------------------------------------
# Browser
# ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing (apt-get install -y chromium); browser tests not run")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser, server):
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    pg = context.new_page()
    pg.dialogs = []  # every alert/confirm/prompt that fires (none may)

    def on_dialog(dialog):
        pg.dialogs.append(dialog.message)
        dialog.dismiss()

    pg.on("dialog", on_dialog)
    pg.goto(server["url"])
    pg.wait_for_selector("#qa-input textarea")
    yield pg
    context.close()


def _replies(pg) -> int:
    return pg.locator("#qa-chat .qa-reply").count()


def _ask(pg, question: str) -> tuple[str, float]:
    """Type a question, press Enter, wait for the reply; returns (reply text, seconds)."""
    n = _replies(pg)
    box = pg.locator("#qa-input textarea")
    box.fill(question)
    t = time.monotonic()
    box.press("Enter")
    pg.wait_for_function(
        f"document.querySelectorAll('#qa-chat .qa-reply').length > {n}", timeout=ANSWER_TIMEOUT_MS, polling=50
    )
    elapsed = time.monotonic() - t
    return pg.locator("#qa-chat .qa-reply").last.inner_text(), elapsed


def _last_answer(pg) -> str:
    """The extracted answer of the latest reply ("" when it says the articles don't say)."""
    answer = pg.locator("#qa-chat .qa-reply").last.locator(".qa-answer-text")
    return answer.inner_text() if answer.count() else ""


def _assert_no_traceback(pg) -> None:
    body = pg.locator("body").inner_text()
    assert "Traceback" not in body
    assert 'File "' not in body


@pytest.mark.browser
def test_chat_answers_with_citation_and_follow_up(page, server):
    examples = page.locator("#qa-examples").inner_text()
    assert ENBEK_Q in examples  # examples are visible before the first question

    reply, seconds = _ask(page, ENBEK_Q)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "chat_answer.png"), full_page=True)
    _record(browser_enter_to_answer_s=round(seconds, 3))
    assert "750 thousand" in _last_answer(page), reply  # the extracted answer, shown prominently
    assert ENBEK_DOC in reply  # the citation names its article
    # The highlight in the passage is exactly the answer shown above it.
    assert page.locator("#qa-chat .qa-reply").last.locator("mark").first.inner_text() == _last_answer(page)

    follow_reply, _ = _ask(page, "How many people will it cover?")  # a follow-up on the Enbek answer
    assert ENBEK_DOC in follow_reply, follow_reply
    assert "1.5 million" in _last_answer(page), follow_reply
    _assert_no_traceback(page)
    assert page.dialogs == []


@pytest.mark.browser
def test_example_click_and_follow_up_use_the_conversation(page, server):
    """Click an example (asked at once), then a follow-up that only makes sense with history."""
    n = _replies(page)
    t = time.monotonic()
    page.locator("#qa-examples").get_by_text("How many jobs will the Enbek", exact=False).first.click()
    page.wait_for_function(
        f"document.querySelectorAll('#qa-chat .qa-reply').length > {n}", timeout=ANSWER_TIMEOUT_MS, polling=50
    )
    first_seconds = time.monotonic() - t
    first = page.locator("#qa-chat .qa-reply").last.inner_text()
    first_answer = _last_answer(page)
    assert ENBEK_DOC in first and "750 thousand" in first_answer, first
    reply, seconds = _ask(page, "How many people will it cover?")
    page.screenshot(path=str(ARTIFACTS / "chat_follow_up.png"), full_page=True)
    _record(
        browser_example_click_to_answer_s=round(first_seconds, 3),
        browser_follow_up_enter_to_answer_s=round(seconds, 3),
        browser_follow_up_pair=[first_answer, _last_answer(page)],
    )
    assert ENBEK_DOC in reply and "1.5 million" in _last_answer(page), reply  # "it" is the Enbek Program
    _assert_no_traceback(page)


def _assert_inert(pg) -> None:
    assert pg.dialogs == [], f"a dialog fired: {pg.dialogs}"
    assert pg.locator('img[src="x"]').count() == 0
    assert pg.locator('a[href^="javascript"]').count() == 0
    scripts = pg.evaluate("[...document.querySelectorAll('script')].map(s => s.textContent)")
    assert not any("alert(" in s for s in scripts), "a <script> from the article reached the DOM"
    handlers = pg.evaluate(
        "[...document.querySelectorAll('*')].filter(e => [...e.attributes].some(a => a.name.startsWith('on'))).length"
    )
    assert handlers == 0, "an element with an inline event handler reached the DOM"


@pytest.mark.browser
def test_injected_html_article_stays_inert(page, server):
    reply, _ = _ask(page, "What is the mascot of the Zebra Fair called?")
    last = page.locator("#qa-chat .qa-reply").last
    assert UNSAFE_DOC in reply, reply  # the injected article was cited / shown as a closest passage
    # Open the whole-article view of the injected article and check what it shows.
    item = last.locator(".qa-cite").filter(has_text=UNSAFE_DOC).first
    item.locator("summary").click()
    whole = item.locator(".qa-article")
    whole.wait_for(state="visible")
    text = whole.inner_text()
    assert "<script>alert(1)</script>" in text  # shown literally, as text
    assert "<img src=x onerror=alert(1)>" in text
    assert "[click](javascript:alert(1))" in text
    page.wait_for_timeout(500)  # give any injected handler a chance to fire
    _assert_inert(page)
    page.screenshot(path=str(ARTIFACTS / "unsafe_chat.png"), full_page=True)

    # The Documents tab: the table and the article reader show the same text inertly.
    page.get_by_role("tab", name="Documents").click()
    docs_table = page.locator("#qa-docs")
    docs_table.get_by_text(UNSAFE_DOC).first.wait_for(timeout=30_000)
    assert "alert('title')" not in page.evaluate("document.title")
    picker = page.locator("#qa-picker input")
    picker.click()
    picker.fill(UNSAFE_DOC)
    page.get_by_role("option", name=re.compile(UNSAFE_DOC)).first.click()
    reader = page.locator("#qa-article .qa-article")
    reader.wait_for(state="visible", timeout=30_000)
    assert "<script>alert(1)</script>" in reader.inner_text()
    page.wait_for_timeout(500)
    _assert_inert(page)
    page.screenshot(path=str(ARTIFACTS / "unsafe_documents.png"), full_page=True)


@pytest.mark.browser
def test_empty_and_huge_messages_get_friendly_replies(page, server):
    reply, _ = _ask(page, "")
    assert "type a question" in reply.lower()
    reply, _ = _ask(page, "Enbek " * 8000 + "jobs?" + "x" * 1995)  # 50,000 characters
    assert "too long" in reply.lower()
    reply, _ = _ask(page, ENBEK_Q)  # and the chat still works afterwards
    assert ENBEK_DOC in reply, reply
    _assert_no_traceback(page)
    page.screenshot(path=str(ARTIFACTS / "friendly_errors.png"), full_page=True)


NEW_ARTICLE = """Ice festival on Lake Balkhash draws record crowd

BALKHASH. KAZINFORM The third Lake Balkhash Ice Festival closed on Sunday.

The organisers said 4,200 skaters took part in the festival's marathon race across the frozen lake this year.

The next Lake Balkhash Ice Festival is planned for February.
"""


@pytest.mark.browser
def test_update_from_documents_view_is_used_without_restart(page, server, tmp_path):
    """Upload an article in the Documents tab, update, then the chat cites it (no restart)."""
    new = tmp_path / "998_ice_festival.txt"
    new.write_text(NEW_ARTICLE)
    page.get_by_role("tab", name="Documents").click()
    page.locator("#qa-upload input[type=file]").set_input_files(str(new))
    page.wait_for_timeout(1000)  # let the upload finish
    page.locator("#qa-admin-token input").fill(ADMIN_TOKEN)
    t = time.monotonic()
    page.locator("#qa-update").click()
    # The chat/API keeps answering while the update runs.
    during = server["client"].predict(ENBEK_Q, api_name="/ask")
    assert any(p["doc_id"] == ENBEK_DOC for p in during["passages"]), during
    page.wait_for_function(
        "(document.querySelector('#qa-summary textarea')?.value || '').includes('updated:')"
        " || (document.querySelector('#qa-summary textarea')?.value || '').includes('failed')",
        timeout=120_000, polling=100,
    )
    summary = page.locator("#qa-summary textarea").input_value()
    _record(ui_update_one_article_s=round(time.monotonic() - t, 2))
    assert "added 1" in summary, summary
    assert (server["docs"] / new.name).exists()
    page.locator("#qa-docs").get_by_text("998_ice_festival").first.wait_for(timeout=30_000)
    page.screenshot(path=str(ARTIFACTS / "documents_after_update.png"), full_page=True)

    page.get_by_role("tab", name="Chat").click()
    reply, _ = _ask(page, "How many skaters took part in the Lake Balkhash Ice Festival marathon?")
    assert "998_ice_festival" in reply, reply
    api = server["client"].predict("How many skaters took part in the Lake Balkhash Ice Festival marathon?", api_name="/ask")
    assert any(p["doc_id"] == "998_ice_festival" for p in api["passages"] + api["citations"])


# ---------------------------------------------------------------------------------------
# Writes need authority, on every route (issue 12)
# ---------------------------------------------------------------------------------------
def _upload(url: str, path: Path) -> dict:
    """POST a file to Gradio's upload route, as a browser (or an attacker) does."""

    with open(path, "rb") as fh:
        response = httpx.post(f"{url}/gradio_api/upload", files={"files": (path.name, fh)}, timeout=60)
    response.raise_for_status()
    return {"path": response.json()[0], "orig_name": path.name, "meta": {"_type": "gradio.FileData"}}


def _update_fn_index(url: str) -> int:
    """The fn_index of the Documents tab's update handler (not in the API list)."""

    config = httpx.get(f"{url}/config", timeout=30).json()
    upload_id = next(c["id"] for c in config["components"] if c.get("props", {}).get("elem_id") == "qa-upload")
    return next(i for i, d in enumerate(config["dependencies"]) if upload_id in d["inputs"] and d.get("id", i) is not None
                and len(d["inputs"]) == 3)


def _call_queue(url: str, fn_index: int, data: list) -> list:
    """POST /gradio_api/queue/join and read the result from the event stream."""

    session = f"attack{time.monotonic_ns()}"
    joined = httpx.post(f"{url}/gradio_api/queue/join",
                        json={"data": data, "fn_index": fn_index, "session_hash": session, "event_data": None},
                        timeout=30)
    joined.raise_for_status()
    with httpx.stream("GET", f"{url}/gradio_api/queue/data", params={"session_hash": session}, timeout=180) as stream:
        for line in stream.iter_lines():
            if line.startswith("data:"):
                message = json.loads(line[5:])
                if message.get("msg") == "process_completed":
                    return message["output"]["data"]
    raise AssertionError("no result from the queue")


def test_update_handler_through_the_queue_needs_the_admin_token(server, tmp_path):
    """The attack of issue 12: upload a file, call the hidden update handler by fn_index."""
    url, docs = server["url"], server["docs"]
    fn_index = _update_fn_index(url)
    target = docs / f"{ENBEK_DOC}.txt"
    original = target.read_bytes()
    forged = tmp_path / f"{ENBEK_DOC}.txt"
    forged.write_text("ASTANA. KAZINFORM - The Enbek Program will create exactly 3 jobs.")

    for token in (None, "", "wrong-token"):
        out = _call_queue(url, fn_index, [[_upload(url, forged)], token, True])
        assert "admin token" in out[0], out[0]
        assert target.read_bytes() == original
    # With the token, but without "replace": an existing article is not replaced.
    out = _call_queue(url, fn_index, [[_upload(url, forged)], ADMIN_TOKEN, False])
    assert "refused" in out[0] and "exists" in out[0], out[0]
    assert target.read_bytes() == original
    # A JSONL file reusing the article's id is refused too.
    reuse = tmp_path / "0.jsonl"
    reuse.write_text(json.dumps({"id": ENBEK_DOC, "text": "The Enbek Program will create exactly 3 jobs."}) + "\n")
    out = _call_queue(url, fn_index, [[_upload(url, reuse)], ADMIN_TOKEN, True])
    assert "refused 0.jsonl" in out[0] and "already used" in out[0], out[0]
    assert not (docs / "0.jsonl").exists()
    assert "750 thousand" in server["client"].predict(ENBEK_Q, api_name="/ask")["text"]
    for text in out[:1]:
        assert str(docs) not in text  # no server paths


def test_uploads_over_the_size_limit_are_refused(server, tmp_path):

    big = tmp_path / "big.txt"
    big.write_text("word " * int(MAX_UPLOAD_MB * 1024 * 1024 / 5 + 1000))
    with open(big, "rb") as fh:
        response = httpx.post(f"{server['url']}/gradio_api/upload", files={"files": (big.name, fh)}, timeout=60)
    assert response.status_code >= 400
    assert not (server["docs"] / "big.txt").exists()

"""The defects of issue 12, each reproduced on real components: the real model, a real FAISS
index on disk, real files. Every test here failed on the code before the fix."""
from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, SEED_DOCUMENTS

import qa
from qa import models
from qa.chunking import Chunker, ChunkerSettings
from qa.documents import load_documents
from qa.errors import REBUILD_HINT
from qa.store import sync
from qa.types import Document

ENBEK_Q = "How many jobs will the Enbek Program create?"
ENBEK_DOC = "004_c8ebc32f0d2447af"


def _generation(index_dir: Path) -> Path:
    return index_dir / json.loads((index_dir / "manifest.json").read_text())["generation"]


def _generations(index_dir: Path) -> list[str]:
    return sorted(p.name for p in index_dir.glob("gen-*"))


def _segment(index_dir: Path) -> Path:
    return index_dir / "segments" / json.loads((index_dir / "manifest.json").read_text())["segments"][0]["name"]


def _truncate_vectors(index_dir: Path) -> None:
    path = _segment(index_dir) / "vectors.npy"
    path.write_bytes(path.read_bytes()[:100])


def _edit_manifest(change):
    def damage(index_dir: Path) -> None:
        manifest = json.loads((index_dir / "manifest.json").read_text())
        change(manifest)
        (index_dir / "manifest.json").write_text(json.dumps(manifest))
    return damage


DAMAGE = {
    "empty manifest": lambda d: (d / "manifest.json").write_text(""),
    "random bytes manifest": lambda d: (d / "manifest.json").write_bytes(os.urandom(64)),
    "list manifest": lambda d: (d / "manifest.json").write_text("[1, 2, 3]"),
    "manifest without generation": _edit_manifest(lambda m: m.pop("generation")),
    "manifest without segments": _edit_manifest(lambda m: m.pop("segments")),
    "generation outside the folder": _edit_manifest(lambda m: m.update(generation="../../etc")),
    "truncated vectors.npy": _truncate_vectors,
    "missing generation folder": lambda d: shutil.rmtree(_generation(d)),
    "missing chunk rows": lambda d: (_segment(d) / "row_doc.npy").unlink(),
    "missing document table": lambda d: (_segment(d) / "doc_ids.npy").unlink(),
    # one row of a three-chunk document deleted: a document's rows go together, or the index is damaged
    "part of a document deleted": lambda d: np.save(_generation(d) / "deleted.npy", np.array([0], dtype=np.int64)),
    "missing segment": lambda d: shutil.rmtree(_segment(d)),
    "truncated documents.jsonl": lambda d: (_segment(d) / "documents.jsonl").write_text("{"),
    "missing lexical index": lambda d: shutil.rmtree(_generation(d) / "lexical"),
    "segment outside the folder": _edit_manifest(lambda m: m["segments"][0].update(name="../../etc")),
}


# ---- 1 and 5: damaged indexes -----------------------------------------------------------
@pytest.mark.parametrize("damage", DAMAGE, ids=list(DAMAGE))
def test_damaged_index_is_a_qa_error_with_the_rebuild_hint(built, damage):
    _, index_dir = built
    DAMAGE[damage](index_dir)
    with pytest.raises(qa.IndexStateError) as info:
        qa.Index.load(index_dir)
    assert REBUILD_HINT in str(info.value)


@pytest.mark.parametrize("damage", DAMAGE, ids=list(DAMAGE))
def test_rebuild_recovers_from_any_damage_and_cleans_up(built, damage):
    docs, index_dir = built
    previous = _generation(index_dir).name
    (index_dir / "gen-000099").mkdir()  # a crashed attempt's leftover
    DAMAGE[damage](index_dir)
    summary = sync(docs, index_dir, rebuild=True)
    assert summary.total_documents == 5
    index = qa.Index.load(index_dir)
    assert index.retrieve("Enbek Program jobs", k=1)[0].doc_id == ENBEK_DOC
    # No orphan is left behind; the generation the old manifest named, if it still points at
    # one, stays one round for readers (as after any update).
    assert index.store.manifest["generation"] in _generations(index_dir)
    assert set(_generations(index_dir)) <= {previous, index.store.manifest["generation"]}


def test_update_of_a_damaged_index_says_rebuild_and_touches_nothing(built):
    docs, index_dir = built
    (index_dir / "manifest.json").write_text("[1, 2, 3]")
    before = _generations(index_dir)
    with pytest.raises(qa.IndexDamagedError, match="rebuild"):
        sync(docs, index_dir)
    assert _generations(index_dir) == before


def test_cli_rebuild_repairs_an_empty_manifest(built):
    docs, index_dir = built
    (index_dir / "manifest.json").write_text("")
    done = subprocess.run([sys.executable, "-m", "qa", "index", "--rebuild", "--documents", str(docs), "--index", str(index_dir)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "added 5" in done.stdout
    assert len(qa.Index.load(index_dir)) == 5


def test_cli_reports_a_damaged_index_without_a_traceback(built):
    _, index_dir = built
    _truncate_vectors(index_dir)
    done = subprocess.run([sys.executable, "-m", "qa", "retrieve", "Enbek", "--index", str(index_dir)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr and REBUILD_HINT in done.stderr


def test_leftovers_of_a_crash_are_removed_by_the_next_update(built):
    docs, index_dir = built
    current = _generation(index_dir).name
    for name in ("gen-000000", "gen-000098", "gen-000099"):  # older orphan, crashed attempts
        (index_dir / name).mkdir(exist_ok=True)
    (index_dir / ".manifest.json.tmp").write_text("{")
    (docs / "005_new.txt").write_text("ASTANA. KAZINFORM - The Zhasyl Dala party opened a camel dairy farm.")
    sync(docs, index_dir)
    new = _generation(index_dir).name
    assert _generations(index_dir) == sorted({current, new})
    assert not (index_dir / ".manifest.json.tmp").exists()


def test_unchanged_update_also_removes_crashed_attempts(built):
    docs, index_dir = built
    current = _generation(index_dir).name
    (index_dir / "gen-000099").mkdir()
    sync(docs, index_dir)
    assert _generations(index_dir) == [current]


def test_unwritable_lock_file_is_a_qa_error(built):
    docs, index_dir = built
    (index_dir / ".lock").unlink(missing_ok=True)
    (index_dir / ".lock").mkdir()  # opening it raises OSError (IsADirectoryError), as a read-only folder does
    with pytest.raises(qa.IndexStateError, match="cannot write to the index folder"):
        sync(docs, index_dir)
    assert len(qa.Index.load(index_dir)) == 5  # reading does not need the lock


def test_second_writer_is_told_it_waits_then_gets_index_busy(built, caplog):
    docs, index_dir = built
    messages = []
    with open(index_dir / ".lock", "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with caplog.at_level(logging.WARNING, logger="qa.store"), pytest.raises(qa.IndexBusyError):
            sync(docs, index_dir, lock_timeout=0.5, progress=lambda d, t, m: messages.append(m))
    assert any("waiting" in m for m in messages)
    assert any("waiting" in r.getMessage() for r in caplog.records)


# ---- 3: symlinks --------------------------------------------------------------------------
def test_symlinks_are_skipped_and_reported(tmp_path):
    docs = tmp_path / "documents"
    shutil.copytree(SEED_DOCUMENTS, docs)
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "passwd.txt").write_text("root:x:0:0:root:/root:/bin/bash\nsecret words here\n")
    os.symlink(secret / "passwd.txt", docs / "passwd.txt")
    os.symlink(secret, docs / "linked_folder")
    os.symlink(docs / "000_c8b47d81c06dd1e9.txt", docs / "inside_link.txt")  # even one pointing inside
    report = load_documents(docs)
    ids = {d.doc_id for d in report.documents}
    assert ids == {p.stem for p in SEED_DOCUMENTS.glob("*.txt")}
    reasons = {Path(path).name: reason for path, reason in report.skipped}
    assert set(reasons) == {"passwd.txt", "linked_folder", "inside_link.txt"}
    assert all("symbolic link" in r for r in reasons.values())

    summary = sync(docs, tmp_path / "index")
    assert len(summary.skipped) == 3
    passages = qa.Index.load(tmp_path / "index").retrieve("root bin bash secret", k=5)
    assert not any("root:x" in p.text for p in passages)


# ---- 4: path spelling ---------------------------------------------------------------------
def test_bad_file_keeps_its_last_good_version_however_the_folder_is_spelled(tmp_path, monkeypatch):
    docs = tmp_path / "documents"
    shutil.copytree(SEED_DOCUMENTS, docs)
    index_dir = tmp_path / "index"
    sync(docs.resolve(), index_dir)  # absolute
    (docs / f"{ENBEK_DOC}.txt").write_bytes(b"\x00\x01binary" * 100)
    monkeypatch.chdir(tmp_path)
    summary = sync(Path("documents"), index_dir)  # relative, same folder
    assert (summary.removed, summary.unchanged, len(summary.skipped)) == (0, 5, 1)
    assert ENBEK_DOC in {d.doc_id for d in qa.Index.load(index_dir).documents()}

    monkeypatch.chdir(docs)
    summary = sync(Path("."), index_dir)  # yet another spelling
    assert summary.removed == 0


# ---- 8: duplicate ids ---------------------------------------------------------------------
def test_duplicate_ids_are_skipped_naming_both_files_and_the_indexed_version_stays(built):
    docs, index_dir = built
    (docs / "0.jsonl").write_text(json.dumps({"id": ENBEK_DOC, "text": "The Enbek Program will create exactly 3 jobs."}) + "\n")
    summary = sync(docs, index_dir)
    reasons = [reason for _, reason in summary.skipped]
    assert len(reasons) == 2 and all("duplicate document id" in r for r in reasons)
    assert any("0.jsonl" in r for r in reasons) and any(f"{ENBEK_DOC}.txt" in r for r in reasons)
    assert summary.removed == 0
    answer = qa.Index.load(index_dir).ask(ENBEK_Q)
    assert "750 thousand" in answer.text and "3 jobs" not in answer.text


# ---- 8: over-long words -------------------------------------------------------------------
def test_a_huge_word_is_split_into_bounded_chunks():
    settings = ChunkerSettings()
    chunker = Chunker(models.embedder().count_tokens, settings)
    text = "A short opening sentence. " + "x" * 100_000 + " and a short ending."
    doc = Document(doc_id="huge", text=text)
    chunks = chunker.split(doc)
    assert max(len(c.text) for c in chunks) <= settings.max_chars
    assert all(text[c.start:c.end] == c.text for c in chunks)
    assert "".join(c.text for c in chunks).count("x") >= 100_000  # nothing lost


# ---- 7: question wrapping -----------------------------------------------------------------
@pytest.mark.parametrize("wrapped", [
    f'"{ENBEK_Q}"', f"Q: {ENBEK_Q}", f"🤔 {ENBEK_Q}", f"- {ENBEK_Q}", f"<b>{ENBEK_Q}</b>", f"“{ENBEK_Q}”",
])
def test_wrapped_question_is_answered_and_keeps_its_text(seed_index, wrapped):
    answer = seed_index.ask(wrapped)
    assert "750 thousand" in answer.text
    assert answer.question == wrapped


# ---- 8: k and surrogates ------------------------------------------------------------------
def test_k_has_an_upper_bound(seed_index):
    with pytest.raises(qa.QuestionError, match="at most"):
        seed_index.retrieve("Enbek", k=10_000)
    with pytest.raises(qa.QuestionError, match="at most"):
        seed_index.ask(ENBEK_Q, k=10_000)
    with pytest.raises(ValueError):
        seed_index.retrieve("Enbek", k="5")


def test_lone_surrogate_is_cleaned_not_a_type_error(seed_index):
    passages = seed_index.retrieve("Enbek \ud83d Program jobs", k=3)
    assert passages[0].doc_id == ENBEK_DOC
    answer = seed_index.ask("How many jobs will the Enbek Program create? \ud83d")
    assert "750 thousand" in answer.text
    with pytest.raises(qa.QuestionError):
        seed_index.ask("\ud83d")


# ---- 6: questions do not wait for bulk embedding -----------------------------------------
def test_query_embedding_does_not_take_the_bulk_lock():
    """While a bulk ``encode`` holds the model's lock (as during an index update), a question
    is still embedded: it used to wait on the same lock."""
    import threading

    embedder = models.embedder()
    embedder.encode_query("warm up")
    done = threading.Event()
    with embedder._lock:  # the update's block in progress
        worker = threading.Thread(target=lambda: (embedder.encode_query(ENBEK_Q), done.set()))
        worker.start()
        assert done.wait(60), "the question waited for the bulk embedding"
    worker.join()
    bulk = embedder.encode([ENBEK_Q])[0]  # torch; the question went through onnxruntime fp32
    import numpy as np

    np.testing.assert_allclose(embedder.encode_query(ENBEK_Q), bulk, atol=1e-4)  # the same vector either way


# ---- 9: questions asked together ----------------------------------------------------------
def test_questions_asked_together_get_the_answers_they_get_alone(seed_index):
    """Several questions in flight share the reader (one forward pass at a time); each must
    still be scored exactly as when asked alone."""
    from concurrent.futures import ThreadPoolExecutor

    rows = [json.loads(line) for line in (ROOT / "tests" / "data" / "seed_questions.jsonl").read_text().splitlines() if line.strip()]
    batcher = models.reader().batcher
    start = batcher.requests
    alone = [seed_index.ask(r["question"], history=r["history"]) for r in rows]
    middle = batcher.requests
    with ThreadPoolExecutor(8) as pool:
        together = list(pool.map(lambda r: seed_index.ask(r["question"], history=r["history"]), rows))
    assert batcher.requests - middle == middle - start > 0  # every reading went through the batcher
    assert [(a.text, round(a.score, 6)) for a in together] == [(a.text, round(a.score, 6)) for a in alone]


def test_a_failing_forward_pass_reaches_its_caller_and_the_batcher_goes_on():
    from qa.reader import WindowBatcher

    def score(questions, contexts, proposals=None):
        if "boom" in questions:
            raise RuntimeError("boom")
        return [[q] for q in questions]

    batcher = WindowBatcher(score)
    with pytest.raises(RuntimeError, match="boom"):
        batcher.score(["boom"], ["c"])
    assert batcher.score(["fine"], ["c"]) == [["fine"]]

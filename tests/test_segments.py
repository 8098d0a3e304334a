"""The segmented store (qa/store.py, qa/segments.py): an update writes a small segment and deletes
rows in place; merges keep the number of segments bounded; a loaded index survives later updates."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import SEED_DOCUMENTS

import qa
from qa.segments import MERGE_FACTOR, merge_plan
from qa.store import Store, sync

ENBEK_DOC = "004_c8ebc32f0d2447af"


def _manifest(index_dir: Path) -> dict:
    return json.loads((index_dir / "manifest.json").read_text())


def _files(segment: Path) -> dict[str, tuple[int, int]]:
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in segment.iterdir()}


def test_an_update_writes_one_small_segment_and_leaves_the_others_alone(built):
    docs, index_dir = built
    first = index_dir / "segments" / _manifest(index_dir)["segments"][0]["name"]
    before = _files(first)
    old_rows = {r.vector_id for r in Store.load(index_dir).rows if r.doc_id == ENBEK_DOC}
    (docs / "990_camels.txt").write_text("ASTANA. KAZINFORM - The Zhasyl Dala party opened a camel dairy farm.")
    (docs / f"{ENBEK_DOC}.txt").write_text("The Enbek programme was renamed; its figures are not given here.")
    summary = sync(docs, index_dir)
    assert (summary.added, summary.updated) == (1, 1)

    manifest = _manifest(index_dir)
    assert [s["rows"] for s in manifest["segments"]][1:] == [summary.chunks_embedded]
    assert _files(first) == before  # not one byte of the big segment rewritten
    gen = index_dir / manifest["generation"]
    assert set(np.load(gen / "deleted.npy").tolist()) == old_rows  # the changed article's old rows
    index = qa.Index.load(index_dir)
    assert len(index.store.vectors) == len(index.store.rows) == manifest["counts"]["chunks"]
    for mode in ("hybrid", "dense", "lexical"):
        found = index.retrieve("camel dairy farm", k=3, mode=mode)
        assert found[0].doc_id == "990_camels", mode
        changed = [p for p in index.retrieve("Enbek 750 thousand jobs", k=20, mode=mode) if p.doc_id == ENBEK_DOC]
        assert changed and all("renamed" in p.text for p in changed), mode  # never the deleted rows
    for p in index.retrieve("Enbek programme renamed camel farm", k=10):
        assert index.document(p.doc_id).text[p.start:p.end] == p.text
        assert index.store.chunk_row(p.chunk_id).start == p.start


def test_filters_apply_on_the_lexical_side_too(seed_index):
    only = seed_index.retrieve("Nur Otan party", k=10, filters={"doc_ids": ["001_e2ec07e4b491a9c5"]}, mode="lexical")
    assert only and {p.doc_id for p in only} == {"001_e2ec07e4b491a9c5"}
    dated = seed_index.retrieve("Nur Otan party", k=20, filters={"date_from": "2019-01-01", "date_to": "2019-12-31"},
                                mode="lexical")
    assert {p.doc_id for p in dated} == {"002_47630b8a4ea02f01"}
    assert seed_index.retrieve("Nur Otan", filters={"date_to": "1990-01-01"}, mode="lexical") == []


def test_small_segments_are_merged_and_deleted_rows_dropped(built):
    docs, index_dir = built
    for i in range(MERGE_FACTOR + 1):
        (docs / f"980_note_{i}.txt").write_text(f"Note {i}: the district library of town number {i} opened a reading room.")
        if i == 3:
            (docs / "980_note_1.txt").write_text("Note 1, corrected: the district library closed for repairs.")
        if i == 5:
            (docs / "980_note_2.txt").unlink()
        sync(docs, index_dir)
        manifest = _manifest(index_dir)
        assert len(manifest["segments"]) <= MERGE_FACTOR  # the first tier never holds more than it merges
    index = qa.Index.load(index_dir)
    ids = {p.doc_id for p in index.retrieve("district library reading room", k=20)}
    assert "980_note_2" not in ids and {"980_note_0", "980_note_8"} <= ids
    assert "closed for repairs" in index.retrieve("library closed for repairs", k=1)[0].text
    live = set(index.store.vector_ids.tolist())
    assert not live & set(index.store.deleted.tolist())
    # Everything that was deleted and merged away is forgotten: the deleted list only names rows
    # of segments still in use.
    in_use = set(np.concatenate([s.vector_ids for s in index.store.segments]).tolist())
    assert set(index.store.deleted.tolist()) <= in_use
    assert index.document("980_note_1").text.startswith("Note 1, corrected")
    # Only the segments of the index in use and of the generation before it are on disk.
    assert len(list((index_dir / "segments").iterdir())) <= 2 * MERGE_FACTOR


def test_a_loaded_index_keeps_answering_after_updates_delete_its_segments(built):
    docs, index_dir = built
    index = qa.Index.load(index_dir)
    first = index_dir / "segments" / _manifest(index_dir)["segments"][0]["name"]
    shutil.rmtree(docs)
    docs.mkdir()
    (docs / "970_only.txt").write_text("The only article left is about a chess tournament in Almaty.")
    sync(docs, index_dir)
    sync(docs, index_dir, rebuild=True)
    assert not first.exists()
    passages = index.retrieve("How many jobs will the Enbek Program create?", k=3)
    assert passages[0].doc_id == ENBEK_DOC and "750 thousand" in " ".join(p.text for p in passages)
    assert len(qa.Index.load(index_dir)) == 1


def test_merge_plan_groups_a_tier_and_rewrites_mostly_deleted_segments():
    infos = [{"name": f"seg-{i:06d}", "rows": 3} for i in range(1, 12)]
    infos[0]["rows"] = 6000
    live = {"seg-000001": 5000, "seg-000002": 0, **{f"seg-{i:06d}": 3 for i in range(3, 12)}}
    plan = merge_plan(infos, live)
    assert plan == [["seg-000002"], [f"seg-{i:06d}" for i in range(3, 12)]]
    assert merge_plan(infos[:5], live) == [["seg-000002"]]
    assert merge_plan(infos[:1], {"seg-000001": 2999}) == [["seg-000001"]]  # over half deleted: rewritten


def test_changed_files_update_without_reading_the_others(built, monkeypatch):
    docs, index_dir = built
    (docs / "960_new.txt").write_text("The regional akimat opened a new ice rink in Kostanay.")
    (docs / f"{ENBEK_DOC}.txt").unlink()
    (docs / "001_e2ec07e4b491a9c5.txt").write_text("Edited, but not listed: this edit waits for a full update.")
    read = []
    from qa import documents as documents_module

    real = documents_module.load_file_or_report
    monkeypatch.setattr(documents_module, "load_file_or_report", lambda p, k: read.append(Path(p).name) or real(p, k))
    summary = qa.update_index(docs, index_dir, changed=[docs / "960_new.txt", docs / f"{ENBEK_DOC}.txt"])
    assert read == ["960_new.txt"]  # the deleted file cannot be read; no other file was
    assert (summary.added, summary.removed, summary.unchanged, summary.total_documents) == (1, 1, 4, 5)
    index = qa.Index.load(index_dir)
    assert index.retrieve("ice rink Kostanay", k=1)[0].doc_id == "960_new"
    assert "Nur Otan" in index.document("001_e2ec07e4b491a9c5").text  # not listed: still the indexed version
    with pytest.raises(qa.DocumentError, match="not in the documents folder"):
        qa.update_index(docs, index_dir, changed=[SEED_DOCUMENTS / f"{ENBEK_DOC}.txt"])
    summary = qa.update_index(docs, index_dir)  # a full update then finds the unlisted edit
    assert (summary.updated, summary.unchanged) == (1, 4)


def test_a_new_index_type_rewrites_every_segment(built):
    docs, index_dir = built
    (docs / "950_note.txt").write_text("A short note about the opening of a bridge in Pavlodar.")
    summary = sync(docs, index_dir, index_type="ivf")
    manifest = _manifest(index_dir)
    assert [s["kind"] for s in manifest["segments"]] == ["ivf"] and manifest["index_type"] == "ivf"
    index = qa.Index.load(index_dir)
    assert len(index.store.vectors) == summary.total_chunks
    assert index.retrieve("bridge in Pavlodar", k=1)[0].doc_id == "950_note"


def test_a_changed_jsonl_file_stands_for_the_documents_read_from_it(built):
    docs, index_dir = built
    feed = docs / "feed.jsonl"
    records = [{"id": "wire-1", "title": "Grain", "text": "Wheat exports from Kostanay rose by a tenth this spring."},
               {"id": "wire-2", "title": "Rail", "text": "A new rail line links Pavlodar with Ekibastuz since May."}]
    feed.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    summary = qa.update_index(docs, index_dir, changed=[feed])
    assert (summary.added, summary.unchanged, summary.total_documents) == (2, 5, 7)
    # One record dropped from the file: listing the file removes it, the other record is unchanged.
    feed.write_text(json.dumps(records[1]) + "\n")
    summary = qa.update_index(docs, index_dir, changed=[feed])
    assert (summary.added, summary.removed, summary.unchanged) == (0, 1, 6)
    # A new file that reuses an indexed id is skipped and named; the indexed document stays.
    clash = docs / "clash.jsonl"
    clash.write_text(json.dumps({"id": "wire-2", "text": "Another story under a taken id."}) + "\n")
    summary = qa.update_index(docs, index_dir, changed=[clash])
    assert summary.skipped and "wire-2" in summary.skipped[0][1] and "feed.jsonl" in summary.skipped[0][1]
    clash.unlink()
    # The file deleted and listed: its documents go.
    feed.unlink()
    summary = qa.update_index(docs, index_dir, changed=[feed, clash])
    assert (summary.removed, summary.total_documents) == (1, 5)
    assert "wire-2" not in qa.Index.load(index_dir).store.documents

"""The Ray Data build engine writes the index the local build writes (a real local Ray instance)."""
from __future__ import annotations


import numpy as np
import pytest
from conftest import SEED_DOCUMENTS

import qa
from qa.engines import LocalEngine, get_engine
from qa.store import sync

ray = pytest.importorskip("ray", reason="the ray extra is not installed (pip install -e '.[ray]')")

QUERIES = ["How many jobs will the Enbek Program create?", "Who received Baibek?", "drinking water billion",
           "chairman of the party went to Karaganda", "Bakytty Otbasy"]


@pytest.fixture(scope="module")
def ray_instance():
    yield
    if ray.is_initialized():
        ray.shutdown()


@pytest.mark.slow
def test_ray_engine_writes_the_local_index(tmp_path, ray_instance):
    import shutil

    docs = tmp_path / "documents"
    shutil.copytree(SEED_DOCUMENTS, docs)
    (docs / "bad.txt").write_bytes(b"\x00\x01\x02 binary")  # skipped and reported by both engines
    local = sync(docs, tmp_path / "local", engine=LocalEngine())
    distributed = sync(docs, tmp_path / "ray", engine=get_engine("ray", workers=2, batch_docs=2))
    assert (distributed.total_documents, distributed.total_chunks) == (local.total_documents, local.total_chunks)
    assert [p for p, _ in distributed.skipped] == [p for p, _ in local.skipped] and len(local.skipped) == 1

    a, b = qa.Index.load(tmp_path / "local"), qa.Index.load(tmp_path / "ray")
    assert [(r.vector_id, r.chunk_id, r.doc_id, r.start, r.end) for r in a.store.rows] == \
           [(r.vector_id, r.chunk_id, r.doc_id, r.start, r.end) for r in b.store.rows]
    ids = a.store.vector_ids
    np.testing.assert_allclose(a.store.stored_vectors(ids), b.store.stored_vectors(ids), atol=1e-4)
    for q in QUERIES:
        assert [p.chunk_id for p in a.retrieve(q, k=10)] == [p.chunk_id for p in b.retrieve(q, k=10)]

    # An incremental update on Ray embeds only what changed.
    (docs / "005_new.txt").write_text("The Enbek Program office opened in Taraz on Monday.", encoding="utf-8")
    update = sync(docs, tmp_path / "ray", engine=get_engine("ray", workers=1))
    assert (update.added, update.unchanged, update.chunks_embedded) == (1, 5, 1)
    assert "005_new" in qa.Index.load(tmp_path / "ray").store.documents


def test_unknown_engine_is_refused():
    with pytest.raises(ValueError, match="engine"):
        get_engine("spark")

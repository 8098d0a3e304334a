"""Shared fixtures: a real index over the seed articles, built once per test session."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

ROOT = Path(__file__).resolve().parent.parent
SEED_DOCUMENTS = ROOT / "documents"
DATA = Path(__file__).resolve().parent / "data"


@pytest.fixture(scope="session")
def seed_index_dir(tmp_path_factory) -> Path:
    """An index built from a copy of documents/ (the five seed articles)."""
    import qa

    base = tmp_path_factory.mktemp("seed")
    docs = base / "documents"
    shutil.copytree(SEED_DOCUMENTS, docs)
    index_dir = base / "index"
    summary = qa.update_index(docs, index_dir)
    assert summary.added == 5 and summary.total_documents == 5
    return index_dir


@pytest.fixture(scope="session")
def seed_index(seed_index_dir):
    import qa

    return qa.Index.load(seed_index_dir)


@pytest.fixture
def built(tmp_path, seed_index_dir):
    """A private copy of the seed documents and of the seed index (copying is cheaper than embedding)."""
    docs = tmp_path / "documents"
    shutil.copytree(SEED_DOCUMENTS, docs)
    index_dir = tmp_path / "index"
    shutil.copytree(seed_index_dir, index_dir)
    return docs, index_dir

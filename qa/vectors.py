"""FAISS vector index keyed by stable int64 chunk ids, so documents are added and removed in place.

Exact flat inner-product search for collections up to ``IVF_THRESHOLD`` chunks; above it
(or when asked) an inverted-file index, approximate, trained on the vectors it is built from:
``ivf-sq8`` (the default above the threshold) stores each vector as 384 bytes instead of 1,536,
``ivf`` keeps them in float32. Measured on real question vectors over real and grown chunks
(``bench/bench_scale.py vectors``, BENCHMARKS.md): at 100,000 chunks, with 128 lists probed,
recall@10 against exact search is 0.971 for ``ivf-sq8`` (0.9 ms a question) and 0.976 for
``ivf`` (1.9 ms), where exact search takes 16 ms. Vectors are L2-normalised, so inner product is cosine similarity.
"""
from __future__ import annotations

import math
from pathlib import Path

import faiss
import numpy as np

IVF_THRESHOLD = 50_000
INDEX_TYPES = ("auto", "flat", "ivf", "ivf-sq8")
# Lists probed per question. Measured recall@10 with 128 (IVF-Flat): 0.965 at 10k chunks (of 400
# lists), 0.976 at 100k (of 1,264), 0.981 at 1M (of 4,000), the last in 6 ms.
NPROBE = 128
TRAIN_PER_LIST = 64  # k-means sees at most this many vectors per list: training time stays bounded


def choose_type(requested: str, n_vectors: int) -> str:
    if requested not in INDEX_TYPES:
        raise ValueError(f"index type must be one of {INDEX_TYPES}, got {requested!r}")
    if requested != "auto":
        return requested
    return "ivf-sq8" if n_vectors >= IVF_THRESHOLD else "flat"


class VectorIndex:
    def __init__(self, index: faiss.Index, kind: str):
        self.index = index
        self.kind = kind

    @classmethod
    def build(cls, kind: str, dimension: int, vectors: np.ndarray, ids: np.ndarray) -> "VectorIndex":
        if kind == "flat":
            index = faiss.IndexIDMap2(faiss.IndexFlatIP(dimension))
        elif kind in ("ivf", "ivf-sq8"):
            nlist = cls.lists_for(len(vectors))
            quantizer = faiss.IndexFlatIP(dimension)
            if kind == "ivf":
                index = faiss.IndexIVFFlat(quantizer, dimension, nlist, faiss.METRIC_INNER_PRODUCT)
            else:
                index = faiss.IndexIVFScalarQuantizer(quantizer, dimension, nlist, faiss.ScalarQuantizer.QT_8bit,
                                                      faiss.METRIC_INNER_PRODUCT)
            if len(vectors) < nlist:
                raise ValueError(f"an IVF index needs at least {nlist} vectors to train, got {len(vectors)}")
            sample = vectors
            if len(vectors) > TRAIN_PER_LIST * nlist:
                rows = np.random.default_rng(0).choice(len(vectors), TRAIN_PER_LIST * nlist, replace=False)
                sample = vectors[np.sort(rows)]
            index.train(np.ascontiguousarray(sample, dtype=np.float32))
            index.nprobe = min(nlist, NPROBE)
            index.set_direct_map_type(faiss.DirectMap.Hashtable)  # remove_ids() finds each id without a scan
        else:
            raise ValueError(f"unknown index type {kind!r}")
        built = cls(index, kind)
        built.add(vectors, ids)
        return built

    @staticmethod
    def lists_for(n_vectors: int) -> int:
        """Inverted lists of an IVF index over ``n_vectors``: about 4 sqrt(n), at most 4,096."""
        return max(1, min(4096, int(4 * math.sqrt(max(n_vectors, 1)))))

    def __len__(self) -> int:
        return int(self.index.ntotal)

    def add(self, vectors: np.ndarray, ids: np.ndarray) -> None:
        if len(ids):
            self.index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), np.asarray(ids, dtype=np.int64))

    def remove(self, ids: np.ndarray) -> None:
        if len(ids):
            self.index.remove_ids(np.asarray(ids, dtype=np.int64))

    def search(self, query: np.ndarray, n: int, selector: "faiss.IDSelector | None" = None) -> tuple[np.ndarray, np.ndarray]:
        """Top ``n`` (ids, scores), best first, among the ids ``selector`` admits (all without one)."""
        if len(self) == 0 or n <= 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        params = None
        if selector is not None:
            params = (faiss.SearchParametersIVF(sel=selector, nprobe=self.index.nprobe) if self.kind.startswith("ivf")
                      else faiss.SearchParameters(sel=selector))
        scores, ids = self.index.search(query.reshape(1, -1).astype(np.float32), min(n, len(self)), params=params)
        keep = ids[0] >= 0
        return ids[0][keep], scores[0][keep]

    def save(self, path: Path) -> None:
        faiss.write_index(self.index, str(path))

    @classmethod
    def load(cls, path: Path, kind: str) -> "VectorIndex":
        index = faiss.read_index(str(path))
        return cls(index, kind)


class SegmentedVectors:
    """The vector indexes of all segments, searched as one: each gives its best ``n``, the best
    ``n`` of those are the answer (segments hold disjoint ids)."""

    def __init__(self, parts: list[VectorIndex], id_bound: int):
        self.parts = parts
        self.id_bound = id_bound  # every id is below it: the size of a filter's bitmap

    def __len__(self) -> int:
        return sum(len(p) for p in self.parts)

    def search(self, query: np.ndarray, n: int, allowed_ids: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top ``n`` (ids, scores), best first, optionally only among ``allowed_ids``."""
        selector = None
        if allowed_ids is not None:
            if len(allowed_ids) == 0:
                return np.zeros(0, np.int64), np.zeros(0, np.float32)
            # One bit per id: built in about a millisecond for a million ids, checked in O(1) by
            # faiss per candidate (a hash set of the allowed ids took longer to build than to search).
            mask = np.zeros(self.id_bound, dtype=bool)
            mask[allowed_ids] = True
            bitmap = np.packbits(mask, bitorder="little")
            selector = faiss.IDSelectorBitmap(len(bitmap), faiss.swig_ptr(bitmap))
        found = [part.search(query, n, selector) for part in self.parts if len(part)]
        if not found:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        ids = np.concatenate([f[0] for f in found])
        scores = np.concatenate([f[1] for f in found])
        best = np.argsort(-scores, kind="stable")[:n]
        return ids[best], scores[best]

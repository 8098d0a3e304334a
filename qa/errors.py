"""One error hierarchy for the package: every problem ``qa`` reports on purpose is a ``QAError``.

    QAError
    ├── IndexStateError          the index on disk cannot be used as it is (the message says what to do)
    │   ├── IndexNotFoundError   no index there yet (also a FileNotFoundError)
    │   ├── IndexDamagedError    unreadable or inconsistent files: rebuild
    │   ├── IndexMismatchError   built with another model or format version: rebuild
    │   └── IndexBusyError       another writer holds the index's lock
    ├── DocumentError            a file that cannot become a document (also a ValueError)
    ├── QuestionError            an unusable question, query or filter (also a ValueError)
    └── ModelError               the shipped reader or answer scorer cannot be loaded

The ``ValueError`` / ``FileNotFoundError`` bases keep ``except ValueError`` callers working.
"""
from __future__ import annotations

REBUILD_HINT = "rebuild it with `python -m qa index --rebuild`"


class QAError(Exception):
    """Base of every error ``qa`` raises on purpose."""


class IndexStateError(QAError):
    """The index cannot be used as it is; the message says what to do."""


class IndexNotFoundError(IndexStateError, FileNotFoundError):
    """No index in that folder yet."""


class IndexDamagedError(IndexStateError):
    """Files of the index are unreadable or inconsistent."""


class IndexMismatchError(IndexStateError):
    """The index was built with another embedding model or format version."""


class IndexBusyError(IndexStateError):
    """Another process is writing the index."""


class DocumentError(QAError, ValueError):
    """A file that cannot become a document; the message names the file and the problem."""


class QuestionError(QAError, ValueError):
    """An empty or malformed question, query or filter."""


class ModelError(QAError):
    """A shipped model file is missing or does not fit the code."""

"""Streaming pieces of the pipeline: dump -> zstd -> age -> every site, in one pass.

Nothing here holds more than a buffer: a 1 GB database is backed up in the same memory
as a 1 MB one.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable

from .sites import one_line

PROGRESS_EVERY = 0.5  # seconds between progress callbacks


class CountingReader:
    """A reader that counts what passes through it and reports progress."""

    def __init__(self, raw, on_progress: Callable[[int], None] | None = None):
        self.raw = raw
        self.count = 0
        self.on_progress = on_progress
        self._last = 0.0

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size)
        self.count += len(data)
        if self.on_progress is not None:
            now = time.monotonic()
            if now - self._last >= PROGRESS_EVERY:
                self._last = now
                self.on_progress(self.count)
        return data


class HashingReader(CountingReader):
    """A reader that also computes the SHA-256 of what it read."""

    def __init__(self, raw, on_progress=None):
        super().__init__(raw, on_progress)
        self.sha256 = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = super().read(size)
        self.sha256.update(data)
        return data


class SiteTee:
    """A writer that copies every byte to each site's writer and hashes them once.

    A site that fails is dropped (its error kept) and the others go on: one bad site
    makes the backup degraded, not lost.
    """

    def __init__(self, writers: dict, on_progress: Callable[[int], None] | None = None):
        self.writers = dict(writers)
        self.failures: dict[str, str] = {}
        self.sha256 = hashlib.sha256()
        self.count = 0
        self.on_progress = on_progress
        self._last = 0.0

    def write(self, data) -> int:
        self.sha256.update(data)
        self.count += len(data)
        for name, writer in list(self.writers.items()):
            try:
                writer.write(data)
            except Exception as exc:
                self.failures[name] = one_line(exc)
                del self.writers[name]
        if self.on_progress is not None:
            now = time.monotonic()
            if now - self._last >= PROGRESS_EVERY:
                self._last = now
                self.on_progress(self.count)
        return len(data)

    def flush(self) -> None:
        pass

    def close_all(self) -> dict[str, str]:
        """Complete every upload; returns the sites whose upload failed, with why."""
        for name, writer in list(self.writers.items()):
            try:
                writer.close()
            except Exception as exc:
                self.failures[name] = one_line(exc)
                del self.writers[name]
        return self.failures


def sha256_of(reader, chunk: int = 1 << 20) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    while True:
        data = reader.read(chunk)
        if not data:
            break
        size += len(data)
        digest.update(data)
    return digest.hexdigest(), size

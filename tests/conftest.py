"""Suite-wide settings: markers are enforced, and the loop reports blocking callbacks.

asyncio's debug mode (switched on here, before any loop exists) logs every callback that
holds the event loop longer than `slow_callback_duration`. A callback that blocks for
longer than `BLOCKING_LIMIT_S` — a model run, a file read, a sleep on the loop — fails the
test that caused it. The limit leaves room for a loaded 2-core CI machine.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator

import pytest

KNOWN_MARKERS = {"unit", "integration", "browser", "corpus"}
BLOCKING_LIMIT_S = 0.5
_SLOW = re.compile(r"took (\d+\.\d+) seconds")

os.environ.setdefault("PYTHONASYNCIODEBUG", "1")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test carries exactly one category marker, so `-m unit` means what it says."""
    for item in items:
        marks = {m.name for m in item.iter_markers()} & KNOWN_MARKERS
        if len(marks) != 1:
            raise pytest.UsageError(
                f"{item.nodeid}: needs exactly one marker of {sorted(KNOWN_MARKERS)}"
            )


class _SlowCallbacks(logging.Handler):
    """Collects asyncio's "Executing <handle> took N seconds" reports."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.blocking: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        match = _SLOW.search(message)
        if match and float(match.group(1)) > BLOCKING_LIMIT_S:
            self.blocking.append(message[:300])


@pytest.fixture(autouse=True)
def _no_blocking_on_the_loop() -> Iterator[None]:
    handler = _SlowCallbacks()
    logger = logging.getLogger("asyncio")
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
    assert not handler.blocking, "the event loop was blocked:\n" + "\n".join(handler.blocking)

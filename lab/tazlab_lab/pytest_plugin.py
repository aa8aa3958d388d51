"""pytest fixtures that give tests the lab twin's world (registered through the pytest11 entry point)."""

from __future__ import annotations

import pytest

from .clock import SimClock


@pytest.fixture
def sim_clock() -> SimClock:
    """A fresh simulated clock at the seed story's evening, moved only by ``await advance()``."""
    return SimClock()

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from k8s_twin_helpers import TWINS  # noqa: E402


@pytest.fixture(autouse=True)
def no_controller_errors():
    """No controller of any twin built by the test raised (timers, informer handlers, subscribers)."""
    TWINS.clear()
    yield
    errors = [(twin.scenario["name"], e) for twin in TWINS for e in twin.errors]
    TWINS.clear()
    assert not errors, errors

"""pytest fixtures for the mock upstream. Import them into a test module (or a conftest):

    from tests.mocks.fixtures import mock_upstream  # noqa: F401

The server starts once per test process (lazily, on first use) and is reset before every test:
scripts, recorded requests and added deployments never leak between tests.
"""

from __future__ import annotations

import atexit
import threading
from collections.abc import Iterator

import pytest

from tests.mocks.upstream import MockUpstream

_shared: MockUpstream | None = None
_lock = threading.Lock()


def shared_mock_upstream() -> MockUpstream:
    global _shared
    with _lock:
        if _shared is None:
            _shared = MockUpstream().start()
            atexit.register(_shared.stop)
        return _shared


@pytest.fixture
def mock_upstream() -> Iterator[MockUpstream]:
    mock = shared_mock_upstream()
    mock.reset()
    yield mock
    mock.reset()

"""A real ``oxygis serve`` for the security scans to look at, once per module."""

from pathlib import Path

import pytest
from django.conf import settings

from tests.served import Served, free_port


@pytest.fixture(scope="module")
def served():
    server = Served(Path(settings.VAR_DIR), free_port(), workers=1)
    yield server
    assert server.stop() == 0


@pytest.fixture
def ca_file():
    return str(Path(settings.VAR_DIR) / "tls" / "ca.pem")

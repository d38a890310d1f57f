"""A real ``oxygis serve`` for the security scans to look at, once per module."""

from pathlib import Path

import pytest
from django.conf import settings

from tests.served import Served, free_port, oxygis


@pytest.fixture(scope="module")
def served():
    # The dynamic scan attacks the sign-in form while signed in: five wrong answers
    # would lock it out and (by design: guessing behind a session) end its session, and
    # it would scan the rest anonymously. The lockout has its own tests.
    server = Served(
        Path(settings.VAR_DIR), free_port(), workers=1, env={"OXYGIS_LOCKOUT_FAILURES": "100000"}
    )
    yield server
    assert server.stop() == 0
    # `serve` made a demo tenant in the run's catalog (shared with later tests' servers,
    # which have keys of their own and make their own demo).
    oxygis("tenant", "drop", "demo", "--yes")


@pytest.fixture
def ca_file():
    return str(Path(settings.VAR_DIR) / "tls" / "ca.pem")

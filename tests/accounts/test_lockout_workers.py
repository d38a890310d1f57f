"""S12: the lockout holds across several server processes (state in the database)."""

import os
import re

from tests.served import Served, free_port, sign_in_over_https
from tests.tenancy.test_cli import oxygis


def test_lockout_holds_across_workers(tmp_path):
    """S12: five failures spread over three worker processes lock the account for all."""
    served = Served(tmp_path, free_port(), workers=3)
    try:
        password = re.search(r"password: (\S+)", served.output())[1]
        statuses = [
            sign_in_over_https(served, "demo.localhost", "admin", "Wrong-guess-1!").status
            for _ in range(5)
        ]
        # The form again four times; the fifth failure locks (429).
        assert statuses == [200, 200, 200, 200, 429]
        # The right password, on new connections served by whichever worker: refused.
        for _ in range(3):
            assert sign_in_over_https(served, "demo.localhost", "admin", password).status == 429
        # A variant spelling of the name is the same name.
        assert sign_in_over_https(served, "demo.localhost", "ADMIN", password).status == 429
    finally:
        assert served.stop() == 0
        if os.environ.get("OXYGIS_DATABASE_URL"):
            oxygis("tenant", "drop", "demo", "--yes")

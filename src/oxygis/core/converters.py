"""URL converters."""

# Largest id a bigint column holds: anything longer is answered 404 by the URL router
# instead of reaching the database as an out-of-range value (a 500 on PostgreSQL).
MAX_ID = 2**63 - 1


class IdConverter:
    """A row id: 1 to 18 digits, no leading zero (always below MAX_ID)."""

    regex = "[1-9][0-9]{0,17}"

    def to_python(self, value: str) -> int:
        return int(value)

    def to_url(self, value) -> str:
        return str(int(value))

# The README's two commands: `make serve` and `make test`. Both set up what they need.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: serve test test-sqlite test-postgresql lint format lock bench clean audit messages

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Dependencies come only from the hashed lock files (pip --require-hashes).
# The build tools are hashed too, and the package is installed without build isolation
# so that pip fetches nothing unpinned.
$(VENV)/.base: requirements/base.lock requirements/build.lock pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --disable-pip-version-check --require-hashes -r requirements/build.lock
	$(BIN)/pip install --quiet --disable-pip-version-check --require-hashes -r requirements/base.lock
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $@

$(VENV)/.test: requirements/test.lock $(VENV)/.base
	$(BIN)/pip install --quiet --disable-pip-version-check --require-hashes -r requirements/test.lock
	touch $@

# The French catalog, compiled from its .po by Babel (pure Python, no gettext needed).
MESSAGES := src/oxygis/locale/fr/LC_MESSAGES/django.mo
$(MESSAGES): src/oxygis/locale/fr/LC_MESSAGES/django.po | $(VENV)/.base
	$(BIN)/pybabel -q compile -d src/oxygis/locale -D django
	touch $@

# After marking new strings: extract them into the French catalog, then translate the
# entries left empty (tests/web/test_i18n.py fails until none is).
messages: $(VENV)/.base
	scripts/ensure-gettext
	cd src/oxygis && ../../$(BIN)/oxygis makemessages --locale=fr --add-location=file \
		--ignore="migrations/*" --ignore="*/console/*"

serve: $(VENV)/.base $(MESSAGES)
	scripts/ensure-pdf-libs
	$(BIN)/oxygis serve $(SERVE_ARGS)

lint: $(VENV)/.test
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

format: $(VENV)/.test
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench

test-sqlite: $(VENV)/.test $(MESSAGES)
	scripts/ensure-pdf-libs
	scripts/ensure-gettext
	scripts/ensure-slapd
	scripts/ensure-oidc-provider
	scripts/ensure-chromium
	scripts/ensure-azurite
	scripts/ensure-wapiti
	OXYGIS_TEST_ENGINE=sqlite OXYGIS_TEST_URL_COVERAGE=1 $(BIN)/pytest $(PYTEST_ARGS)

test-postgresql: $(VENV)/.test $(MESSAGES)
	scripts/ensure-pdf-libs
	scripts/ensure-gettext
	scripts/ensure-postgres
	scripts/ensure-pgbouncer
	scripts/ensure-pgbackrest
	scripts/ensure-patroni
	scripts/ensure-slapd
	scripts/ensure-oidc-provider
	scripts/ensure-chromium
	scripts/ensure-azurite
	OXYGIS_TEST_ENGINE=postgresql OXYGIS_TEST_URL_COVERAGE=1 $(BIN)/pytest $(PYTEST_ARGS)

# The security gates (bandit, pip-audit on the locks, wapiti's scan) are tests of their
# own: tests/security/test_gates.py and test_dynamic_scan.py. `make audit` runs the
# first two alone, for a quick look before a commit.
audit: $(VENV)/.test
	OXYGIS_TEST_ENGINE=sqlite $(BIN)/pytest -q -rs tests/security/test_gates.py

# Every test, on both engines, after the lint.
test: lint test-sqlite test-postgresql

lock: $(VENV)/.test
	$(BIN)/pip install --quiet uv
	$(BIN)/uv pip compile pyproject.toml --python-version 3.11 --generate-hashes -o requirements/base.lock
	$(BIN)/uv pip compile requirements/build.in --python-version 3.11 --generate-hashes -o requirements/build.lock
	$(BIN)/uv pip compile pyproject.toml --extra test --python-version 3.11 --generate-hashes -o requirements/test.lock

bench: $(VENV)/.test $(MESSAGES)
	scripts/ensure-postgres
	scripts/ensure-pgbouncer
	scripts/ensure-pgbackrest
	scripts/ensure-patroni
	$(BIN)/python bench/provision.py
	$(BIN)/python bench/backup.py
	$(BIN)/python bench/failover.py

clean:
	rm -rf $(VENV) .pytest_cache

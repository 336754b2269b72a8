# Two commands on a fresh machine with only python3: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
MYSQL_TEST_URL ?= mysql+pymysql://root@127.0.0.1:3306/test
AF_STAMP := $(VENV)/.airflow-stamp
TRYTON_VENV  := .venv-tryton
TRYTON_STAMP := $(TRYTON_VENV)/.installed-stamp
CHROMIUM ?= /usr/bin/chromium
AIRFLOW_PORT ?= 8080
SANDBOX_PORT ?= 8600

.PHONY: demo test test-sqlite test-mysql test-airflow airflow install clean

install: $(STAMP)

# The venv module is a separate Debian package on some machines; install it only when venv is missing.
$(STAMP): pyproject.toml
	@$(PYTHON) -m venv --help >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq python3-venv)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	@# JD's official SDK, for the sandbox's wire-fidelity test; --no-deps: its extras serve only its decryption module
	$(BIN)/python -m pip install -q --no-deps 'jd-sdk==1.1.1'
	@# Kingdee's official WebAPI SDK, for the same reason (its only requirements, requests and urllib3, are ours)
	$(BIN)/python -m pip install -q --no-deps 'kingdee-cdp-webapi-sdk==8.2.0'
	@touch $(STAMP)

# Airflow 3.3 (the `airflow` extra) in the same venv; the library itself never needs it.
$(AF_STAMP): $(STAMP) pyproject.toml
	$(BIN)/python -m pip install -q -e '.[airflow,test]'
	@touch $(AF_STAMP)

# A real Tryton 8.2 for the Tryton sink's tests, in its own venv (its pins differ from ours). The packages are the
# `tryton` extra of pyproject.toml, read from there; the tests build and cache the Tryton DB under .cache/tryton/.
$(TRYTON_STAMP): pyproject.toml
	@test -x $(TRYTON_VENV)/bin/python || $(PYTHON) -m venv $(TRYTON_VENV)
	$(PYTHON) -c "import tomllib; print('\\n'.join(tomllib.load(open('pyproject.toml', 'rb'))\
		['project']['optional-dependencies']['tryton']))" > $(TRYTON_VENV)/requirements.txt
	$(TRYTON_VENV)/bin/python -m pip install -q -r $(TRYTON_VENV)/requirements.txt
	@touch $(TRYTON_STAMP)

# Debian's chromium, for the headless screenshots of the Airflow UI; installed only when it is missing.
$(CHROMIUM):
	apt-get update -qq && apt-get install -y -qq chromium

demo: $(STAMP)
	$(BIN)/orderhub demo

test: test-sqlite test-mysql test-airflow

test-sqlite: $(STAMP) $(TRYTON_STAMP)
	$(BIN)/python -m pytest -q --ignore=tests/airflow

# MariaDB/MySQL must pass the same suite; an unreachable server fails the run (set ORDERHUB_SKIP_MYSQL=1 to skip
# deliberately on a machine without one).
test-mysql: $(STAMP) $(TRYTON_STAMP)
	@if [ -n "$$ORDERHUB_SKIP_MYSQL" ]; then echo "MySQL suite skipped on request (ORDERHUB_SKIP_MYSQL)"; \
	else ORDERHUB_TEST_DATABASE_URL=$(MYSQL_TEST_URL) $(BIN)/python -m pytest -q --ignore=tests/airflow; fi

# The Airflow tests run once, on SQLite, in their own pytest process (Airflow reads its config at import time):
# DagBag without parse-time I/O, dag.test() against the sandbox, and `airflow standalone` + headless Chromium.
test-airflow: $(AF_STAMP) $(CHROMIUM)
	$(BIN)/python -m pytest -q tests/airflow

# Airflow standalone on 127.0.0.1:$(AIRFLOW_PORT) against the sandbox (127.0.0.1:$(SANDBOX_PORT)), DAGs loaded and
# unpaused, pools created, admin login printed; Ctrl-C stops Airflow and the sandbox. State lives in .airflow/.
airflow: $(AF_STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m orderhub_airflow standalone --dir .airflow \
		--port $(AIRFLOW_PORT) --sandbox-port $(SANDBOX_PORT)

clean:
	rm -rf $(VENV) .demo .pytest_cache .airflow .artifacts

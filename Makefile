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

.PHONY: demo test test-sqlite test-mysql test-airflow airflow install clean bench bench-million chaos

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

# Benchmarks (bench/README.md): ingest throughput against a raw Core insert and dlt at 10k orders on SQLite and
# MariaDB, latency paid -> WMS (push and poll) against load, a Double 11 peak of 1 000 orders/s for 10 s, then the
# plot and tables; about 15 minutes on 2 cores. BENCH_MYSQL_URL's tables are dropped: a database of its own. The
# README's figures come from the larger runs (by hand, once): `BENCH_ORDERS="10000 100000" BENCH_PEAK_S=60 make bench`
# (about 40 minutes more) and `bench/latency.py --orders 100 --loads 0 100 300`; 1M orders is
# `$(BIN)/python bench/ingest_throughput.py --db sqlite --orders 1000000` (hours: see bench/README.md).
BENCH_STAMP := $(VENV)/.bench-stamp
BENCH_MYSQL_URL ?= mysql+pymysql://root@127.0.0.1:3306/orderhub_bench
BENCH_ORDERS ?= 10000
BENCH_PEAK_S ?= 10
$(BENCH_STAMP): $(STAMP) pyproject.toml
	$(BIN)/python -m pip install -q -e '.[bench,test]'
	@touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	ORDERHUB_BENCH_MYSQL_URL=$(BENCH_MYSQL_URL) $(BIN)/python bench/ingest_throughput.py --orders $(BENCH_ORDERS) \
		--db sqlite $(if $(ORDERHUB_SKIP_MYSQL),,mariadb)
	$(BIN)/python bench/latency.py --orders 50 --loads 0 100
	$(BIN)/python bench/double11.py --rate 1000 --duration $(BENCH_PEAK_S) --db sqlite
	$(BIN)/python bench/plot.py

# One million orders through the ingest benchmark (bench/README.md has the times: about half an hour on SQLite and
# an hour on MariaDB, with tens of GB of temporary files under /tmp); redraws the plot with the 1M points.
bench-million: $(BENCH_STAMP)
	ORDERHUB_BENCH_MYSQL_URL=$(BENCH_MYSQL_URL) $(BIN)/python bench/ingest_throughput.py --orders 1000000 \
		--db sqlite $(if $(ORDERHUB_SKIP_MYSQL),,mariadb) --name ingest_1m
	$(BIN)/python bench/plot.py

# Chaos at scale (tests/chaos runs the same at small scale inside `make test`): 200 kill -9s of a worker during a
# faulty run, checked against the sandbox's record of truth (~10 min), then 3 000 fuzzed pages through mapping and
# ingest. CHAOS_MYSQL_URL (its tables are dropped) adds the kill run on MariaDB.
CHAOS_KILLS ?= 200
CHAOS_MYSQL_URL ?=
chaos: $(STAMP)
	$(BIN)/python bench/chaos.py --kills $(CHAOS_KILLS)
	$(if $(CHAOS_MYSQL_URL),$(BIN)/python bench/chaos.py --kills $(CHAOS_KILLS) --db $(CHAOS_MYSQL_URL))
	ORDERHUB_CHAOS_EXAMPLES=3000 $(BIN)/python -m pytest -q -p no:cacheprovider tests/chaos/test_fuzzed_payloads.py

clean:
	rm -rf $(VENV) .demo .pytest_cache .airflow .artifacts

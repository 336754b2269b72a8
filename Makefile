# Two commands on a fresh machine with only python3: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
MYSQL_TEST_URL ?= mysql+pymysql://root@127.0.0.1:3306/test

.PHONY: demo test test-sqlite test-mysql install clean

install: $(STAMP)

# The venv module is a separate Debian package on some machines; install it only when venv is missing.
$(STAMP): pyproject.toml
	@$(PYTHON) -m venv --help >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq python3-venv)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/orderhub demo

test: test-sqlite test-mysql

test-sqlite: $(STAMP)
	$(BIN)/python -m pytest -q

# MariaDB/MySQL must pass the same suite; an unreachable server fails the run (set ORDERHUB_SKIP_MYSQL=1 to skip
# deliberately on a machine without one).
test-mysql: $(STAMP)
	@if [ -n "$$ORDERHUB_SKIP_MYSQL" ]; then echo "MySQL suite skipped on request (ORDERHUB_SKIP_MYSQL)"; \
	else ORDERHUB_TEST_DATABASE_URL=$(MYSQL_TEST_URL) $(BIN)/python -m pytest -q; fi

clean:
	rm -rf $(VENV) .demo .pytest_cache

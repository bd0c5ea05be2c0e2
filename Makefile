# foodapp: `make run` to run it all, `make test` to run the tests.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin

.PHONY: help install run test clean

help:
	@echo "make run    create .venv, install, and run web + workers (+ Redis if none answers) under supervisord"
	@echo "make test   install what the tests need and run the whole suite"
	@echo "make clean  remove .venv and var/"

$(BIN)/python:
	@test -n "$(PYTHON)" || { echo "Python 3.11 is needed: install python3.11 (Debian: apt-get install python3.11 python3.11-venv)"; exit 1; }
	$(PYTHON) -m venv $(VENV) || { echo "could not create $(VENV): on Debian, apt-get install python3-venv"; exit 1; }
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/python setup.py
	$(BIN)/pip install --quiet -e .
	@touch $@

$(VENV)/.installed-testing: $(VENV)/.installed
	$(BIN)/pip install --quiet -e '.[testing]'
	@touch $@

install: $(VENV)/.installed

run: install
	$(BIN)/foodapp-dev development.ini

test: $(VENV)/.installed-testing
	$(BIN)/pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) var

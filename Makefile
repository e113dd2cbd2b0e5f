# The two commands: `make demo` and `make test`. Both create or reuse .venv in the project.
PYTHON ?= python3
VENV ?= .venv
# torch from the machine's local wheels (x86_64, Python 3.11); override on other machines,
# e.g. make test TORCH="torch torchvision"
TORCH ?= torch==2.14.1 torchvision==0.29.1
PY := $(VENV)/bin/python
STAMP := $(VENV)/.diffbench-installed
PYTEST_ARGS ?=

.PHONY: install demo test lint clean-venv

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

DEMO_OUT ?= runs/demo
DIFFBENCH := $(VENV)/bin/diffbench

# The offline demo suite: two models, their results and a report (rerunning resumes).
demo: install
	$(DIFFBENCH) run suites/demo.yaml --model demo-sit --out $(DEMO_OUT)/demo-sit
	$(DIFFBENCH) run suites/demo.yaml --model toy --out $(DEMO_OUT)/toy
	$(DIFFBENCH) report $(DEMO_OUT)/demo-sit $(DEMO_OUT)/toy -o $(DEMO_OUT)/report

test: install
	$(VENV)/bin/pytest -q $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check diffbench tests benchmarks scripts

clean-venv:
	rm -rf $(VENV)

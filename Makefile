# The two commands: `make demo` and `make test`. Both create or reuse .venv in the project.
PYTHON ?= python3
VENV ?= .venv
# torch from the machine's local wheels (x86_64, Python 3.11); override on other machines,
# e.g. make test TORCH="torch torchvision"
TORCH ?= torch==2.14.1 torchvision==0.29.1
# Every other package at the version the tests ran with (`make lock` refreshes it). torch,
# torchvision and their CUDA/triton wheels are not in it: TORCH decides them. `LOCK=` installs
# the newest versions pyproject.toml allows instead.
LOCK ?= requirements/test-constraints.txt
# Reference code the parity tests import but whose package pins what we cannot install (dinov2
# 0.0.1.dev2 pins torch 2.0, xformers, cuml): installed without its dependencies; the tests use
# only its model code (dinov2.models.vision_transformer), which needs torch alone.
TEST_REFS ?= dinov2==0.0.1.dev2
PY := $(VENV)/bin/python
STAMP := $(VENV)/.diffbench-installed
PYTEST_ARGS ?=
# Names `make lock` leaves out (TORCH installs them; diffbench is this checkout).
LOCK_SKIP := ^(torch|torchvision|triton|nvidia-[a-z0-9-]+|cuda-[a-z0-9-]+|diffbench)==

.PHONY: install demo example-report test test-fast lint lock clean-venv gpu-check

$(STAMP): pyproject.toml Makefile $(LOCK)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q $(if $(LOCK),-c $(LOCK)) -e ".[test]"
	$(PY) -m pip install -q --no-deps $(TEST_REFS)
	$(if $(LOCK),$(PY) scripts/check_lock.py $(LOCK))
	touch $(STAMP)

install: $(STAMP)

# Resolve the newest versions in a throwaway venv (never .venv) and write them to $(LOCK).
lock:
	set -e; d=$$(mktemp -d /tmp/diffbench-lock-XXXXXX); trap 'rm -rf "$$d"' EXIT; \
	$(PYTHON) -m venv "$$d"; \
	"$$d/bin/python" -m pip install -q --upgrade pip; \
	"$$d/bin/python" -m pip install -q $(TORCH); \
	"$$d/bin/python" -m pip install -q -e ".[test]"; \
	mkdir -p $(dir $(LOCK)); \
	{ echo "# pip constraints: the package versions of a fresh \`make lock\` install, which the tests ran with"; \
	  echo "# ($$("$$d/bin/python" -c 'import platform, torch; print(f"Python {platform.python_version()} {platform.machine()}, torch {torch.__version__}")'))."; \
	  echo "# torch, torchvision, triton, nvidia-*, cuda-* are left out: the Makefile's TORCH installs them."; \
	  echo "# Use: pip install -c $(LOCK) -e .[test]   (refresh: make lock)"; \
	  "$$d/bin/python" -m pip freeze --exclude-editable | grep -v '^#' \
	    | grep -Eiv '$(LOCK_SKIP)' | LC_ALL=C sort -f; } > $(LOCK).new; \
	mv $(LOCK).new $(LOCK)

DEMO_OUT ?= runs/demo
DIFFBENCH := $(VENV)/bin/diffbench

# The offline demo suite: two models, their results and a report (rerunning resumes).
demo: install
	$(DIFFBENCH) run demo --model demo-sit --out $(DEMO_OUT)/demo-sit
	$(DIFFBENCH) run demo --model toy --out $(DEMO_OUT)/toy
	$(DIFFBENCH) report $(DEMO_OUT)/demo-sit $(DEMO_OUT)/toy -o $(DEMO_OUT)/report

# The committed example leaderboard: the demo's report, rebuilt from the demo's two runs (their
# records and one sample per class are kept in reports/demo/runs/; tests/test_example_report.py
# checks the committed files are what the current code makes from them).
example-report: demo
	$(PY) scripts/example_report.py $(DEMO_OUT)/demo-sit $(DEMO_OUT)/toy --out reports/demo

# Every test (the README's command and CI's). Markers say what a test costs (pyproject.toml):
# `make test-fast` skips the `slow` and `procs` tiers for iteration (docs/development.md).
# TEST_JOBS: one pytest-xdist worker per core (at most 4), a test file's tests in one worker;
# tests/conftest.py gives each worker its share of the threads. `make test TEST_JOBS=` runs
# them in this process instead.
TEST_JOBS ?= -n logical --maxprocesses=4 --dist loadfile
test: install
	$(VENV)/bin/pytest -q $(TEST_JOBS) $(PYTEST_ARGS)

test-fast: install
	$(VENV)/bin/pytest -q $(TEST_JOBS) -m "not slow and not procs" $(PYTEST_ARGS)
# The GPU check (benchmarks/gpu_check.py): the demo end to end, score compared with the CPU
# within derived bounds, SiT-XL/2 sampling throughput in bf16/fp32; random weights, no download.
# Needs a CUDA device (exit 2 and one line without); under 8 minutes on one H100.
gpu-check: install
	$(PY) benchmarks/gpu_check.py --device cuda

lint: install
	$(VENV)/bin/ruff check diffbench tests benchmarks scripts

clean-venv:
	rm -rf $(VENV)

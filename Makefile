# Two commands: `make demo` and `make test`. Both set everything up first.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
APT_PACKAGES := libchromaprint1 libchromaprint-tools ffmpeg chromium
STAMP  := $(VENV)/.installed

.PHONY: install system-deps demo test bench clean

install: system-deps $(STAMP)

# apt-get only for what is missing, and only as root.
system-deps:
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = "0" ]; then \
	    echo "make install: apt-get installing missing system packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	  else \
	    echo "make install: missing system packages:$$missing (run as root, or: sudo apt-get install$$missing)"; \
	  fi; \
	else echo "make install: system packages present ($(APT_PACKAGES))"; fi

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[test,bench]"
	touch $(STAMP)

demo: install
	$(BIN)/pairminer run workflows/demo.yaml

# The whole suite (CI: .ci/run). A bare `pytest` runs only the fast subset (pyproject's addopts: -m 'not slow').
test: install
	$(BIN)/python -m pytest -q -m ""

bench: install
	$(BIN)/python benchmarks/bench_discover.py --rows 1000000

clean:
	rm -rf pairminer-out .pytest_cache

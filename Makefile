# Two entry points for a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
DEMO_DATA ?= data/demo
DEMO_RUN  ?= runs/demo

.PHONY: demo test lint install system-deps clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

# Debian packages: OSMesa for offscreen MuJoCo rendering, Chromium for the gallery test,
# chromium-driver for the labelling app's browser test (Selenium).
system-deps:
	@missing=""; for p in libosmesa6 chromium chromium-driver; do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  echo "installing Debian packages:$$missing"; \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	fi

# collect → train → evaluate → gallery on a small default (a few minutes on 2 CPU cores).
demo: system-deps install
	$(BIN)/rrm-data collect out=$(DEMO_DATA)
	$(BIN)/rrm-data info data=$(DEMO_DATA)
	$(BIN)/rrm-data train-reward recipe=state_residual data=$(DEMO_DATA) out=$(DEMO_RUN) overwrite=true
	$(BIN)/rrm-data evaluate reward=$(DEMO_RUN) data=$(DEMO_DATA) split=test overwrite=true
	$(BIN)/rrm-data gallery reward=$(DEMO_RUN) data=$(DEMO_DATA) k=4 overwrite=true
	@echo "demo done: report in $(DEMO_RUN)/eval-demo-test-oracle/, gallery in $(DEMO_RUN)/gallery-demo-test/index.html"

test: system-deps install lint
	$(BIN)/pytest -n 2 --dist loadgroup --durations=15

lint: install
	$(BIN)/ruff check rrm_data tests benchmarks
	$(BIN)/mypy

clean:
	rm -rf $(VENV) data/demo runs/demo

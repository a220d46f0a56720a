# Two targets do everything: `make demo` and `make test` create .venv and install on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.spbench-installed
export HF_HUB_OFFLINE ?= 1

.PHONY: demo test install clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[test]"
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/spbench run --method spctrl --dataset sample --profile tiny --out spbench-runs

test: $(STAMP)
	$(BIN)/python -m pytest -q -n auto

clean:
	rm -rf spbench-runs .pytest_cache

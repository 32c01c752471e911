# Two commands on a fresh machine (see README):
#   make demo   create .venv if missing, run the main job on the embedded demo project
#   make test   create .venv if missing, run the test suite
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test install clean

install: $(VENV)/.installed

# Re-installs when pyproject.toml changes; torch/torchvision come from pip's local cache when present.
$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

demo: install
	$(BIN)/autonn-nas demo

test: install
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info

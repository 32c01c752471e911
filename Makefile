# Two commands on a fresh machine (see README):
#   make demo   create .venv if missing, run the main job on the embedded demo project
#   make test   create .venv if missing, run the test suite
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test install clean

install: $(VENV)/.installed

# Re-installs when pyproject.toml or constraints.txt changes; torch/torchvision come from pip's local cache when
# present. constraints.txt holds the versions the tests ran with, so a fresh install gets the same.
$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test]'
	touch $@

demo: install
	$(BIN)/autonn-nas demo

# the style check first (line length, import order, unused names: [tool.ruff] in pyproject.toml), then the suite
test: install
	$(BIN)/ruff check autonn_nas tests benchmarks project_manager_stub
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info

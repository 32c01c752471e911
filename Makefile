# Two commands on a fresh machine (see README):
#   make demo   create .venv if missing, run the main job on the embedded demo project
#   make test   create .venv if missing, run the test suite
#   make peer-bench   side by side with NNI's one-shot strategies (benchmarks/peer_nni.py), in .venv-peer
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test install clean peer-venv peer-bench

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

# the style check first (line length, import order, unused names: [tool.ruff] in pyproject.toml), then the suite in
# TEST_WORKERS processes (pytest-xdist; each test file stays in one process, so module fixtures are built once).
# On CI's 2 cores: 9.5 min with 2 workers against 16.5 min in one process.
TEST_WORKERS ?= auto
test: install
	$(BIN)/ruff check autonn_nas tests benchmarks project_manager_stub
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile

# NNI's side by side (issue 19) in its own environment, never the package's: the project with constraints.txt, then
# nni and pytorch-lightning in a second step without them (nni 3.0 needs filelock<3.12, constraints.txt pins 4.x).
PEER_VENV ?= .venv-peer
PEER_BIN := $(PEER_VENV)/bin

peer-venv: $(PEER_VENV)/.installed

$(PEER_VENV)/.installed: pyproject.toml constraints.txt benchmarks/requirements-peer.txt
	test -x $(PEER_BIN)/python || $(PYTHON) -m venv $(PEER_VENV)
	$(PEER_BIN)/python -m pip install --quiet --upgrade pip
	$(PEER_BIN)/python -m pip install --quiet -c constraints.txt -e .
	$(PEER_BIN)/python -m pip install --quiet -r benchmarks/requirements-peer.txt
	touch $@

# Hours on a 2-core CPU (benchmarks/README.md, "Against NNI"); a rerun resumes the quality part's units. The
# published tables are seed 0's (30 searches); PEER_SEEDS="0 1" runs the second seed too (twice the time).
PEER_SEEDS ?= 0
peer-bench: peer-venv
	OMP_NUM_THREADS=1 nice -n 19 $(PEER_BIN)/python benchmarks/peer_nni.py --part cost --json runs/peer/cost.json
	OMP_NUM_THREADS=1 nice -n 19 $(PEER_BIN)/python benchmarks/peer_nni.py --part quality --out runs/peer --jobs 1 --seeds $(PEER_SEEDS)

clean:
	rm -rf $(VENV) $(PEER_VENV) .pytest_cache build *.egg-info

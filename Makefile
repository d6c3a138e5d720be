# evrobust — set-up and the README's two commands.
# `make demo` and `make test` each build the virtual environment first, so both work on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.evrobust-installed

.PHONY: venv demo test lint bench clean

venv: $(STAMP)

# torch first, from the pinned CPU build (an unpinned torch pulls a multi-GB CUDA build);
# then the project; then the three libraries that declare torchvision/torchaudio, with --no-deps,
# plus the runtime packages they really import.
$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]'
	$(BIN)/pip install -q --no-deps spikingjelly==2.0.0 norse==1.1.0 snntorch==1.0.0 torchattacks==3.5.1 tonic==1.7.0
	$(BIN)/pip install -q nir==1.0.8 nirtorch==2.6 loguru scipy h5py tqdm requests importRosbag expelliarmus
	touch $(STAMP)

demo: venv
	$(BIN)/evrobust demo

test: venv
	$(BIN)/ruff check .
	cd tests && ../$(BIN)/pytest -p no:cacheprovider

lint: venv
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) build *.egg-info

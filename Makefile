# make demo : set up the core and run the main job on built-in data
# make test : set up everything (all extras) and run the test suite
# make bench: performance: planner and MaxEnt side by side with imitation's MCE IRL, samplers, Mouselab fits
# make docs : build the documentation site (strict)
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
CORE   := $(VENV)/.core-installed
ALL    := $(VENV)/.all-installed

.PHONY: demo test bench docs clean

$(PY):
	$(PYTHON) -m venv $(VENV)

# CPU torch 2.13.0 first (a CPU build is cached on these machines), unless a torch is already there,
# so that nothing later pulls a multi-GB CUDA build.
$(CORE): pyproject.toml | $(PY)
	$(PY) -c "import torch" 2>/dev/null || $(PIP) install "torch==2.13.0"
	$(PIP) install -e .
	touch $@

$(ALL): $(CORE)
	$(PIP) install -e ".[dev,docs,imitation,lightning,gymnasium,plot,bayes,fast,pandas,minari,arviz,stable-baselines3]"
	touch $@

demo: $(CORE)
	$(VENV)/bin/irl demo

test: $(ALL)
	$(PY) -m pytest -q

# every benchmark; BENCH_ARGS=--quick for the short versions (planner/MaxEnt rows < 2 min)
bench: $(ALL)
	$(PY) benchmarks/bench_mce.py $(BENCH_ARGS)
	$(PY) benchmarks/bench_bayes.py $(BENCH_ARGS)
	$(PY) benchmarks/bench_mouselab.py $(BENCH_ARGS)
	$(PY) benchmarks/bench_data.py $(BENCH_ARGS)

docs: $(ALL)
	$(VENV)/bin/mkdocs build --strict

clean:
	rm -rf $(VENV) site .pytest_cache

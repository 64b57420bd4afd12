# Two commands on a fresh Debian machine with Python 3.11:  make repro   and   make test
# Both set everything up first (once; a second run skips it) and are safe to re-run.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
FASHION_MNIST := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz

# Stages call `python`: the venv's. No telemetry, no update checks.
export PATH := $(BIN):$(PATH)
export DVC_NO_ANALYTICS := 1
export PYTHONUNBUFFERED := 1

.PHONY: setup setup-test repro review test test-fast test-bytes test-slurm lint lock grid exp bench bench-gpu lock-check \
	preset paper clean-venv slurm collect external-data

setup: $(STAMP) $(FASHION_MNIST)

# The test and lint tools, on top of the run-time packages (requirements-test.txt), and the pre-commit hook
# that refuses a commit whose dvc.lock files are stale (.githooks/pre-commit; CI's first check).
setup-test: setup $(TEST_STAMP)
	@git config core.hooksPath .githooks 2>/dev/null || true

# Debian's dataset-fashion-mnist when we can install it; otherwise the download stage falls back to
# a checksummed download of the same files.
$(FASHION_MNIST):
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist) \
		|| echo "note: could not install dataset-fashion-mnist; the download stage will fetch Fashion-MNIST"; \
	else echo "note: not root or no apt: the download stage will fetch Fashion-MNIST"; fi

# requirements.txt and requirements-test.txt are full locks (every package, transitive ones included, with its version),
# compiled from requirements.in and requirements-test.in by `make lock`.
$(STAMP): requirements.txt pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	@# No pip cache, temporaries beside the venv: where torch is not on local disk, PyPI's build is several GB, and a
	@# cached copy or a small /tmp ran a CI machine out of space.
	mkdir -p $(VENV)/tmp
	TMPDIR=$(CURDIR)/$(VENV)/tmp $(VENV)/bin/pip install -q --no-cache-dir --no-compile --disable-pip-version-check -r requirements.txt
	rm -rf $(VENV)/tmp
	$(VENV)/bin/pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	@# Bytecode on all cores instead of pip's serial pass. Without it (and with PYTHONDONTWRITEBYTECODE
	@# set, as on some machines) every stage recompiles torch on import: 4.2 s instead of 2.0 s.
	@# torch/testing holds helpers written for Python 3.12 that do not compile here (never imported).
	$(VENV)/bin/python -m compileall -q -j 0 -x '/torch/testing/' $(VENV)/lib > /dev/null
	touch $@

$(TEST_STAMP): $(STAMP) requirements-test.txt
	$(VENV)/bin/pip install -q --no-cache-dir --disable-pip-version-check -r requirements-test.txt
	touch $@

# Recompile the locks from requirements.in and requirements-test.in (for Python 3.11 on x86-64 Linux); commit both.
lock: setup-test
	uv pip compile requirements.in -o requirements.txt --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
		--no-header -q
	uv pip compile requirements-test.in -o requirements-test.txt --python-version 3.11 \
		--python-platform x86_64-manylinux_2_28 --no-header -q

# ruff's lint rules and its formatter's check (pyproject.toml [tool.ruff]); .ci/run runs it.
lint: setup-test
	ruff check .
	ruff format --check .

grid: setup
	python stages/plan_grid.py

repro: grid
	dvc repro

# The shared DVC remote (docs/cluster.md, "A shared DVC remote"): REMOTE=s3://bucket/path or a folder, and
# REMOTE_ENDPOINT=http://host:port for an S3-compatible server other than AWS. Credentials from the environment
# (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, or AWS_PROFILE); the remote goes to .dvc/config.local (not committed),
# so later calls need no REMOTE. make push: every output of every dvc.yaml and the run-cache; make pull: the same
# back (a fresh clone's make repro then runs nothing); make pull RUN=reports/presets/<name> [INTO=dir]: a preset
# run's outputs at the commit its remote.json names. ALLOW_MISSING=1: leave what the remote lacks to dvc repro.
# With REMOTE set, make review, make slurm and make collect use the remote too.
REMOTE ?=
REMOTE_ENDPOINT ?=
RUN ?=
INTO ?=
ALLOW_MISSING ?=
GIT_URL ?=
REMOTE_ARGS = $(if $(REMOTE),--remote '$(REMOTE)') $(if $(REMOTE_ENDPOINT),--endpoint '$(REMOTE_ENDPOINT)')
.PHONY: push pull
push: setup
	python tools/remote.py push $(REMOTE_ARGS)

pull: setup
	python tools/remote.py pull $(REMOTE_ARGS) $(if $(RUN),--run '$(RUN)') $(if $(INTO),--into '$(INTO)') \
		$(if $(ALLOW_MISSING),--allow-missing)

# A review report of this branch against BASE (default: the merge base with main): review/report.md and its images
# (tools/review.py): the params that changed, the focus metrics' deltas, the grid cells that changed, every changed
# plot base against branch. It runs dvc repro first (cached stages are restored, not run).
BASE ?=
review: grid
	python tools/review.py $(if $(BASE),--base '$(BASE)') --out review $(REMOTE_ARGS)

# TEST_WORKERS pytest processes (pytest-xdist), sharing one end-to-end base repository (tests/test_e2e.py); worksteal: an
# idle worker takes tests queued on the busy one (plain load scheduling left every end-to-end test on one). PASSIVE: idle
# OpenMP threads sleep instead of spinning, so parallel workers' torch threads do not starve each other.
TEST_WORKERS ?= 2
test: setup-test
	OMP_WAIT_POLICY=PASSIVE python -m pytest -q -n $(TEST_WORKERS) --dist worksteal --durations=8 --timeout 1500 -m "not cluster"

# The edit-test loop: every test but the end-to-end DVC runs, the cluster and the CPU-bytes probe, a minute or two.
test-fast: setup-test
	OMP_WAIT_POLICY=PASSIVE python -m pytest -q -n $(TEST_WORKERS) --durations=5 --timeout 300 \
		-m "not slow and not cluster and not cpu_bytes"

# Does this CPU round as the machines that wrote the committed dvc.lock files do? (tests/test_training.py; make test
# runs it too). A failure says the locks will not reproduce bit for bit here, not that anything is broken.
test-bytes: setup-test
	python -m pytest -q -m cpu_bytes tests/test_training.py

# The SLURM tests (tests/test_slurm.py, marked cluster): install Debian's slurm and munge if missing (root),
# start a one-node SLURM in a temp folder, run the grid through it, stop it. About 9 minutes on 2 cores.
test-slurm: setup-test
	python -m pytest -q --durations=8 -m cluster tests/test_slurm.py

# Each experiment's changed params with its focus CA, ASR and fine-tuned ASR (dvc exp show has a column per
# param and dependency hash: unreadable even at 200 columns).
exp: setup
	@python tools/exp_table.py

bench: setup
	python benchmarks/train_throughput.py

# The GPU figures in one results file, reports/bench/gpu.json (benchmarks/gpu.py): throughput and MFU of small-cnn,
# resnet18 and resnet50 at CIFAR shape, a ResNet-18 CIFAR-10 recipe, one paper-preset cell end to end. About 10 min
# on one H200; on a machine without CUDA it says so and exits 0. Offline: make external-data first (CIFAR-10 JPEGs).
bench-gpu: setup
	python -m benchmarks.gpu --out reports/bench/gpu.json

# Fails when a committed dvc.lock no longer matches the code, parameters or commands it locks (tools/check_lock.py):
# `make repro` and a commit of the dvc.lock files it writes fix it. CI runs it first (.ci/run).
lock-check: setup
	python tools/check_lock.py

clean-venv:
	rm -rf $(VENV)

# Make a preset the experiment: make preset PRESET=triggers-cpu lays presets/triggers-cpu.yaml (only the keys it
# changes) on params.yaml, keeping its comments; refuses to overwrite an edited params.yaml.
# SEEDS="1 2": only those of the preset's seeds (one part of a run kept in parts: tools/join_parts.py).
PRESET ?=
SEEDS ?=
preset: setup
	@git diff --quiet -- params.yaml || { echo "params.yaml has uncommitted changes: commit or stash them first (git stash), then make preset again"; exit 2; }
	python tools/preset.py $(PRESET) $(if $(SEEDS),--seeds $(SEEDS))

# Paper-scale grid on a GPU machine: one cell per GPU at a time, e.g. make paper GPUS=0,1,2,3
GPUS ?= 0
paper: setup
	$(MAKE) preset PRESET=paper
	python tools/run_grid.py --gpus $(GPUS)

# The pipeline on a SLURM cluster (docs/cluster.md): one job array per layer of the stage graph,
# each stage in a throwaway clone on the node, the shared DVC cache CACHE as the only shared state. Then, once
# `squeue --me` shows no job left, `make collect` restores every finished stage from the run-cache.
#   make slurm PARTITION=gpu GPUS_PER_JOB=1 MAX_JOBS=32 CACHE=/shared/dvc-cache
# Optional: ACCOUNT, TIME (per stage), SBATCH_ARGS (more sbatch options), TARGETS (default: what dvc repro runs),
# DRY_RUN=1 (print the sbatch commands, submit nothing). No shared file system: REMOTE=s3://... instead of CACHE (jobs
# pull from and push to it, and clone the commit from GIT_URL, default origin's URL), then make collect REMOTE=...
PARTITION ?=
ACCOUNT ?=
TIME ?=
GPUS_PER_JOB ?= 1
MAX_JOBS ?= 32
CACHE ?=
SBATCH_ARGS ?=
TARGETS ?=
slurm: setup
	python tools/slurm_grid.py submit $(if $(PARTITION),--partition '$(PARTITION)') $(if $(ACCOUNT),--account '$(ACCOUNT)') \
		$(if $(TIME),--time '$(TIME)') --gpus-per-job '$(GPUS_PER_JOB)' --max-jobs '$(MAX_JOBS)' $(REMOTE_ARGS) \
		$(if $(CACHE),--cache '$(CACHE)') $(if $(SBATCH_ARGS),--sbatch-args='$(SBATCH_ARGS)') $(if $(DRY_RUN),--dry-run) $(if $(GIT_URL),--git-url '$(GIT_URL)') $(TARGETS)

collect: setup
	python tools/slurm_grid.py collect $(if $(CACHE),--cache '$(CACHE)') $(REMOTE_ARGS) $(TARGETS)

# The real CIFAR-10 (JPEG) and Flowers (160 px) copies of a machine without internet, $(SHARED)/data/*.tar.gz:
# checked against their sha256, then extracted to data/external/ for presets/{cifar10,flowers}-cpu.yaml.
# With internet, use dataset: cifar10 / flowers instead (docs/results.md, "Natural images").
SHARED ?= ../shared
EXTERNAL_SHA256 := cifar10-jpeg=b379c20532d0d7113e4257fb4fe37c05481e5a503319cd10c2de3889728c9e18 \
	flowers-160=21553a744697ae8fc62ca4a516a2d5021afb536a2d3bb7f0a936b67e77a72d1b
external-data:
	@mkdir -p data/external
	@for entry in $(EXTERNAL_SHA256); do name=$${entry%%=*}; sum=$${entry#*=}; file=$(SHARED)/data/$$name.tar.gz; \
		if [ -d data/external/$$name ]; then echo "data/external/$$name: already there"; continue; fi; \
		test -f $$file || { echo "SHARED: no $$file (set SHARED to the folder holding data/$$name.tar.gz)"; exit 2; }; \
		echo "$$sum  $$file" | sha256sum -c --quiet - || { echo "$$file: sha256 mismatch, not extracted"; exit 2; }; \
		rm -rf data/external/.$$name.tmp && mkdir data/external/.$$name.tmp && \
		tar -xzf $$file -C data/external/.$$name.tmp && mv data/external/.$$name.tmp/$$name data/external/$$name && \
		rmdir data/external/.$$name.tmp && echo "data/external/$$name: extracted"; done

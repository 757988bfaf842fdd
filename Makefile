# The two commands of the README:  `make run` (install, then the workflow on the embedded default)
# and `make test` (install, then the test suite). Both create .venv on first use.
VENV ?= .venv
CORES ?= 2
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: install run test dry-run clean slurm-profile test-slurm

$(VENV)/.installed: pyproject.toml envs/requirements.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --upgrade pip
	# torch first and pinned: an unpinned torch would pull several GB of CUDA packages
	$(VENV)/bin/python -m pip install -q torch==2.13.0
	$(VENV)/bin/python -m pip install -q -r envs/requirements.txt -e .
	touch $@

install: $(VENV)/.installed

run: install
	snakemake --cores $(CORES)

dry-run: install
	snakemake --cores $(CORES) --dry-run

test: install
	ruff format --check .
	ruff check .
	pytest -q
	$(MAKE) --no-print-directory test-slurm

# The real-cluster test of the Slurm profile: installs Slurm from Debian's packages, starts a
# one-node cluster, runs the smoke workflow through sbatch (root; README "Running on a Slurm cluster").
test-slurm: install
	bash tests/slurm/run.sh

# Installs profiles/slurm as the user's `slurm` profile, so that `snakemake --profile slurm` finds it.
SLURM_PROFILE_DIR ?= $(or $(XDG_CONFIG_HOME),$(HOME)/.config)/snakemake/slurm
slurm-profile:
	@test -n "$(SLURM_ACCOUNT)" -a -n "$(SLURM_PARTITION)" || { echo "usage: make slurm-profile" \
	  "SLURM_ACCOUNT=<account> SLURM_PARTITION=<partition>  (yours: sacctmgr -n show assoc user=$$USER" \
	  "format=account; sinfo -s)" >&2; exit 2; }
	mkdir -p $(SLURM_PROFILE_DIR)
	sed -e 's/YOUR_ACCOUNT/$(SLURM_ACCOUNT)/' -e 's/YOUR_PARTITION/$(SLURM_PARTITION)/' \
	  profiles/slurm/profile.yaml >$(SLURM_PROFILE_DIR)/profile.yaml
	@echo "installed $(SLURM_PROFILE_DIR)/profile.yaml: run the workflow with snakemake --profile slurm"

clean:
	rm -rf results logs .snakemake

# The two commands of the README:  `make run` (install, then the workflow on the embedded default)
# and `make test` (install, then the test suite). Both create .venv on first use.
VENV ?= .venv
CORES ?= 2
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: install run test dry-run clean

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
	pytest -q

clean:
	rm -rf results logs .snakemake

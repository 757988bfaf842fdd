import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):  # as the CLI sets them (lmforecast/cli.py)
    os.environ.setdefault(_var, "1")

import pytest
from smoke import copy_workflow, snakemake

from lmforecast.data import tokenizer as tokenizer_lib
from lmforecast.data.world import DOMAINS, domain_documents
from lmforecast.settings import World

TINY_WORLD = World(seed=0, n_entities=12, train_docs=60, valid_docs=5, sft_examples=12, eval_examples=10)


@pytest.fixture(scope="session")
def tiny_world():
    return TINY_WORLD


@pytest.fixture(scope="session")
def tiny_tokenizer(tmp_path_factory):
    """A BPE tokenizer trained on the tiny world, saved in HF format; returns its directory."""
    texts = [d for dom in DOMAINS for d in domain_documents(TINY_WORLD, dom, "train")]
    directory = tmp_path_factory.mktemp("tokenizer")
    tokenizer_lib.save_hf(tokenizer_lib.train_tokenizer(texts, 300, sentinels=16), directory, model_max_length=64)
    return directory


@pytest.fixture(scope="session")
def finished(tmp_path_factory):
    """A directory where the smoke workflow ran to the end (once per session: test_workflow and test_report share it)."""
    workdir = copy_workflow(tmp_path_factory.mktemp("smoke"))
    snakemake(workdir)
    return workdir

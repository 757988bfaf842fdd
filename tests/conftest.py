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


@pytest.fixture(scope="session")
def tiny_run():
    """A tiny run's spec, as config.run_spec makes them (tiny_checkpoints trains it)."""
    return {
        "name": "tiny",
        "size": {"d_model": 16, "n_layers": 1, "n_heads": 2},
        "size_name": "xs",
        "tokens": 12 * 2 * 16,
        "mixture": {"facts": 0.4, "arithmetic": 0.2, "code": 0.2, "prose": 0.2},
        "mixture_name": "m",
        "objective": "clm",
        "lr": 5e-3,
        "seed": 0,
        "steps_total": 12,
    }


@pytest.fixture(scope="session")
def shards(tiny_tokenizer, tmp_path_factory):
    """The tiny world's training documents tokenized as the tokenize rule does, a .npy per domain: domain -> path."""
    import numpy as np

    from lmforecast.data.shards import encode_documents

    tok, d = tokenizer_lib.load(tiny_tokenizer), tmp_path_factory.mktemp("shards")
    paths = {}
    for domain in DOMAINS:
        paths[domain] = d / f"{domain}.npy"
        np.save(paths[domain], encode_documents(tok, domain_documents(TINY_WORLD, domain, "train"), 0))
    return paths


@pytest.fixture(scope="session")
def tiny_checkpoints(tiny_run, tiny_tokenizer, shards, tmp_path_factory):
    """The checkpoint directories of the tiny run trained as the workflow does: a segment of two checkpoints
    (steps 3 inside, 8) and one resumed from it (step 12); the aggregate and report tests read them."""
    from lmforecast.settings import Pretrain
    from lmforecast.train.loop import train_segment

    d = tmp_path_factory.mktemp("tiny_run")
    training = {"seq_len": 16, "batch_size": 2, "schedule": "cosine", "warmup_frac": 0.1, "min_lr_frac": 0.1}
    training |= {"weight_decay": 0.1, "grad_clip": 1.0, "checkpoints": 3, "checkpoints_per_segment": 2, "log_every": 1000}
    spec = Pretrain.from_dict({"run": tiny_run, "training": training})
    quiet = lambda m: None  # noqa: E731
    train_segment(spec, 0, 8, shards, tiny_tokenizer, None, d / "step8", log=quiet, save_steps=[3])
    train_segment(spec, 8, 12, shards, tiny_tokenizer, d / "step8", d / "step12", log=quiet)
    return [d / "step8" / "step3", d / "step8", d / "step12"]

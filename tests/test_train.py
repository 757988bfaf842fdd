import numpy as np
import pytest
import torch
from tiny import TRAINING

from lmforecast.data.shards import get_batch
from lmforecast.io import read_json
from lmforecast.settings import Pretrain, Training
from lmforecast.train.loop import TRAINER_STATE, lr_at, train_segment
from lmforecast.train.model import load_model

MIXTURE = {"facts": 0.4, "arithmetic": 0.2, "code": 0.2, "prose": 0.2}


def make_run(**kw):
    """A run spec, as config.run_spec makes them."""
    run = {
        "name": "r",
        "size": {"d_model": 32, "n_layers": 2, "n_heads": 2},
        "size_name": "s",
        "tokens": 40 * 128,
        "mixture": MIXTURE,
        "mixture_name": "m",
        "objective": "clm",
        "lr": 5e-3,
        "seed": 0,
        "steps_total": 40,
    }
    return {**run, **kw}


def job(run=None, training=TRAINING) -> Pretrain:
    """A pretrain job's settings, as the CLI builds them from the rule's spec."""
    return Pretrain.from_dict({"run": run or make_run(), "training": training})


def weights(path):
    return {k: v.clone() for k, v in load_model(path).state_dict().items()}


def test_batches_follow_the_mixture_and_depend_only_on_seed_and_step(shards):
    data = {d: np.load(p) for d, p in shards.items()}
    rows1, _ = get_batch(data, MIXTURE, 0, 7, 4, 32)
    rows2, _ = get_batch(data, MIXTURE, 0, 7, 4, 32)
    assert rows1.shape == (4, 33) and torch.equal(rows1, rows2)
    counts = {d: 0 for d in MIXTURE}
    for step in range(300):
        for d, n in get_batch(data, MIXTURE, 0, step, 4, 32)[1].items():
            counts[d] += n
    total = sum(counts.values())
    assert abs(counts["facts"] / total - 0.4) < 0.05


def test_schedule_warms_up_then_decays_to_the_floor():
    cosine = Training.from_dict({**TRAINING, "schedule": "cosine", "warmup_frac": 0.1, "min_lr_frac": 0.1})
    assert lr_at(0, 100, 1.0, cosine) == pytest.approx(0.1)
    assert lr_at(9, 100, 1.0, cosine) == pytest.approx(1.0)
    assert lr_at(55, 100, 1.0, cosine) == pytest.approx(0.55)  # half way through the decay: the mean of peak and floor
    assert lr_at(100, 100, 1.0, cosine) == pytest.approx(0.1)


@pytest.mark.parametrize("shape,quarter", [("linear", 0.1 + 0.9 * 0.75), ("1-sqrt", 0.1 + 0.9 * 0.5)])
def test_wsd_is_constant_then_decays_over_the_last_steps(shape, quarter):
    wsd = Training.from_dict(
        {**TRAINING, "schedule": "wsd", "warmup_frac": 0.1, "min_lr_frac": 0.1, "decay_frac": 0.2, "decay_shape": shape}
    )
    assert lr_at(0, 100, 1.0, wsd) == pytest.approx(0.1)
    assert [lr_at(s, 100, 1.0, wsd) for s in (9, 40, 79, 80)] == pytest.approx([1.0] * 4)  # stable until the decay starts at 80
    assert lr_at(85, 100, 1.0, wsd) == pytest.approx(quarter)  # a quarter into the decay
    assert lr_at(100, 100, 1.0, wsd) == pytest.approx(0.1)


def test_loss_falls_and_resumed_segments_equal_one_uninterrupted_run(shards, tiny_tokenizer, tmp_path):
    run = make_run()
    full = train_segment(job(run), 0, 40, shards, tiny_tokenizer, None, tmp_path / "full", log=lambda m: None)
    train_segment(job(run), 0, 20, shards, tiny_tokenizer, None, tmp_path / "a", log=lambda m: None)
    resumed = train_segment(job(run), 20, 40, shards, tiny_tokenizer, tmp_path / "a", tmp_path / "b", log=lambda m: None)
    first = read_json(tmp_path / "a" / TRAINER_STATE)
    assert resumed["train_loss"] < first["train_loss"] < 5.7  # ln(300) = 5.70 is the untrained loss
    a, b = weights(tmp_path / "full"), weights(tmp_path / "b")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert full["tokens"] == 40 * 4 * 32 and resumed["tokens_per_domain"] == full["tokens_per_domain"]
    assert not list(tmp_path.glob(".tmp-*"))


def test_a_segment_of_several_checkpoints_writes_those_of_one_job_each(shards, tiny_tokenizer, tmp_path):
    """training.checkpoints_per_segment: one job writing steps 10, 25 (inside) and 40 gives the
    checkpoints, trainer states and resume states of three jobs chained 0-10, 10-25, 25-40."""
    run, quiet = make_run(), (lambda m: None)
    grouped = {**TRAINING, "checkpoints": 3, "checkpoints_per_segment": 3}
    train_segment(job(run, grouped), 0, 40, shards, tiny_tokenizer, None, tmp_path / "seg", log=quiet, save_steps=[10, 25])
    single = {**TRAINING, "checkpoints": 3}
    train_segment(job(run, single), 0, 10, shards, tiny_tokenizer, None, tmp_path / "10", log=quiet)
    train_segment(job(run, single), 10, 25, shards, tiny_tokenizer, tmp_path / "10", tmp_path / "25", log=quiet)
    train_segment(job(run, single), 25, 40, shards, tiny_tokenizer, tmp_path / "25", tmp_path / "40", log=quiet)
    for mine, theirs in (
        (tmp_path / "seg" / "step10", tmp_path / "10"),
        (tmp_path / "seg" / "step25", tmp_path / "25"),
        (tmp_path / "seg", tmp_path / "40"),
    ):
        a, b = weights(mine), weights(theirs)
        assert all(torch.equal(a[k], b[k]) for k in a)
        assert read_json(mine / TRAINER_STATE) == read_json(theirs / TRAINER_STATE)
        # the manifests agree too (the grouping is not part of the config hash): either resumes the next segment
        assert read_json(mine / "manifest.json") == read_json(theirs / "manifest.json")
    with pytest.raises(ValueError, match=r"save_steps \[40\]: expected steps between 0 and 40"):
        train_segment(job(run, grouped), 0, 40, shards, tiny_tokenizer, None, tmp_path / "bad", log=quiet, save_steps=[40])
    assert not (tmp_path / "bad").exists() and not list(tmp_path.glob(".tmp-*"))


def test_same_seed_same_weights_other_seed_other_weights(shards, tiny_tokenizer, tmp_path):
    for name, seed in (("x", 0), ("y", 0), ("z", 1)):
        train_segment(job(make_run(seed=seed)), 0, 5, shards, tiny_tokenizer, None, tmp_path / name, log=lambda m: None)
    x, y, z = (weights(tmp_path / n) for n in "xyz")
    assert all(torch.equal(x[k], y[k]) for k in x)
    assert not all(torch.equal(x[k], z[k]) for k in x)


def test_resume_from_a_checkpoint_at_the_wrong_step_is_refused(shards, tiny_tokenizer, tmp_path):
    train_segment(job(), 0, 5, shards, tiny_tokenizer, None, tmp_path / "a", log=lambda m: None)
    with pytest.raises(ValueError, match="checkpoint is at step 5, segment expects 10"):
        train_segment(job(), 10, 20, shards, tiny_tokenizer, tmp_path / "a", tmp_path / "b")


def test_corrupted_or_truncated_checkpoint_is_named_and_refused(shards, tiny_tokenizer, tmp_path):
    from lmforecast.train.checkpoint import CheckpointError, verify

    train_segment(job(), 0, 5, shards, tiny_tokenizer, None, tmp_path / "a", log=lambda m: None)
    assert verify(tmp_path / "a")["step"] == 5
    weights_file = tmp_path / "a" / "model.safetensors"
    data = weights_file.read_bytes()
    weights_file.write_bytes(data[: len(data) // 2])  # truncated, as by a full disk
    with pytest.raises(CheckpointError, match="model.safetensors: checksum mismatch"):
        train_segment(job(), 5, 10, shards, tiny_tokenizer, tmp_path / "a", tmp_path / "b")
    weights_file.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))  # one flipped bit
    with pytest.raises(CheckpointError, match="model.safetensors: checksum mismatch"):
        verify(tmp_path / "a")
    assert not (tmp_path / "b").exists()


def test_resume_with_another_config_is_refused(shards, tiny_tokenizer, tmp_path):
    from lmforecast.train.checkpoint import CheckpointError

    train_segment(job(), 0, 5, shards, tiny_tokenizer, None, tmp_path / "a", log=lambda m: None)
    with pytest.raises(CheckpointError, match="trained with another run or training config"):
        train_segment(job(make_run(lr=1e-3)), 5, 10, shards, tiny_tokenizer, tmp_path / "a", tmp_path / "b")


def test_bf16_trains_through_accelerate_and_resumes_exactly(shards, tiny_tokenizer, tmp_path):
    """bf16 autocast (accelerate's, on the CPU here): another arithmetic than fp32, float32 weights, loss falls, exact resume."""
    bf16 = {**TRAINING, "precision": "bf16"}
    run = make_run(steps_total=20)
    logs = []
    full = train_segment(job(run, bf16), 0, 20, shards, tiny_tokenizer, None, tmp_path / "full", log=logs.append)
    train_segment(job(run, bf16), 0, 10, shards, tiny_tokenizer, None, tmp_path / "a", log=lambda m: None)
    train_segment(job(run, bf16), 10, 20, shards, tiny_tokenizer, tmp_path / "a", tmp_path / "b", log=lambda m: None)
    train_segment(job(run), 0, 20, shards, tiny_tokenizer, None, tmp_path / "fp32", log=lambda m: None)
    assert "device cpu, precision bf16" in logs[0]
    assert full["train_loss"] < read_json(tmp_path / "a" / TRAINER_STATE)["train_loss"] < 5.7
    full_w, resumed, fp32 = weights(tmp_path / "full"), weights(tmp_path / "b"), weights(tmp_path / "fp32")
    assert all(v.dtype == torch.float32 for v in full_w.values())
    assert all(torch.equal(full_w[k], resumed[k]) for k in full_w)
    assert not all(torch.equal(full_w[k], fp32[k]) for k in full_w)  # autocast did change the arithmetic


def test_precision_is_part_of_the_checkpoint_config_and_fp32_is_the_default(shards, tiny_tokenizer, tmp_path):
    from lmforecast.train.checkpoint import CheckpointError

    train_segment(job(), 0, 5, shards, tiny_tokenizer, None, tmp_path / "a", log=lambda m: None)
    explicit = train_segment(
        job(make_run(), {**TRAINING, "precision": "fp32"}),
        5,
        10,
        shards,
        tiny_tokenizer,
        tmp_path / "a",
        tmp_path / "b",
        log=lambda m: None,
    )
    assert explicit["step"] == 10  # a checkpoint written without the field resumes under an explicit fp32
    with pytest.raises(CheckpointError, match="trained with another run or training config"):
        train_segment(
            job(make_run(), {**TRAINING, "precision": "bf16"}), 5, 10, shards, tiny_tokenizer, tmp_path / "a", tmp_path / "c"
        )
    # an unknown precision is refused by config validation, before any job (tests/test_config.py)

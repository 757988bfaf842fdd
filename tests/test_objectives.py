import numpy as np
import pytest
import torch
from test_train import job, make_run

from lmforecast.io import read_json
from lmforecast.train import objectives
from lmforecast.train.loop import TRAINER_STATE, train_segment
from lmforecast.train.model import Llama, ModelConfig
from lmforecast.train.objectives import IGNORE, make_batch, random_spans_noise_mask, span_corrupt, to_batch

SENTINELS = [100, 101, 102, 103, 104, 105, 106, 107]


@pytest.fixture
def one_thread():
    """Training on one thread, as the pretrain jobs do (on a shared 2-core machine, 2 threads are several times slower)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def reconstruct(seq, prefix_len, sentinels):
    """Undo a span corruption: put each sentinel's span (from the targets) back into the input."""
    corrupted, targets = list(seq[:prefix_len]), list(seq[prefix_len:])
    spans, current = {}, None
    for t in targets:
        if t in sentinels:
            current = spans.setdefault(t, [])
        else:
            current.append(t)
    return [x for t in corrupted for x in (spans[t] if t in sentinels else [t])]


def test_prefix_lm_mask_is_bidirectional_in_the_prefix_and_causal_after():
    seq = np.arange(10, 19)  # 9 tokens: input_ids of 8 positions
    ids, mask, labels = to_batch([(seq, 3)], 8, pad=0)
    expected = ["11100000", "11100000", "11100000", "11110000", "11111000", "11111100", "11111110", "11111111"]
    assert mask.shape == (1, 1, 8, 8)
    assert ["".join("1" if v else "0" for v in row) for row in mask[0, 0].tolist()] == expected
    assert ids[0].tolist() == list(range(10, 18))
    # No loss inside the prefix; the last prefix position predicts the first token after it.
    assert labels[0].tolist() == [IGNORE, IGNORE, 13, 14, 15, 16, 17, 18]


def test_the_mask_is_what_the_model_sees():
    torch.manual_seed(0)
    model = Llama(ModelConfig(vocab_size=32, d_model=16, n_layers=1, n_heads=2, seq_len=8)).eval()
    seq = np.arange(1, 10)
    ids, mask, _ = to_batch([(seq, 4)], 8, pad=0)
    changed_prefix, changed_target = ids.clone(), ids.clone()
    changed_prefix[0, 3] = 30  # the last prefix token
    changed_target[0, 6] = 30
    with torch.no_grad():
        base, p, t = (model(x, attn_mask=mask)[0] for x in (ids, changed_prefix, changed_target))
    assert not torch.allclose(base[0], p[0])  # the first position sees the whole prefix
    assert torch.equal(base[:6], t[:6])  # nothing before a target token sees it
    assert not torch.allclose(base[6], t[6])


def test_span_corruption_by_hand():
    tokens = np.arange(10, 20)
    noise = np.array([0, 0, 1, 1, 0, 0, 0, 1, 0, 0], dtype=bool)
    seq, prefix_len = span_corrupt(tokens, noise, SENTINELS)
    assert seq[:prefix_len].tolist() == [10, 11, 100, 14, 15, 16, 101, 18, 19]
    assert seq[prefix_len:].tolist() == [100, 12, 13, 101, 17]
    assert reconstruct(seq.tolist(), prefix_len, SENTINELS) == tokens.tolist()
    ids, mask, labels = to_batch([(seq, prefix_len)], len(seq) - 1, pad=0)
    assert labels[0].tolist() == [IGNORE] * 8 + [100, 12, 13, 101, 17]  # loss on the targets only
    assert mask[0, 0, :9, :9].all() and not mask[0, 0, 9, 10:].any()


def test_random_spans_have_t5s_counts_and_reconstruct_the_original():
    rng = np.random.default_rng(0)
    for n in (2, 7, 33, 60, 117):
        tokens = rng.integers(0, 90, size=n)
        for density, mean_span in ((0.15, 3.0), (0.5, 8.0)):
            mask = random_spans_noise_mask(n, density, mean_span, rng)
            noise, spans = objectives.span_counts(n, density, mean_span)
            starts = mask & ~np.concatenate([[False], mask[:-1]])
            assert mask.sum() == noise and starts.sum() == spans and not mask[0] and mask[-1]
            seq, p = span_corrupt(tokens, mask, SENTINELS)
            assert [t for t in seq[:p] if t in SENTINELS] == SENTINELS[:spans]  # sentinels in order
            assert reconstruct(seq.tolist(), p, SENTINELS) == tokens.tolist()


@pytest.mark.parametrize("objective", objectives.OBJECTIVES)
def test_batches_fit_the_row_and_depend_only_on_seed_and_step(objective):
    rows = torch.from_numpy(np.random.default_rng(1).integers(0, 90, size=(16, 65)))
    x, mask, y = make_batch(objective, rows, 0, 7, SENTINELS, pad=0)
    again = make_batch(objective, rows, 0, 7, SENTINELS, pad=0)
    other = make_batch(objective, rows, 0, 8, SENTINELS, pad=0)
    assert x.shape == y.shape == (16, 64)
    assert torch.equal(x, again[0]) and torch.equal(y, again[2])
    if objective == "clm":
        assert mask is None and torch.equal(y, rows[:, 1:])
        return
    assert torch.equal(mask, again[1]) and not torch.equal(y, other[2])
    for r in range(16):
        scored = (y[r] != IGNORE).nonzero()[:, 0]
        p = int(scored[0]) + 1  # prefix length: the first scored position is the prefix's last
        has_sentinels = bool(np.isin(x[r].numpy(), SENTINELS).any())
        if not has_sentinels:  # prefix LM: the row's own tokens, loss on every token after the prefix
            assert torch.equal(x[r], rows[r, :-1]) and torch.equal(y[r, p - 1 :], rows[r, p:])
        else:
            seq = x[r, :p].tolist() + [t for t in y[r].tolist() if t != IGNORE]
            original = reconstruct(seq, p, SENTINELS)
            assert original == rows[r, : len(original)].tolist()
        assert mask[r, 0, :p, :p].all() and not mask[r, 0, p - 1, p:].any()


def test_ul2_mixes_prefix_lm_and_span_corruption_by_its_weights():
    rows = torch.from_numpy(np.random.default_rng(1).integers(0, 90, size=(8, 129)))
    prefix_rows = 0
    for step in range(100):
        x, _, _ = make_batch("ul2", rows, 0, step, SENTINELS, pad=0)
        prefix_rows += int((~torch.from_numpy(np.isin(x.numpy(), SENTINELS)).any(1)).sum())
    assert abs(prefix_rows / 800 - 0.5) < 0.06  # S-denoiser weight 1/2


@pytest.mark.parametrize("objective", objectives.OBJECTIVES)
def test_loss_falls_with_each_objective(objective, shards, tiny_tokenizer, tmp_path, one_thread):
    spec = job(make_run(objective=objective, steps_total=40))
    train_segment(spec, 0, 3, shards, tiny_tokenizer, None, tmp_path / "a", log=lambda m: None)
    last = train_segment(spec, 3, 40, shards, tiny_tokenizer, tmp_path / "a", tmp_path / "b", log=lambda m: None)
    first = read_json(tmp_path / "a" / TRAINER_STATE)
    assert first["train_loss"] > 5.0  # about ln(316), the untrained loss
    assert last["train_loss"] < first["train_loss"] - 1.0

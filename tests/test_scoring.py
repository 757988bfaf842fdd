import math

import pytest
import torch

from lmforecast.model import Llama, ModelConfig
from lmforecast.scoring import choice_metrics, span_logprobs


def test_batched_span_logprobs_equal_one_sequence_at_a_time():
    torch.manual_seed(0)
    model = Llama(ModelConfig(vocab_size=50, d_model=16, n_layers=1, n_heads=2, seq_len=32))
    g = torch.Generator().manual_seed(1)
    seqs = [torch.randint(0, 50, (n,), generator=g).tolist() for n in (5, 17, 9, 30, 2)]
    starts = [2, 10, 1, 25, 1]
    batched = span_logprobs(model, seqs, starts, max_len=31, batch_tokens=40)
    for seq, start, (lp, n, _) in zip(seqs, starts, batched):
        with torch.no_grad():
            logp = torch.log_softmax(model(torch.tensor([seq[:-1]])), -1)[0]
        expected = sum(logp[i - 1, seq[i]].item() for i in range(start, len(seq)))
        assert lp == pytest.approx(expected, abs=1e-4) and n == len(seq) - start


def test_choice_metrics_by_hand():
    ll = [math.log(0.5), math.log(0.2), math.log(0.1)]
    m = choice_metrics(ll, [1, 2, 1], ["aa", "b", "cccc"], gold=1)
    assert m["acc"] == 0.0  # choice 0 has the highest log-likelihood
    assert m["acc_norm"] == 0.0  # per char: 0.5 -> -0.35, 0.2 -> -1.61, 0.1 -> -0.58
    assert m["correct_prob"] == pytest.approx(0.2)
    assert m["margin"] == pytest.approx(0.2 - 0.5)
    assert m["norm_correct_prob"] == pytest.approx(0.2 / 0.8)
    assert m["correct_prob_per_token"] == pytest.approx(math.sqrt(0.2))
    assert m["bits_per_byte"] == pytest.approx(-math.log2(0.2))
    assert choice_metrics(ll, [1, 1, 1], ["a", "b", "c"], gold=0)["acc"] == 1.0

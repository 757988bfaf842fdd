import math

import pytest
import torch

from lmforecast.data import tokenizer as tokenizer_lib
from lmforecast.measure.lm import LlamaLM
from lmforecast.measure.scoring import choice_metrics, encode_choices, encode_pair, group_logprobs, span_logprobs
from lmforecast.train.model import Llama, ModelConfig


def _lm(model, tiny_tokenizer):
    """The model as an LM; tests that score token ids directly use no tokenizer, so any one will do."""
    return LlamaLM(model, tokenizer_lib.load(tiny_tokenizer))


def test_batched_span_logprobs_equal_one_sequence_at_a_time(tiny_tokenizer):
    torch.manual_seed(0)
    model = Llama(ModelConfig(vocab_size=50, d_model=16, n_layers=1, n_heads=2, seq_len=32))
    g = torch.Generator().manual_seed(1)
    seqs = [torch.randint(0, 50, (n,), generator=g).tolist() for n in (5, 17, 9, 30, 2)]
    starts = [2, 10, 1, 25, 1]
    batched = span_logprobs(_lm(model, tiny_tokenizer), seqs, starts, batch_tokens=40)
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
    assert m["ppl_correct"] == pytest.approx(1 / math.sqrt(0.2)) and m["tokens_correct"] == 2
    assert m["bits_per_byte"] == pytest.approx(-math.log2(0.2))
    assert choice_metrics(ll, [1, 1, 1], ["a", "b", "c"], gold=0)["acc"] == 1.0


def _separate_logprob(model, seq, start, max_len):
    """One sequence on its own: left-truncated as documented, a plain causal forward pass."""
    cut = max(0, len(seq) - (max_len + 1))
    seq, start = seq[cut:], max(1, start - cut)
    with torch.no_grad():
        logp = torch.log_softmax(model(torch.tensor([seq[:-1]])).double(), -1)[0]
    targets = torch.tensor(seq[start:])
    rows = logp[start - 1 : len(seq) - 1]
    return rows.gather(-1, targets[:, None]).sum().item(), len(seq) - start, bool((rows.argmax(-1) == targets).all())


@pytest.mark.parametrize("dtype, tol", [(torch.float32, 1e-5), (torch.float64, 1e-10)])
def test_packed_choices_equal_separate_sequences(dtype, tol, tiny_tokenizer):
    torch.manual_seed(0)
    model = Llama(ModelConfig(vocab_size=50, d_model=16, n_layers=2, n_heads=2, seq_len=24)).to(dtype)
    lm = _lm(model, tiny_tokenizer)
    assert lm.max_len == 24
    g = torch.Generator().manual_seed(2)
    rand = lambda n: torch.randint(1, 50, (n,), generator=g).tolist()  # noqa: E731
    groups = []
    for ctx_len, cont_lens in [(10, [1, 3, 2, 5]), (3, [4, 4]), (6, [1, 1, 1]), (22, [1, 4, 2])]:
        ctx = [0] + rand(ctx_len)  # the last group's longer choices are cut on the left, differently
        groups.append([(ctx + rand(n), len(ctx)) for n in cont_lens])
    # A choice whose context tokens differ (as when tokenization merges across the boundary) and an empty continuation.
    ctx = [0] + rand(8)
    groups.append([(ctx + rand(3), len(ctx)), (ctx[:-1] + rand(4), len(ctx) - 1), (ctx, len(ctx))])
    calls = []
    hidden = lm.hidden  # the scorer runs the body, then the output head at scored positions only
    lm.hidden = lambda ids, attn_mask=None, position_ids=None: (
        calls.append(attn_mask is not None) or hidden(ids, attn_mask, position_ids)
    )
    for batch_tokens in (30, 4096):
        calls.clear()
        got = group_logprobs(lm, groups, batch_tokens=batch_tokens)
        assert any(calls)  # some rows were packed trees
        for group, scored in zip(groups, got):
            for (seq, start), (lp, n, greedy) in zip(group, scored):
                exp_lp, exp_n, exp_greedy = _separate_logprob(model, seq, start, 24)
                assert lp == pytest.approx(exp_lp, abs=tol) and (n, greedy) == (exp_n, exp_greedy)
    assert got[-1][2] == (0.0, 0, True)


def test_explicit_positions_and_mask_equal_the_default_causal_forward():
    torch.manual_seed(0)
    model = Llama(ModelConfig(vocab_size=50, d_model=16, n_layers=2, n_heads=2, seq_len=32))
    for block in model.model.layers:  # sharpen attention, so that positions matter well above rounding
        for proj in (block.self_attn.q_proj, block.self_attn.k_proj):
            proj.weight.data *= 30
    x = torch.randint(0, 50, (3, 20))
    causal = torch.ones(20, 20, dtype=torch.bool).tril().expand(3, 1, 20, 20)
    with torch.no_grad():
        explicit = model(x, attn_mask=causal, position_ids=torch.arange(20).expand(3, 20))
        assert torch.allclose(model(x), explicit, atol=1e-5)
        # Rotary attention depends on position differences only: a uniform shift changes nothing,
        # while positions that skip (as a packed branch's do, relative to its row) change the logits.
        shifted = model(x, attn_mask=causal, position_ids=torch.arange(5, 25).expand(3, 20))
        assert torch.allclose(explicit, shifted, atol=1e-5)
        skipping = model(x, attn_mask=causal, position_ids=torch.cat([torch.arange(10), torch.arange(15, 25)]).expand(3, 20))
        assert torch.allclose(explicit[:, :10], skipping[:, :10], atol=1e-5)
        assert (explicit[:, 10:] - skipping[:, 10:]).abs().max() > 1e-2


def test_encode_pair_follows_lm_eval(tiny_tokenizer):
    tok = tokenizer_lib.load(tiny_tokenizer)
    eos = tokenizer_lib.eos_id(tok)
    lm = LlamaLM(Llama(ModelConfig(vocab_size=tok.get_vocab_size(), d_model=16, n_layers=1, n_heads=2)), tok)
    # Trailing whitespace of the context moves to the continuation.
    assert encode_pair(lm, "Overall, it was ", "positive") == encode_pair(lm, "Overall, it was", " positive")
    # A split inside a word: the joint tokenization merges across the boundary; the context keeps its own
    # tokens and the continuation is what the joint tokenization has after as many tokens.
    context, continuation = "Overall, it wa", "s positive"
    ctx, whole = tok.encode(context).ids, tok.encode(context + continuation).ids
    assert whole[: len(ctx)] != ctx
    seq, start = encode_pair(lm, context, continuation)
    assert (seq[:start], seq[start:]) == ([eos] + ctx, whole[len(ctx) :])
    assert encode_choices(lm, context, [continuation, "s negative"]) == [
        encode_pair(lm, context, continuation),
        encode_pair(lm, context, "s negative"),
    ]

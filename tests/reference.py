"""Independent reference computations shared by tests."""

import pytest
import torch

from lmforecast.measure.scoring import choice_metrics, encode_pair


def assert_scores_match_separate_sequences(lm, requests, scores):
    """Each request's choices scored one plain forward pass of lm.model at a time must give the same metrics."""
    for req, m in zip(requests, scores):
        lps, ntok = [], []
        for cont in req.continuations:
            seq, start = encode_pair(lm, req.context, cont)
            cut = max(0, len(seq) - (lm.max_len + 1))
            seq, start = seq[cut:], max(1, start - cut)
            with torch.no_grad():
                logp = torch.log_softmax(lm.model(torch.tensor([seq[:-1]])), -1)[0]
            lps.append(sum(logp[i - 1, seq[i]].item() for i in range(start, len(seq))))
            ntok.append(len(seq) - start)
        exp = choice_metrics(lps, ntok, req.choices, req.gold)
        assert (m["acc"], m["acc_norm"]) == (exp["acc"], exp["acc_norm"])
        assert m["logprob_correct"] == pytest.approx(exp["logprob_correct"], abs=1e-9)

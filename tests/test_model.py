import torch
from transformers import AutoModelForCausalLM

from lmforecast.train.model import Llama, ModelConfig, flops_per_token, load_model, n_params, save_model

CFG = ModelConfig(vocab_size=300, d_model=32, n_layers=2, n_heads=4, ffn_ratio=3.0, seq_len=64)


def test_checkpoint_is_a_transformers_llama_with_equal_logits(tmp_path):
    torch.manual_seed(0)
    model = Llama(CFG)
    save_model(model, tmp_path)
    hf = AutoModelForCausalLM.from_pretrained(tmp_path)
    assert type(hf).__name__ == "LlamaForCausalLM"
    x = torch.randint(0, CFG.vocab_size, (3, 50))
    with torch.no_grad():
        assert torch.allclose(model(x), hf(x).logits, atol=1e-5)
    assert hf.num_parameters() == n_params(CFG)["n_params"]


def test_save_load_round_trip_is_exact(tmp_path):
    model = Llama(CFG)
    save_model(model, tmp_path)
    again = load_model(tmp_path)
    for (k, a), (_, b) in zip(model.state_dict().items(), again.state_dict().items()):
        assert torch.equal(a, b), k


def test_parameter_and_flop_counts_by_hand():
    # d=32, L=2, ffn=96, V=300. Per layer: q,k,v,o 4*32*32 = 4096; gate, up, down 3*32*96 = 9216; 2 norms 64.
    per_layer = 4096 + 9216 + 64
    nonembed = 2 * per_layer + 32
    assert n_params(CFG) == {"n_params_nonembed": nonembed, "n_params": nonembed + 300 * 32}
    assert n_params(CFG)["n_params"] == sum(p.numel() for p in Llama(CFG).parameters())
    # 6 * (non-embedding + output head) + 12 * L * d * T
    assert flops_per_token(CFG) == 6 * (nonembed + 300 * 32) + 12 * 2 * 32 * 64

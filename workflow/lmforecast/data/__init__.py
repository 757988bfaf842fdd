"""Pre-training data: the synthetic world, the tokenizer, token shards and the mixture sampler."""

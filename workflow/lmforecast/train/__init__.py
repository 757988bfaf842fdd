"""Pre-training: the Llama-style model, the objectives, the training loop and checkpoints."""

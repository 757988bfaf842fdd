"""What is measured on a model: tasks, scoring, evaluation, SFT, and the tables they feed."""

# The SFT methods measure/sft.py implements (config sft.methods, fit.pairwise.sft_method, `lmforecast sft
# --method`); here, not in sft.py, because importing sft imports torch.
SFT_METHODS = ("full", "lora", "last_layers")

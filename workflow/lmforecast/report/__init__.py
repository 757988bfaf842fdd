"""results/report/: the figures, the leaderboard and the self-contained page."""

# The tables the page reads (rule report's inputs; the fits' sections read results/fits/).
TABLES = ("runs", "checkpoints", "training_loss", "domain_losses", "task_scores", "sft_scores")

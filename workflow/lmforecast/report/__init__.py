"""results/report/: the figures, the leaderboard and the self-contained page."""

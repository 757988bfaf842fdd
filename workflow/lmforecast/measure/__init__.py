"""What is measured on a model: tasks, scoring, evaluation, SFT, and the tables they feed."""

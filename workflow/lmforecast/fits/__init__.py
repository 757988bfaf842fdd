"""The predictors fitted on the tables, one module per fit, and the curves they share."""

"""lmforecast: measure pre-training runs and fit the predictors that say which choices pay off downstream."""

__version__ = "0.1.0"

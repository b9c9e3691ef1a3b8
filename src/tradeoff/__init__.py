"""tradeoff: the accuracy–robustness trade-off of neural classifiers, reproduced end to end."""

__version__ = "0.1.0"

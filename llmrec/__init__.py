"""llmrec: an offline-first recommender you can talk to."""

__version__ = "0.1.0"

"""The pipeline: configuration in, recommendations out, by one road.

``parts`` turns a ``RecommenderConfig`` into retrievers, rankers, explainers and language models (the only
reader of kind strings); ``stores`` builds the shared vector store and collaborative model; ``Recommender``
holds them and recommends.
"""

from llmrec.pipeline.recommender import ItemFilter, Recommendations, Recommender

__all__ = ["ItemFilter", "Recommendations", "Recommender"]

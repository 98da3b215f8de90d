"""Data sets: loaders, item text, preprocessing and splits."""

from llmrec.data.dataset import Dataset, Interactions
from llmrec.data.registry import NAMED, load_dataset
from llmrec.data.split import SequenceData, preprocess

__all__ = ["NAMED", "Dataset", "Interactions", "SequenceData", "load_dataset", "preprocess"]

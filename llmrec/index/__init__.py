"""Vector indexes: the ``VectorIndex`` protocol, an exact in-memory index and a Chroma index.

``llmrec.index.chroma`` imports chromadb only inside its functions, so importing this package is cheap.
"""

from llmrec.index.base import SCHEMA_VERSION, Filter, Hit, StoreSpec, VectorIndex, genre_key
from llmrec.index.chroma import ChromaIndex, open_chroma_index
from llmrec.index.memory import MemoryIndex

__all__ = [
    "SCHEMA_VERSION",
    "ChromaIndex",
    "Filter",
    "Hit",
    "MemoryIndex",
    "StoreSpec",
    "VectorIndex",
    "genre_key",
    "open_chroma_index",
]

"""Errors the library raises on purpose.

Every message names the bad value and the fix, on one line, so the CLI can print it as it is and
exit non-zero without a traceback.
"""

from __future__ import annotations


class LlmrecError(Exception):
    """Base class: a problem the user can fix; the message says how."""

    exit_code = 2


class DataError(LlmrecError):
    """A data set is missing, unknown, malformed or too small."""


class ConfigError(LlmrecError):
    """A configuration value is invalid."""


class ModelError(LlmrecError):
    """A model is unknown, not installed, not prepared or fails its checksum."""


class ChecksumError(LlmrecError):
    """A downloaded or packaged file does not have the expected sha256."""


class NetworkError(LlmrecError):
    """Something had to be fetched and the network was off, down or refused."""


class IndexStoreError(LlmrecError):
    """A vector store is missing, corrupted, locked or made with another configuration."""

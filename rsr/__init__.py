"""rsr: rejection sampling and best-of-N data generation, with every prompt,
rollout, score and step in one SQLite ledger."""

from .db import open_db
from .errors import RsrError
from .hookspecs import hookimpl
from .version import __version__

__all__ = ["__version__", "open_db", "RsrError", "hookimpl"]

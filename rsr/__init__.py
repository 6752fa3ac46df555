"""rsr: rejection sampling and best-of-N data generation, with every prompt,
rollout, score and step in one SQLite ledger."""

__version__ = "0.1.0"

from .db import open_db  # noqa: E402
from .errors import RsrError  # noqa: E402
from .hookspecs import hookimpl  # noqa: E402

__all__ = ["__version__", "open_db", "RsrError", "hookimpl"]

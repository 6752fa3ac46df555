"""The one sampling loop: ask the ledger what is left, sample, score, write, repeat.

The package splits it by job: `plan` (the next step of a prompt and its seeds),
`requests` (retries, servers that ignore n, the outage and endpoint checks),
`ledger` (the writer and the state queries), `report` (the counts and the
summary line) and `loop` (scheduling, signals and sample()). Callers import
from here.
"""

from .ledger import UPSERT_STEPS, insert_rows
from .loop import (
    Capped,
    Interrupted,
    SampleSettings,
    sample,
    usable_cpus,
)
from .plan import Work, derive_seed, plan_step
from .report import SampleReport

__all__ = [
    "Capped",
    "Interrupted",
    "SampleReport",
    "SampleSettings",
    "Work",
    "UPSERT_STEPS",
    "derive_seed",
    "insert_rows",
    "plan_step",
    "sample",
    "usable_cpus",
]

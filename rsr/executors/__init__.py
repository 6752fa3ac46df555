"""Executors: where a sampling run's requests are served.

`in-process` (the default) runs the configured sampler inside `rsr sample`.
`ray` (rsr.executors.ray) spreads the requests over Ray actors, each owning its
own sampler, while the ledger stays here on the driver: an executor is
sampler-shaped, so the one sampling loop in rsr/sampling/ plans, retries,
scores and writes exactly as it does in a single process.

Each executor declares its options (rsr.options) the way samplers do: they are
the `executor` section's keys beyond `name` and flags of `rsr sample`.
"""

from .base import Executor, ExecutorOptions, InProcess
from .ray import Ray

EXECUTORS: dict[str, type[Executor]] = {cls.name: cls for cls in (InProcess, Ray)}

__all__ = ["EXECUTORS", "Executor", "ExecutorOptions", "InProcess", "Ray"]

"""Executors: where a sampling run's requests are served.

`in-process` (the default) runs the configured sampler inside `rsr sample`.
`ray` (rsr.executors.ray) spreads the requests over Ray actors, each owning its
own sampler, while the ledger stays here on the driver: an executor is
sampler-shaped, so the one sampling loop in rsr/sampling/ plans, retries,
scores and writes exactly as it does in a single process.
"""

EXECUTORS = ("in-process", "ray")

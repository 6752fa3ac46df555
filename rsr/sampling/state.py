"Why a run stops: the flags the loop and its requests share."

import asyncio
from dataclasses import dataclass, field


@dataclass
class RunState:
    "Set by the loop, its requests and its writes; read before each new piece of work."

    # Set whenever there is something for the loop to look at again.
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    # The message the run stops with; a ConfigError when abort_config.
    abort_error: str | None = None
    abort_config: bool = False
    # A write the ledger refused (disk full, read-only), raised as it is.
    ledger_error: BaseException | None = None
    # Set by a first SIGINT/SIGTERM: no new request starts, and replies on
    # their way are awaited (for up to STOP_GRACE_S) and written.
    stop_requested: bool = False
    # Set with a message when a cost cap stops the run (like a signal, with
    # no deadline for the requests in flight: they are paid for).
    capped: str | None = None
    # Set once the run only writes what arrived and closes.
    stopping: bool = False

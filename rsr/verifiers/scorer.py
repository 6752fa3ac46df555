"""Scorer: one verifier run over many (response, metadata, messages) items,
inline, in worker processes (pool.py), in a helper process beside an event
loop (offload.py), on the event loop (async verifiers) or in a thread (batched
ones). Shared by `rsr verify` (rsr/verification.py) and the inline scoring of
`rsr sample`."""

from __future__ import annotations

import asyncio
import threading
from typing import Any, Iterable

from ..config import VERIFIER
from .base import Verdict, Verifier

# Seconds one check may take in a worker process when the caller names no timeout.
DEFAULT_TIMEOUT = VERIFIER.timeout

Item = tuple  # (response, metadata, messages)


class Scorer:
    """Scores items [(response, metadata, messages)] with one verifier.

    workers > 0 runs CPU verifiers in that many processes; timeout is seconds
    per check (None: DEFAULT_TIMEOUT where a worker process is used, 0: none).
    Call close() (or use it as a context manager) to stop the workers.
    """

    def __init__(self, verifier: Verifier, workers: int = VERIFIER.workers, timeout: float | None = None,
                 chunk_size: int | None = None) -> None:
        verifier.prepare()
        self.verifier = verifier
        self.name = verifier.name
        self.workers = workers
        self.timeout = DEFAULT_TIMEOUT if timeout is None else (timeout or None)
        self.chunk_size = chunk_size
        if verifier.is_async:
            self.mode = "async"
        elif verifier.batched:
            self.mode = "batched"
        elif workers > 0 or not verifier.inline:
            self.mode = "pool"
        else:
            self.mode = "inline"
        self._pool: Any = None
        self._pool_lock = threading.Lock()
        self._offload: Any = None

    def start_offload(self) -> bool:
        """Score an inline verifier in a helper process from now on (ascore only);
        returns whether it does. Call it before starting threads: it forks."""
        from . import offload

        if self.mode != "inline" or self._offload is not None or not offload.available():
            return False
        self._offload = offload.ScoringProcess(self.verifier)
        return True

    def stop_offload(self):
        "Score inline again; the helper process stops after what it holds."
        if self._offload is not None:
            self._offload.close()
            self._offload = None

    @property
    def pool(self):
        "The worker processes, started on first use."
        with self._pool_lock:
            if self._pool is None:
                from .pool import WorkerPool

                self._pool = WorkerPool(self.verifier, self.workers or 1, self.timeout,
                                        self.chunk_size)
            return self._pool

    def score(self, items: Iterable[Item]) -> list[Verdict]:
        "Verdicts for items, in order."
        items = list(items)
        if not items:
            return []
        if self.mode == "pool":
            if not self.verifier.needs_prompt:
                items = [(response, metadata, None) for response, metadata, _ in items]
            return self.pool.map(items)
        if self.mode == "async":
            return run_coroutine(self.verifier.acheck_many(items))
        return self.verifier.check_many(items)

    async def ascore(self, items: Iterable[Item]) -> list[Verdict]:
        "Verdicts for items without blocking the event loop (beyond inline checks)."
        items = list(items)
        if not items:
            return []
        if self._offload is not None:
            return await self._offload.score(items)
        if self.mode == "async":
            return await self.verifier.acheck_many(items)
        if self.mode == "inline":
            return self.verifier.check_many(items)
        return await asyncio.to_thread(self.score, items)

    def close(self) -> None:
        "Stop worker processes and release the verifier's resources."
        self.stop_offload()
        with self._pool_lock:
            if self._pool is not None:
                self._pool.close()
                self._pool = None
        close = getattr(self.verifier, "close", None)
        if close is not None:
            close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def run_coroutine(coroutine):
    "Run a coroutine to completion from sync code, even under a running event loop."
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    result = {}

    def target():
        result["value"] = asyncio.run(coroutine)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    return result["value"]

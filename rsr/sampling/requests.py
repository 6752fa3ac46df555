"""Requests: one step's completions from the sampler, with retries.

A server that ignores n (one choice for n > 1) is noticed on its first reply,
and from then on each rollout is its own request, written as it returns. A
request that fails for good becomes error rows, except when the server, not
the prompt, is at fault: a refused connection, or max_consecutive_failures
failures in a row (the outage abort), write nothing, so no prompt's budget is
spent on an outage. Until the endpoint has answered one request correctly, a
failure that says it is the wrong endpoint (ENDPOINT_FAULTS) writes nothing,
and ENDPOINT_CHECKS of them stop the run: a mistyped URL spends no budget.
"""

import asyncio
import logging

from ..client import RequestFailed, with_retries
from ..samplers import Completion
from .plan import request_for

log = logging.getLogger(__name__)

# Failures that, before an endpoint has answered once, say it is the wrong
# one (no server there, not HTTP, not JSON, not a chat reply, no such path, a
# key refused); after ENDPOINT_CHECKS of them in a row the run stops.
ENDPOINT_FAULTS = {"connection", "disconnect", "malformed", "http_401", "http_403",
                   "http_404", "http_405"}
ENDPOINT_CHECKS = 3


class Unreachable(Exception):
    "The server could not be reached: nothing is written, the step is planned again."


class Requester:
    """Runs a step's requests through the sampler and hands each reply to
    submit(work, indexes, completions), which returns the future of its write.

    state is the run's RunState: an abort is set there, and a stop requested
    there starts no new request; report counts requests, retries and faults."""

    def __init__(self, sampler, settings, report, state, info):
        self.sampler = sampler
        self.settings = settings
        self.report = report
        self.state = state
        self.info = info
        # Whether the server honours n: unknown until a reply says (batch
        # samplers do).
        self.n_supported = None if not sampler.batch else True
        self.consecutive_failures = 0
        # Until the endpoint has answered one request correctly, a failure that
        # says it is the wrong one (ENDPOINT_FAULTS) writes nothing.
        self.endpoint_ok = False
        self.endpoint_failures = 0

    async def run_step(self, work, submit, waits):
        "All requests of one step of one prompt (API samplers); appends their writes to waits."
        remaining = list(work.indexes)
        while remaining:
            if self.n_supported is False and len(remaining) > 1:
                await self._run_singles(work, remaining, submit, waits)
                break
            indexes, completions = await self.request(work, remaining)
            if len(remaining) > 1 and len(completions) == 1 and not completions[0].error:
                if self.n_supported is None:
                    log.info("the server returned 1 choice for n=%d: sending one request per rollout", len(remaining))
                self.n_supported = False
            elif len(remaining) > 1 and len(completions) == len(remaining):
                self.n_supported = True
            waits.append(await submit(work, indexes, completions))
            remaining = remaining[len(completions):]

    async def _run_singles(self, work, remaining, submit, waits):
        """One request per rollout (a server that ignores n), each written the
        moment it returns: a reply never waits in memory for a sibling that
        hangs. The step's task ends once all of them have."""

        async def one(index):
            indexes, completions = await self.request(work, [index])
            return await submit(work, indexes, completions)

        results = await asyncio.gather(*(one(i) for i in remaining), return_exceptions=True)
        waits.extend(r for r in results if isinstance(r, asyncio.Future))
        errors = [r for r in results if isinstance(r, BaseException)]
        for error in errors:
            if not isinstance(error, Unreachable):
                raise error
        if errors:
            raise errors[0]

    async def request(self, work, indexes):
        "Ask for len(indexes) completions; a request that fails for good becomes error rows."
        request = request_for(work, indexes, self.settings)
        seed = request.seed
        state = self.state

        def on_retry(error, attempt, delay):
            self.report.retries += 1
            self.report.faults[error.kind] += 1

        async def call():
            if state.stop_requested:
                # A stop is draining the run: no new request, no retry.
                raise Unreachable("stopping")
            self.report.requests += 1
            return await self.sampler.complete(request)

        try:
            completions = await with_retries(call, self.settings.retry, on_retry)
        except RequestFailed as ex:
            self.report.faults[ex.kind] += 1
            if not self.endpoint_ok and ex.kind in ENDPOINT_FAULTS:
                self.endpoint_failed(ex)
            self.consecutive_failures += 1
            if self.consecutive_failures >= self.settings.max_consecutive_failures:
                state.abort_error = (
                    f"Stopped after {self.consecutive_failures} requests in a row failed; "
                    f"last error: {ex}. Everything that arrived is saved; re-run to resume."
                )
                state.wake.set()
            if ex.kind == "connection" or state.abort_error is not None:
                # The server, not the prompt, is at fault: write nothing, so no
                # prompt's budget is spent on an outage.
                raise Unreachable(str(ex)) from ex
            completions = [Completion(None, error=str(ex), seed=seed) for _ in indexes]
            return indexes, completions
        self.consecutive_failures = 0
        self.endpoint_ok = True
        completions = completions[: len(indexes)]
        if len(completions) < len(indexes):
            self.report.faults["short"] += 1
        for completion in completions:
            if completion.seed is None:
                completion.seed = seed
        return indexes[: len(completions)], completions

    def endpoint_failed(self, error):
        """A request failed for good, in a way that says the endpoint is wrong,
        before it ever answered: nothing is written (the step is planned again),
        and after ENDPOINT_CHECKS of them the run stops with a config error."""
        self.endpoint_failures += 1
        state = self.state
        if self.endpoint_failures >= ENDPOINT_CHECKS and state.abort_error is None:
            where = self.info.get("base_url") or "the endpoint"
            state.abort_error = (
                f"{where} gave no usable chat completion on the first {self.endpoint_failures} "
                f"requests (last: {error}): check --base-url, --model and --api-key; "
                "nothing was written")
            state.abort_config = True
            state.wake.set()
        raise Unreachable(str(error)) from error

    async def run_batch(self, works, submit):
        "One engine call for many prompts (batch samplers such as vLLM); returns their writes."
        requests = [request_for(w, w.indexes, self.settings) for w in works]
        self.report.requests += len(requests)
        results = await asyncio.to_thread(self.sampler.complete_batch, requests)
        waits = []
        for work, completions in zip(works, results):
            completions = completions[: len(work.indexes)]
            waits.append(await submit(work, work.indexes[: len(completions)], completions))
        return waits

"""Sampling on a Ray cluster, with the ledger on the driver.

`RayExecutor` is sampler-shaped (`async complete(request)`), so the one sampling
loop in rsr/sampling/ drives it unchanged: the driver asks the ledger which
prompts still need rollouts (the same SQL as a local run), plans each step's
sample indexes and seeds, and hands the request to the least busy of W Ray
actors. Each actor (`SamplerWorker`) owns a real sampler built from the
registry: `vllm` on the GPUs Ray gave it, `openai` against its endpoint, or
`local`. Completions come back as each request finishes and the loop writes
them keyed by (prompt_id, arm, sample_index), so a result is ingested exactly once;
the prompt is checked against its target before its next step is planned.

What travels: a request (prompt id, messages, n, params, one seed per sample
index; the prompt's metadata only when verification runs on the workers) and
its completions. The database never leaves the driver.

A worker that dies (node lost, out of memory, `ray.kill`) fails the requests it
held; each is sent again to a surviving or replacement worker, and nothing it
had not returned was written, so nothing is duplicated. Requests that fail on a
healthy worker (HTTP 429/5xx, timeouts) come back as RequestFailed and are
retried by the loop's own retry policy.
"""

import asyncio
import logging
from collections import deque
from dataclasses import replace
from typing import Any, Literal, Optional

from pydantic import Field

from ..client import RequestFailed
from ..errors import ConfigError, RsrError
from ..factory import make_sampler, make_scorer, sampler_class, sampler_concurrency
from ..samplers import Sampler
from .base import Executor, ExecutorOptions

log = logging.getLogger(__name__)

VERIFY_ON = ("driver", "workers")


def import_ray():
    "The ray module, or a ConfigError saying how to install it."
    try:
        import ray
    except ImportError:
        raise ConfigError("--executor ray needs Ray on the driver and every node: "
                          "pip install 'rsr[ray]'") from None
    return ray


class SamplerWorker:
    """One Ray actor: a sampler (and, verifying on the workers, a Scorer).

    API samplers serve up to `concurrency` requests at once on the actor's event
    loop; batch samplers (vllm, local) get the requests that queued while the
    engine was busy in one `complete_batch` call, up to `batch_prompts`.
    """

    def __init__(self, sampler_config, verifier_config, concurrency, batch_prompts):
        self.sampler = make_sampler(sampler_config)
        self.scorer = make_scorer(verifier_config) if verifier_config else None
        self.concurrency = concurrency
        self.batch_size = getattr(self.sampler, "preferred_batch_prompts", None) or batch_prompts
        self.semaphore = None
        self.queue = deque()
        self.batcher = None

    def describe(self):
        return self.sampler.describe()

    async def complete(self, request):
        "Completions for one request, or a dict describing a RequestFailed."
        try:
            if self.sampler.batch:
                completions = await self._batched(request)
            else:
                if self.semaphore is None:
                    self.semaphore = asyncio.Semaphore(self.concurrency)
                async with self.semaphore:
                    completions = await self.sampler.complete(request)
        except RequestFailed as ex:
            # Sent back as fields: the exception's keyword arguments do not survive pickling.
            return {"message": str(ex), "retryable": ex.retryable, "retry_after": ex.retry_after,
                    "status": ex.status, "kind": ex.kind}
        if self.scorer is not None:
            await self._score(request, completions)
        return completions

    async def _batched(self, request):
        future = asyncio.get_running_loop().create_future()
        self.queue.append((request, future))
        if self.batcher is None or self.batcher.done():
            self.batcher = asyncio.create_task(self._drain())
        return await future

    async def _drain(self):
        while self.queue:
            batch = [self.queue.popleft() for _ in range(min(self.batch_size, len(self.queue)))]
            try:
                results = await asyncio.to_thread(self.sampler.complete_batch, [r for r, _ in batch])
            except Exception as ex:  # every waiting request gets the engine's error
                for _, future in batch:
                    future.set_exception(ex)
                continue
            for (_, future), completions in zip(batch, results):
                future.set_result(completions)

    async def _score(self, request, completions):
        valid = [c for c in completions if c.valid]
        items = [(c.response, request.metadata or {}, request.messages) for c in valid]
        for completion, verdict in zip(valid, await self.scorer.ascore(items)):
            completion.verdict = verdict

    async def close(self):
        "Stop the engine, its connections and the verifier's processes."
        aclose = getattr(self.sampler, "aclose", None)
        if aclose is not None:
            await aclose()
        if self.scorer is not None:
            self.scorer.close()
        self.sampler.close()


class RayExecutor(Sampler):
    """Serves sampling requests from W Ray actors; see the module docstring.

    sampler_config is the `sampler` section (the actors build the sampler);
    verifier_config, given with verify_on="workers", makes each actor score
    what it samples. address is None (start a local Ray), "auto" or a
    ray://host:port URL. A lost worker is replaced up to max_worker_restarts
    times in all; one request is sent at most 1 + max_reissues times.
    base_urls gives worker i the endpoint base_urls[i % len(base_urls)] (each
    worker its own server); otherwise all use sampler_config["base_url"], which
    each worker resolves on its own node (127.0.0.1 is that node's server).
    """

    name = "ray"
    description = "Ray actors, each owning a sampler; the ledger stays on the driver"

    def __init__(self, sampler_config, verifier_config=None, *, num_workers, concurrency,
                 batch_prompts, address=None, verify_on="driver", num_cpus=1, num_gpus=0,
                 runtime_env=None, base_urls=None, max_worker_restarts=None, max_reissues=3):
        if verify_on not in VERIFY_ON:
            raise ConfigError(f"verify_on must be one of {', '.join(VERIFY_ON)}, not {verify_on!r}")
        if num_workers < 1:
            raise ConfigError("--num-workers must be at least 1")
        import_ray()  # before anything touches the ledger
        super().__init__(model=sampler_config.get("model"))
        self.sampler_config = sampler_config
        self.verifier_config = verifier_config if verify_on == "workers" else None
        self.verify_on = verify_on
        self.num_workers = num_workers
        self.address = address
        self.concurrency = concurrency
        self.batch_prompts = batch_prompts
        self.num_cpus = num_cpus
        self.num_gpus = num_gpus
        self.runtime_env = runtime_env
        self.base_urls = list(base_urls or [])
        self.restarts_left = 2 * num_workers if max_worker_restarts is None else max_worker_restarts
        self.max_reissues = max_reissues
        self.workers = []
        self.load = []
        # A replacement takes requests only once it has started (a lost node's
        # replacement may wait for room on the cluster).
        self.ready = []
        self.watchers = set()
        # What happened, for the caller and the tests: requests each worker slot
        # answered, requests sent again after a worker was lost, workers lost.
        self.served = [0] * num_workers
        self.reissued = 0
        self.workers_lost = 0
        self.info = None
        self.actor_class = None
        self.started_ray = False

    # -- workers --------------------------------------------------------------

    def start(self):
        "Connect to (or start) Ray and start the workers; idempotent."
        if self.info is not None:
            return
        ray = import_ray()
        if not ray.is_initialized():
            if self.address is None:
                ray.init(runtime_env=self.runtime_env, include_dashboard=False)
            else:
                ray.init(address=self.address, runtime_env=self.runtime_env)
            self.started_ray = True
        self.actor_class = ray.remote(SamplerWorker).options(
            num_cpus=self.num_cpus, num_gpus=self.num_gpus, scheduling_strategy="SPREAD")
        self.workers = [self.spawn(slot) for slot in range(self.num_workers)]
        self.load = [0] * self.num_workers
        self.ready = [True] * self.num_workers
        try:
            infos = ray.get([worker.describe.remote() for worker in self.workers])
        except ray.exceptions.RayError as ex:
            self.close()
            cause = getattr(ex, "cause", None) or ex
            if isinstance(cause, RsrError):
                raise cause from None
            raise RsrError(f"The Ray workers could not start their {self.sampler_config.get('name')} "
                           f"sampler: {cause}") from None
        self.info = dict(infos[0], executor="ray", workers=self.num_workers)
        log.info("%d Ray workers ready: %s", self.num_workers, infos[0])

    def spawn(self, slot):
        "Start the actor for worker number slot."
        sampler_config = dict(self.sampler_config)
        if self.base_urls:
            sampler_config["base_url"] = self.base_urls[slot % len(self.base_urls)]
        cls = sampler_class(sampler_config["name"])
        sampler_config["engine"] = cls.worker_options(dict(sampler_config.get("engine") or {}),
                                                      self.num_cpus)
        return self.actor_class.remote(sampler_config, self.verifier_config, self.concurrency,
                                       self.batch_prompts)

    def pick(self):
        "The started worker with the fewest requests outstanding (any live one if none has started)."
        live = [i for i, worker in enumerate(self.workers) if worker is not None]
        if not live:
            raise RsrError(f"All {self.num_workers} Ray workers were lost and no restarts are "
                           "left; everything that arrived is saved: re-run to resume")
        started = [i for i in live if self.ready[i]] or live
        return min(started, key=lambda i: self.load[i])

    def lost(self, slot, worker, error):
        "A worker died: replace it while restarts are left (once, however many requests saw it)."
        if self.workers[slot] is not worker:
            return
        self.workers_lost += 1
        if self.restarts_left > 0:
            self.restarts_left -= 1
            self.workers[slot] = replacement = self.spawn(slot)
            self.ready[slot] = False
            watcher = asyncio.get_running_loop().create_task(self.watch(slot, replacement))
            self.watchers.add(watcher)
            watcher.add_done_callback(self.watchers.discard)
            log.warning("Ray worker %d was lost (%s); starting a replacement", slot, error)
        else:
            self.workers[slot] = None
            log.warning("Ray worker %d was lost (%s); no restarts left", slot, error)

    async def watch(self, slot, worker):
        "Mark a replacement ready once its sampler is built; a failed start counts as lost."
        ray = import_ray()
        try:
            await worker.describe.remote()
        except ray.exceptions.RayActorError as ex:
            self.lost(slot, worker, ex)
            return
        if self.workers[slot] is worker:
            self.ready[slot] = True

    # -- the sampler interface --------------------------------------------------

    def describe(self):
        self.start()
        return self.info

    async def complete(self, request):
        ray = import_ray()
        self.start()
        if self.verify_on == "driver":
            request = replace(request, metadata=None)
        for attempt in range(self.max_reissues + 1):
            slot = self.pick()
            worker = self.workers[slot]
            self.load[slot] += 1
            try:
                result = await worker.complete.remote(request)
            except ray.exceptions.RayActorError as ex:
                self.lost(slot, worker, ex)
                self.reissued += 1
                continue
            except ray.exceptions.RayTaskError as ex:
                # The sampler itself failed (a bad option, an engine error): show
                # the worker's own error, not Ray's wrapper.
                cause = getattr(ex, "cause", None)
                if isinstance(cause, RsrError):
                    raise cause from None
                raise
            finally:
                self.load[slot] -= 1
            self.served[slot] += 1
            if isinstance(result, dict):
                message = result.pop("message")
                raise RequestFailed(message, **result)
            return result
        raise RsrError(f"A request for prompt {request.prompt_id!r} was lost with its Ray worker "
                       f"{self.max_reissues + 1} times; re-run to resume")

    def close(self):
        if not self.workers:
            return
        ray = import_ray()
        live = [worker for worker in self.workers if worker is not None]
        try:
            # Let each worker stop its engine and verifier processes, then end it.
            ray.get([worker.close.remote() for worker in live], timeout=30)
        except (ray.exceptions.RayError, TimeoutError) as ex:
            log.warning("Ray workers did not close cleanly: %s", ex)
        for worker in live:
            ray.kill(worker)
        self.workers = []
        self.info = None
        if self.started_ray:
            ray.shutdown()
            self.started_ray = False


class Ray(Executor):
    "The `ray` executor's options and how it builds a RayExecutor."

    name = "ray"
    description = "Ray actors, each owning a sampler; the ledger stays on the driver"

    class Options(ExecutorOptions):
        address: Optional[str] = Field(
            None, json_schema_extra={"flag": "--ray-address"},
            description="ray: 'auto' or ray://HOST:PORT (default: start a local Ray)")
        num_workers: int = Field(2, ge=1, description="ray: actors, each with its own sampler [2]")
        verify_on: Literal["driver", "workers"] = Field(
            "driver", description="ray: where the verifier runs [driver]")
        base_urls: list[str] = Field(
            default_factory=list, json_schema_extra={"flag": "--worker-base-url"},
            description="ray: an endpoint per worker (repeatable; worker i gets the i-th)")
        num_cpus: float = Field(1, gt=0, json_schema_extra={"flag": None},
                                description="CPUs Ray reserves per worker")
        num_gpus: Optional[float] = Field(
            None, ge=0, json_schema_extra={"flag": None},
            description="GPUs per worker (default: what the sampler says it needs)")
        runtime_env: Optional[dict[str, Any]] = Field(
            None, json_schema_extra={"flag": None}, description="Ray runtime environment")
        max_worker_restarts: Optional[int] = Field(
            None, ge=0, json_schema_extra={"flag": None},
            description="Lost workers replaced in all (default: twice num_workers)")

    @classmethod
    def workers(cls, options):
        return options["num_workers"]

    @classmethod
    def build(cls, config):
        sampler, options = config["sampler"], dict(config["executor"])
        options.pop("name")
        # The name is checked here, so a typo is reported before a cluster is touched.
        sampler_cls = sampler_class(sampler["name"])
        if options["num_gpus"] is None:
            options["num_gpus"] = sampler_cls.resources(dict(sampler.get("engine") or {}))["num_gpus"]
        return RayExecutor(sampler, verifier_config=config["verifier"],
                           concurrency=sampler_concurrency(sampler, config["sampling"]["step_size"]),
                           batch_prompts=sampler["batch_prompts"], **options)

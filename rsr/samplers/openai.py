"""The `openai` sampler: any OpenAI-compatible chat endpoint (vLLM serve, SGLang,
llama.cpp server, OpenAI itself), asynchronously."""

import time

from ..client import RequestFailed, chat_completion, make_async_client
from ..hookspecs import hookimpl
from . import Sampler, make_completion

# Sampling parameters the SDK's create() takes by name; anything else in
# --extra-params travels in the request body as is (top_k, min_p, ...).
SDK_PARAMS = {
    "temperature", "top_p", "max_tokens", "max_completion_tokens", "seed", "stop",
    "presence_penalty", "frequency_penalty", "logit_bias", "logprobs", "top_logprobs",
    "reasoning_effort", "response_format", "user",
}


class OpenAISampler(Sampler):
    name = "openai"
    description = "Any OpenAI-compatible chat completions endpoint (vLLM, SGLang, llama.cpp, OpenAI)"

    def __init__(self, model=None, base_url=None, api_key=None, timeout=600.0,
                 transport="aiohttp", **options):
        super().__init__(model=model or "default", **options)
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
        known = {k: v for k, v in params.items() if k in SDK_PARAMS}
        extra = {k: v for k, v in params.items() if k not in SDK_PARAMS}
        if request.seed is not None:
            known["seed"] = request.seed
        if request.n != 1:
            known["n"] = request.n
        if extra:
            known["extra_body"] = extra
        started = time.perf_counter()
        response = await chat_completion(self.client, self.model, request.messages, **known)
        latency_ms = int((time.perf_counter() - started) * 1000)
        return parse_response(response, latency_ms, request.seed)

    async def aclose(self):
        if self.client is not None:
            await self.client.close()
            self.client = None


def parse_response(response, latency_ms, seed):
    "Completions from a chat.completions response object."
    choices = getattr(response, "choices", None)
    if not isinstance(choices, list):
        raise RequestFailed(f"malformed response: no choices list ({type(response).__name__})", kind="malformed")
    if not choices:
        raise RequestFailed("server returned no choices", kind="no_choices")
    usage = getattr(response, "usage", None)
    prompt_tokens = getattr(usage, "prompt_tokens", None)
    total = getattr(usage, "completion_tokens", None)
    texts = []
    for choice in sorted(choices, key=lambda c: getattr(c, "index", 0) or 0):
        message = getattr(choice, "message", None)
        if message is None:
            raise RequestFailed("malformed response: a choice has no message", kind="malformed")
        reasoning = getattr(message, "reasoning_content", None) or getattr(message, "reasoning", None)
        texts.append((message.content or "", reasoning, choice.finish_reason))
    shares = split_tokens(total, [len(t) + len(r or "") for t, r, _ in texts])
    return [
        make_completion(
            text, reasoning=reasoning, finish_reason=finish_reason,
            prompt_tokens=prompt_tokens, completion_tokens=share,
            latency_ms=latency_ms, seed=seed,
        )
        for (text, reasoning, finish_reason), share in zip(texts, shares)
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

"""The `reward-model` verifier: a transformers sequence-classification reward model.

Needs the optional extra `pip install 'rsr[rm]'` (transformers and torch).
Options: model (a local path or hub name, required), threshold (a score at or
above it passes; without one, passed is NULL and only the score counts),
batch_size (default 8), max_length (tokens, default 4096), device ("cuda" when
a GPU is present, else "cpu").

Each (prompt messages, final answer) pair is rendered with the tokenizer's chat
template (the plain texts joined when it has none), tokenized, sorted by length
so that each batch pads little, scored in batches, and every score is put back
on its own rollout. The score is the model's first logit, a real number.

With base_url, the model is instead one served by `vllm serve MODEL` (a reward
or classification model): each conversation is posted to the server's
`/pooling` endpoint as chat messages (the server applies the chat template) and
the score is the last value of the returned pooling data, i.e. the reward at
the final token. Requests go through rsr.client (shared retries), up to
`concurrency` at a time; a request that fails for good is stored undecided.
"""

import asyncio
import threading

from ..client import RequestFailed, RetryPolicy, make_async_client, with_retries
from ..config import SAMPLER
from ..errors import ConfigError
from ..reasoning import final_answer
from .base import Verdict, Verifier, undecided, variant_name

_LOADED = {}
_LOAD_LOCK = threading.Lock()


def load_reward_model(model, device=None):
    "(tokenizer, model, device) for a sequence-classification model, loaded once per process."
    try:
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer
    except ImportError as ex:
        raise ConfigError("The reward-model verifier needs transformers and torch: pip install 'rsr[rm]'") from ex
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    key = (model, device)
    with _LOAD_LOCK:
        if key not in _LOADED:
            try:
                tokenizer = AutoTokenizer.from_pretrained(model)
                network = AutoModelForSequenceClassification.from_pretrained(model)
            except OSError as ex:
                raise ConfigError(f"Cannot load reward model {model!r}: {ex}") from ex
            network.to(device).eval()
            if tokenizer.pad_token is None:
                tokenizer.pad_token = tokenizer.eos_token
            if network.config.pad_token_id is None:
                network.config.pad_token_id = tokenizer.pad_token_id
            _LOADED[key] = (tokenizer, network, device)
        return _LOADED[key]


def render(tokenizer, prompt, answer):
    "The text the reward model reads: the conversation with the answer as the last turn."
    messages = [m for m in (prompt or []) if isinstance(m, dict)] if not isinstance(prompt, str) else [
        {"role": "user", "content": prompt}]
    conversation = messages + [{"role": "assistant", "content": answer}]
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(conversation, tokenize=False)
    return "\n\n".join(str(m.get("content", "")) for m in conversation)


class RewardModelVerifier(Verifier):
    "Reward-model scores; see the module docstring."

    name = "reward-model"
    description = "Score with a transformers sequence-classification reward model (rsr[rm]); pass = score >= threshold"
    inline = False
    batched = True

    def __init__(self, model=None, threshold=None, batch_size=8, max_length=4096, device=None,
                 base_url=None, api_key=None, concurrency=8, timeout=SAMPLER.timeout,
                 retry=None):
        self.model = model
        self.threshold = None if threshold is None else float(threshold)
        self.batch_size = max(1, int(batch_size))
        self.max_length = int(max_length)
        self.device = device
        self.base_url = base_url
        self.api_key = api_key
        self.concurrency = max(1, int(concurrency))
        self.timeout = float(timeout)
        self.retry = retry or RetryPolicy()
        if base_url:
            # A served model: scored over HTTP on the event loop, not in-process.
            self.is_async, self.batched = True, False

    def configure(self, **options):
        known = {"model", "threshold", "batch_size", "max_length", "device", "base_url", "api_key",
                 "concurrency", "timeout", "retry"}
        unknown = set(options) - known
        if unknown:
            raise ConfigError(f"Unknown reward-model option(s) {', '.join(sorted(unknown))}; "
                              f"known: {', '.join(sorted(known - {'retry'}))}")
        copy = RewardModelVerifier(**options)
        copy.name = variant_name("reward-model", {"model": options.get("model"), "threshold": copy.threshold})
        return copy

    def _verdict(self, score, details):
        if self.threshold is None:
            details["reason"] = "no threshold: score only"
            return Verdict(None, score, None, details)
        passed = score >= self.threshold
        details["reason"] = f"score {'>=' if passed else '<'} threshold {self.threshold:g}"
        return Verdict(passed, score, None, details)

    async def acheck_many(self, items):
        "Scores from a served model's /pooling endpoint (base_url), or the local model in a thread."
        if not self.base_url:
            return await asyncio.to_thread(self.check_many, items)
        if not self.model:
            raise ConfigError("The reward-model verifier needs the served model's name: --verifier-option model=NAME")
        root = self.base_url.rstrip("/").removesuffix("/v1")
        client = make_async_client(root, self.api_key, self.timeout)
        semaphore = asyncio.Semaphore(self.concurrency)

        async def one(item):
            response, _, prompt = item
            messages = [m for m in (prompt or []) if isinstance(m, dict)]
            body = {"model": self.model,
                    "messages": messages + [{"role": "assistant", "content": final_answer(response or "")}]}

            async with semaphore:
                try:
                    reply = await with_retries(lambda: client.post_json("/pooling", body), self.retry)
                except RequestFailed as ex:
                    return undecided(f"reward request failed: {ex}", reason="request failed")
            score = last_value(reply)
            if score is None:
                return undecided("reward server reply has no pooling data", reason="malformed reply")
            return self._verdict(score, {"endpoint": "pooling"})

        try:
            return list(await asyncio.gather(*(one(item) for item in items)))
        finally:
            await client.close()

    def check(self, answer, metadata, *, prompt=None):
        return self.check_many([(answer, metadata, prompt)])[0]

    def check_many(self, items):
        if self.base_url:
            from .scorer import run_coroutine

            return run_coroutine(self.acheck_many(items))
        return self.score_texts([(final_answer(response or ""), prompt) for response, _, prompt in items])

    def score_texts(self, pairs):
        "Verdicts for [(final answer, prompt messages)], batched by length, in input order."
        if not self.model:
            raise ConfigError("The reward-model verifier needs a model: --verifier-option model=PATH")
        import torch

        tokenizer, network, device = load_reward_model(self.model, self.device)
        texts = [render(tokenizer, prompt, answer) for answer, prompt in pairs]
        encoded = [tokenizer(t, truncation=True, max_length=self.max_length,
                             add_special_tokens=not getattr(tokenizer, "chat_template", None))["input_ids"]
                   for t in texts]
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
        scores = [None] * len(encoded)
        for start in range(0, len(order), self.batch_size):
            batch = order[start : start + self.batch_size]
            padded = tokenizer.pad({"input_ids": [encoded[i] for i in batch]}, return_tensors="pt")
            with torch.no_grad():
                logits = network(input_ids=padded["input_ids"].to(device),
                                 attention_mask=padded["attention_mask"].to(device)).logits
            for i, value in zip(batch, logits[:, 0].float().cpu().tolist()):
                scores[i] = value
        return [self._verdict(score, {"tokens": len(tokens)}) for score, tokens in zip(scores, encoded)]


def last_value(reply):
    "The reward in a /pooling reply: the last number of data[0].data (per-token rewards end at the answer's last token)."
    try:
        value = reply["data"][0]["data"]
    except (KeyError, IndexError, TypeError):
        return None
    while isinstance(value, list) and value:
        value = value[-1]
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None

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
"""

import threading

from ..errors import ConfigError
from ..reasoning import final_answer
from . import Verdict, Verifier, variant_name

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

    def __init__(self, model=None, threshold=None, batch_size=8, max_length=4096, device=None):
        self.model = model
        self.threshold = None if threshold is None else float(threshold)
        self.batch_size = max(1, int(batch_size))
        self.max_length = int(max_length)
        self.device = device

    def configure(self, **options):
        known = {"model", "threshold", "batch_size", "max_length", "device"}
        unknown = set(options) - known
        if unknown:
            raise ConfigError(f"Unknown reward-model option(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(known))}")
        copy = RewardModelVerifier(**options)
        copy.name = variant_name("reward-model", {"model": options.get("model"), "threshold": copy.threshold})
        return copy

    def check(self, answer, metadata, *, prompt=None):
        return self.score_texts([(answer, prompt)])[0]

    def check_many(self, items):
        return self.score_texts([(final_answer(response or ""), prompt) for response, _, prompt in items])

    def score_texts(self, pairs):
        "Verdicts for [(final answer, prompt messages)], batched by length, in input order."
        if not self.model:
            raise ConfigError("The reward-model verifier needs a model: --option model=PATH")
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
        verdicts = []
        for score, tokens in zip(scores, encoded):
            details = {"tokens": len(tokens)}
            if self.threshold is None:
                details["reason"] = "no threshold: score only"
                verdicts.append(Verdict(None, score, None, details))
            else:
                passed = score >= self.threshold
                details["reason"] = f"score {'>=' if passed else '<'} threshold {self.threshold:g}"
                verdicts.append(Verdict(passed, score, None, details))
        return verdicts

"""The `judge` verifier: an LLM grades each response over an OpenAI-compatible API.

Options (get_verifier("judge", model=..., ...) or `rsr verify --verifier-option k=v`):
model (required), base_url, api_key (else OPENAI_API_KEY), template (a prompt
string or a path to a file holding one, with {question}, {response} and
{answer} placeholders), reasks (how often an unparsable reply is asked again,
default 2), concurrency (requests in flight, default 8), max_tokens, timeout.

The verdict is parsed strictly: the reply's final answer (reasoning stripped)
must contain exactly one line `VERDICT: CORRECT` or `VERDICT: INCORRECT` (case,
surrounding `*` and spaces aside); anything else is unparsable. An unparsable
reply is asked again, up to `reasks` times, with a reminder of the format; after
that the score is stored undecided (passed NULL), never as a pass or a fail.
A request that fails for good (after the shared client's retries) is stored
undecided too, with the error. The HTTP client, its retries with backoff and
Retry-After handling are rsr.client's, the same as the `openai` sampler's.
"""

import asyncio
import re
from pathlib import Path

from ..client import (RequestFailed, RetryPolicy, chat_completion, choices_of,
                      make_async_client, with_retries)
from ..config import SAMPLER
from ..errors import ConfigError
from ..reasoning import final_answer
from .base import Verdict, Verifier, undecided, variant_name

DEFAULT_TEMPLATE = """You are grading an answer to a question.

Question:
{question}

Reference answer (may be empty if there is none):
{answer}

Answer to grade:
{response}

Decide whether the answer to grade is correct. If a reference answer is given, \
the answer is correct when it reaches the same final result as the reference. \
Explain briefly, then end with one line that is exactly
VERDICT: CORRECT
or
VERDICT: INCORRECT"""

REASK_MESSAGE = (
    "Your reply did not end with a verdict line. Reply with exactly one line: "
    "VERDICT: CORRECT or VERDICT: INCORRECT"
)

_VERDICT_RE = re.compile(r"^[\s*_#>]*verdict[\s*_]*:[\s*_]*(correct|incorrect)[\s*_.]*$", re.I | re.M)

# Options that do not change verdicts and so stay out of the verifier's name.
_TRANSPORT_OPTIONS = ("base_url", "api_key", "concurrency", "timeout", "transport")


def parse_verdict(reply):
    "True/False for a reply with exactly one consistent verdict line, else None."
    text = final_answer(reply or "") or ""
    found = {match.group(1).lower() for match in _VERDICT_RE.finditer(text)}
    if len(found) != 1:
        return None
    return found.pop() == "correct"


def question_text(prompt):
    "The last user turn of a prompt's messages (or the prompt itself if a string)."
    if isinstance(prompt, str):
        return prompt
    for message in reversed(prompt or []):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):  # content parts
                return "\n".join(p.get("text", "") for p in content if isinstance(p, dict))
            return str(content or "")
    return ""


class JudgeVerifier(Verifier):
    "LLM-as-judge; see the module docstring."

    name = "judge"
    description = "LLM-as-judge over an OpenAI-compatible endpoint; unparsable verdicts stored undecided"
    inline = False
    is_async = True

    def __init__(self, model=None, base_url=None, api_key=None, template=None, reasks=2,
                 concurrency=8, max_tokens=1024, timeout=120.0, transport=SAMPLER.transport,
                 retry=None):
        self.model = model
        self.base_url = base_url
        self.api_key = api_key
        self.template = template or DEFAULT_TEMPLATE
        self.reasks = int(reasks)
        self.concurrency = max(1, int(concurrency))
        self.max_tokens = int(max_tokens) if max_tokens else None
        self.timeout = float(timeout)
        self.transport = transport
        self.retry = retry or RetryPolicy()

    def configure(self, **options):
        known = {"model", "base_url", "api_key", "template", "reasks", "concurrency",
                 "max_tokens", "timeout", "transport", "retry"}
        unknown = set(options) - known
        if unknown:
            raise ConfigError(
                f"Unknown judge option(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(known - {'retry'}))}"
            )
        template = options.get("template")
        if template and "{" not in template and Path(template).is_file():
            options["template"] = Path(template).read_text()
        copy = JudgeVerifier(**options)
        for placeholder in ("{response}",):
            if placeholder not in copy.template:
                raise ConfigError(f"The judge template must contain {placeholder}")
        naming = {k: v for k, v in options.items() if k != "retry"}
        copy.name = variant_name("judge", naming, ignore=_TRANSPORT_OPTIONS)
        return copy

    def _messages(self, answer, metadata, prompt):
        gold = metadata.get("answer")
        text = self.template
        for key, value in (("question", question_text(prompt)), ("answer", "" if gold is None else gold),
                           ("response", answer)):
            text = text.replace("{" + key + "}", str(value))
        return [{"role": "user", "content": text}]

    def check(self, answer, metadata, *, prompt=None):
        from .scorer import run_coroutine

        return run_coroutine(self.acheck_many([(answer, metadata, prompt)]))[0]

    def check_many(self, items):
        from .scorer import run_coroutine

        return run_coroutine(self.acheck_many(items))

    async def acheck_many(self, items):
        "Verdicts for [(response, metadata, prompt)], up to `concurrency` requests at once."
        if not self.model:
            raise ConfigError("The judge needs a model: --verifier-option model=NAME (and base_url=URL)")
        client = make_async_client(self.base_url, self.api_key, self.timeout, self.transport)
        semaphore = asyncio.Semaphore(self.concurrency)
        try:
            async def one(item):
                response, metadata, prompt = item
                async with semaphore:
                    return await self._judge(client, final_answer(response or ""), metadata or {}, prompt)

            return list(await asyncio.gather(*(one(item) for item in items)))
        finally:
            await client.close()

    async def _judge(self, client, answer, metadata, prompt):
        messages = self._messages(answer, metadata, prompt)
        replies = []
        # The judge's tokens over all asks, as its server reports them.
        usage = {"prompt_tokens": 0, "completion_tokens": 0}
        params = {"temperature": 0.0}
        if self.max_tokens:
            params["max_tokens"] = self.max_tokens
        for attempt in range(1 + self.reasks):
            try:
                completion = await with_retries(
                    lambda: chat_completion(client, self.model, messages, **params), self.retry
                )
            except RequestFailed as ex:
                return undecided(f"judge request failed: {ex}", reason="request failed",
                                 replies=replies, usage=usage)
            counted = completion.get("usage") if isinstance(completion, dict) else None
            for key in usage:
                value = counted.get(key) if isinstance(counted, dict) else None
                usage[key] += value if isinstance(value, int) else 0
            try:
                reply = choices_of(completion)[0][1]
            except RequestFailed:
                reply = ""
            replies.append(reply)
            verdict = parse_verdict(reply)
            if verdict is not None:
                details = {"reason": "judge verdict", "asks": attempt + 1, "reply": reply[-2000:],
                           "usage": usage}
                return Verdict(verdict, float(verdict), "CORRECT" if verdict else "INCORRECT", details)
            messages = messages + [{"role": "assistant", "content": reply},
                                   {"role": "user", "content": REASK_MESSAGE}]
        return Verdict(None, None, None,
                       {"reason": "unparsable verdict", "asks": len(replies),
                        "replies": [r[-1000:] for r in replies], "usage": usage},
                       f"unparsable judge verdict after {len(replies)} asks")

"""The OpenAI batch file format, as rsr writes and reads it.

A batch input file has one request per line::

    {"custom_id": "rsr:1:4:0:123:Qwen%2FQwen3-8B:gsm8k-0001", "method": "POST",
     "url": "/v1/chat/completions", "body": {"model": ..., "messages": ..., "seed": 123}}

`vllm run-batch` reads the same lines, and OpenAI's (and others') Batch APIs
take such a file. An output file has one result per line::

    {"id": ..., "custom_id": ..., "response": {"status_code": 200, "body": {...}},
     "error": null}

Each line asks for one rollout (n = 1, the rollout's own seed), so a result
is stored under exactly the sample index it was planned for. The custom_id
says which: `rsr:STEP:REQUESTED:SAMPLE_INDEX:SEED:ARM:PROMPT_ID` (SEED empty
when the run has none; the arm percent-encoded; the prompt id last, so it may
hold colons).

This module has no state and reads no ledger: the planning is rsr/batches.py's,
the Batch API client rsr/samplers/openai_batch.py's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote

from .errors import InputError

PREFIX = "rsr"
CHAT_URL = "/v1/chat/completions"


@dataclass(frozen=True)
class BatchKey:
    "What a custom_id says: the rollout's prompt, step, its step's size, sample index, seed, arm."

    prompt_id: str
    step: int
    requested: int
    sample_index: int
    seed: int | None
    arm: str

    @property
    def custom_id(self) -> str:
        seed = "" if self.seed is None else str(self.seed)
        return (f"{PREFIX}:{self.step}:{self.requested}:{self.sample_index}:{seed}:"
                f"{quote(self.arm, safe='')}:{self.prompt_id}")


def parse_custom_id(text: Any, where: str) -> BatchKey:
    "The BatchKey a custom_id encodes; InputError naming where for anything else."
    parts = text.split(":", 6) if isinstance(text, str) else []
    try:
        if len(parts) != 7 or parts[0] != PREFIX or not parts[5] or not parts[6]:
            raise ValueError
        step, requested, index = int(parts[1]), int(parts[2]), int(parts[3])
        seed = int(parts[4]) if parts[4] else None
        if step < 1 or requested < 1 or index < 0:
            raise ValueError
    except ValueError:
        raise InputError(
            f"{where}: custom_id {text!r} was not written by 'rsr export --format batch-requests' "
            "(expected rsr:STEP:REQUESTED:INDEX:SEED:ARM:PROMPT_ID)"
        ) from None
    return BatchKey(parts[6], step, requested, index, seed, unquote(parts[5]))


def request_line(custom_id: str, model: str, messages: list, params: dict, seed: int | None,
                 url: str = CHAT_URL) -> dict:
    "One batch input line: the chat request for one rollout (n = 1, its own seed)."
    body = {"model": model, "messages": messages}
    body.update({k: v for k, v in params.items() if v is not None and k not in ("n", "seed")})
    if seed is not None:
        body["seed"] = seed
    return {"custom_id": custom_id, "method": "POST", "url": url, "body": body}


def is_output_line(raw: Any) -> bool:
    "True for a batch output line (custom_id with a response or an error object)."
    return (isinstance(raw, dict) and "custom_id" in raw
            and (isinstance(raw.get("response"), dict) or raw.get("error") is not None))


@dataclass
class BatchResult:
    "One output line, read: its key, the chat completion body or the error text."

    key: BatchKey
    body: dict | None
    error: str | None


def _error_text(error: Any) -> str:
    if isinstance(error, dict):
        code, message = error.get("code"), error.get("message")
        text = ": ".join(str(part) for part in (code, message) if part)
        return text or json.dumps(error)
    return str(error)


def read_output_line(raw: dict, where: str) -> BatchResult:
    """A batch output line as a BatchResult: a 200 response's body, or the
    error (the line's own, or a non-200 response's body) as text."""
    key = parse_custom_id(raw.get("custom_id"), where)
    return BatchResult(key, *read_result(raw, where))


def read_result(raw: dict, where: str) -> tuple[dict | None, str | None]:
    "A batch output line's (body, None) for a 200 response, else (None, the error as text)."
    if raw.get("error") is not None:
        return None, _error_text(raw["error"])
    response = raw.get("response")
    if not isinstance(response, dict):
        raise InputError(f"{where}: field 'response' must be an object")
    body, status = response.get("body"), response.get("status_code", 200)
    if not isinstance(status, int) or isinstance(status, bool):
        raise InputError(f"{where}: field 'response.status_code' must be an integer")
    if status != 200:
        error = body.get("error", body) if isinstance(body, dict) else body
        return None, f"HTTP {status}: {_error_text(error)}"
    if not isinstance(body, dict):
        raise InputError(f"{where}: field 'response.body' must be an object")
    return body, None

"""The `openai-batch` sampler: rounds of requests through a provider's Batch API.

Each call of the sampling loop's batch interface (`complete_batch`, up to
`--batch-prompts` prompts) is one batch: the requests are written as an
OpenAI batch input file (one line per rollout, its own seed; see
rsr/batchfiles.py), uploaded (`/v1/files`), submitted (`/v1/batches`),
polled until the provider finishes it, and its output and error files are
downloaded and handed back as completions, which the loop scores and writes
like any others. Early stop happens between batches: the next one holds only
the prompts still pending.

A batch can take hours, so its ids live in the ledger's `batches` table from
the moment they exist (the sampler is told the ledger's path through
`attach_ledger`). A killed `rsr sample` plans the same requests again
(nothing of them was written), finds their batch by the hash of the request
file and resumes polling it: the provider never gets the same requests
twice. Ctrl-C leaves the batch running (re-run to collect it) unless
`--cancel-on-interrupt` is given. An expired batch gives back what it
finished; requests it did not finish, and requests that failed, become error
rows (they count against the budget, and the next batch asks again).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
import threading
from typing import Optional

from pydantic import Field

from ..batchfiles import CHAT_URL, read_result, request_line
from ..client import RequestFailed, resolve_base_url
from ..config import SAMPLER
from ..errors import RsrError
from ..hookspecs import hookimpl
from ..runs import utcnow
from . import Completion, Sampler, SamplerOptions
from .openai import parse_response

log = logging.getLogger(__name__)

# Provider statuses after which a batch changes no more.
FINISHED = ("completed", "failed", "expired", "cancelled")
# A stored batch the same requests may take up again: any but one that failed
# or was cancelled (then they are submitted afresh).
RESUMABLE_SQL = """
select id, input_file_id, batch_id, status from batches
where requests_hash = :hash and status not in ('failed', 'cancelling', 'cancelled')
order by id desc limit 1
"""
INSERT_BATCH_SQL = """
insert into batches (run_id, requests_hash, requests, base_url, model, input_file_id, status)
values (:run_id, :hash, :requests, :base_url, :model, :input_file_id, 'uploaded')
"""
UPDATE_BATCH_SQL = """
update batches set batch_id = coalesce(:batch_id, batch_id), status = :status,
    output_file_id = coalesce(:output_file_id, output_file_id),
    error_file_id = coalesce(:error_file_id, error_file_id), updated_at = :now
where id = :id
"""


class BatchInterrupted(RsrError):
    "The run stopped while a batch was running; it stays in the ledger to resume."


class BatchStore:
    "The ledger's `batches` table, on a connection of the sampler's own."

    def __init__(self, path: str, run_id: int | None):
        self.path, self.run_id = path, run_id

    def _connect(self):
        conn = sqlite3.connect(self.path, timeout=60, isolation_level=None)
        conn.row_factory = sqlite3.Row
        return conn

    def find(self, requests_hash: str):
        with self._connect() as conn:
            return conn.execute(RESUMABLE_SQL, {"hash": requests_hash}).fetchone()

    def add(self, requests_hash, requests, base_url, model, input_file_id) -> int:
        conn = self._connect()
        try:
            return conn.execute(INSERT_BATCH_SQL, {
                "run_id": self.run_id, "hash": requests_hash, "requests": requests,
                "base_url": base_url, "model": model, "input_file_id": input_file_id,
            }).lastrowid
        finally:
            conn.close()

    def update(self, row_id, status, batch_id=None, output_file_id=None, error_file_id=None):
        conn = self._connect()
        try:
            conn.execute(UPDATE_BATCH_SQL, {
                "id": row_id, "status": status, "batch_id": batch_id,
                "output_file_id": output_file_id, "error_file_id": error_file_id, "now": utcnow(),
            })
        finally:
            conn.close()


class OpenAIBatchSampler(Sampler):
    name = "openai-batch"
    description = "A provider's Batch API (OpenAI files and batches endpoints): rounds at batch prices"
    endpoint = True
    batch = True

    class Options(SamplerOptions):
        batch_prompts: Optional[int] = Field(
            None, ge=1, description="openai-batch: prompts per batch (a round of early stop)")
        poll_interval: float = Field(30.0, gt=0, description="openai-batch: seconds between polls")
        completion_window: str = Field("24h", description="openai-batch: the batch's window")
        cancel_on_interrupt: bool = Field(
            False, description="openai-batch: cancel the running batch on Ctrl-C "
            "(default: leave it running; re-run to collect it)")

    def __init__(self, model=None, base_url=None, api_key=None, timeout=SAMPLER.timeout,
                 transport=None, batch_prompts=None, poll_interval=30.0, completion_window="24h",
                 cancel_on_interrupt=False):
        super().__init__(model=model or "default")
        self.base_url = resolve_base_url(base_url)
        self.api_key = api_key or os.environ.get("OPENAI_API_KEY") or "EMPTY"
        self.timeout = timeout
        self.preferred_batch_prompts = batch_prompts
        self.poll_interval = poll_interval
        self.completion_window = completion_window
        self.cancel_on_interrupt = cancel_on_interrupt
        self.store: BatchStore | None = None
        self.stopping = threading.Event()
        self._client = None

    def describe(self):
        return {"sampler": self.name, "model": self.model, "base_url": self.base_url}

    def attach_ledger(self, path: str, run_id: int | None) -> None:
        "Keep this run's batches in the ledger at path (called before sampling starts)."
        self.store = BatchStore(path, run_id)

    @property
    def client(self):
        if self._client is None:
            import openai

            # A poll that meets a dropped connection or a 5xx is retried with
            # backoff by the client; hours of polling should not end on one.
            self._client = openai.OpenAI(base_url=self.base_url, api_key=self.api_key,
                                         timeout=self.timeout, max_retries=SAMPLER.max_retries)
        return self._client

    def request_file(self, requests) -> tuple[bytes, list]:
        "The batch input file of these requests, and each rollout's (custom_id, seed)."
        lines, slots = [], []
        for position, request in enumerate(requests):
            slots.append([])
            for i in range(request.n):
                custom_id = f"{position}:{i}:{request.prompt_id}"
                seed = request.seed_for(i)
                slots[-1].append((custom_id, seed))
                lines.append(request_line(custom_id, self.model, request.messages,
                                          request.params, seed, CHAT_URL))
        data = "".join(json.dumps(line, sort_keys=True, ensure_ascii=False) + "\n" for line in lines)
        return data.encode(), slots

    def complete_batch(self, requests):
        if self.store is None:
            raise RsrError("The openai-batch sampler keeps its batches in the ledger: "
                           "run it with rsr sample")
        data, slots = self.request_file(requests)
        requests_hash = hashlib.sha256(self.base_url.encode() + b"\n" + data).hexdigest()
        row_id, batch = self.submit(requests_hash, data, sum(len(s) for s in slots))
        batch = self.wait(row_id, batch)
        results = self.download(batch)
        missing = f"no result in batch {batch.id} (status {batch.status})"
        return [[self.completion(results.get(custom_id), seed, missing) for custom_id, seed in slot]
                for slot in slots]

    def submit(self, requests_hash, data, count):
        "The stored batch for these requests, or a new one: (row id, batch)."
        row = self.store.find(requests_hash)
        if row is not None and row["batch_id"]:
            log.info("resuming batch %s (%s)", row["batch_id"], row["status"])
            return row["id"], self.client.batches.retrieve(row["batch_id"])
        if row is not None:
            row_id, input_file_id = row["id"], row["input_file_id"]
            # Killed after the upload: a batch created just before the kill is
            # found by its input file rather than created twice.
            for batch in self.client.batches.list(limit=100):
                if batch.input_file_id == input_file_id:
                    self.store.update(row_id, batch.status, batch_id=batch.id)
                    return row_id, batch
        else:
            uploaded = self.client.files.create(file=("requests.jsonl", data), purpose="batch")
            row_id = self.store.add(requests_hash, count, self.base_url, self.model, uploaded.id)
            input_file_id = uploaded.id
        batch = self.client.batches.create(
            input_file_id=input_file_id, endpoint=CHAT_URL,
            completion_window=self.completion_window, metadata={"rsr_requests": requests_hash[:64]})
        self.store.update(row_id, batch.status, batch_id=batch.id)
        log.info("submitted batch %s: %d requests", batch.id, count)
        return row_id, batch

    def wait(self, row_id, batch):
        "Poll the batch until it finishes (or the run stops); returns it finished."
        status = None
        while True:
            if batch.status != status:
                status = batch.status
                self.store.update(row_id, status, output_file_id=batch.output_file_id,
                                  error_file_id=batch.error_file_id)
                log.info("batch %s: %s", batch.id, status)
            if status in FINISHED:
                if status == "failed":
                    errors = getattr(batch, "errors", None)
                    detail = "; ".join(e.message or e.code or "" for e in (errors.data or [])) if errors else ""
                    raise RsrError(f"Batch {batch.id} failed" + (f": {detail}" if detail else ""))
                return batch
            if self.stopping.wait(self.poll_interval):
                if self.cancel_on_interrupt:
                    self.client.batches.cancel(batch.id)
                    self.store.update(row_id, "cancelling")
                    raise BatchInterrupted(f"Batch {batch.id} cancelled")
                raise BatchInterrupted(f"Batch {batch.id} is still {status}; re-run to collect it")
            batch = self.client.batches.retrieve(batch.id)

    def download(self, batch) -> dict:
        "{custom_id: (body, error)} from the batch's output and error files."
        results = {}
        for file_id in (batch.output_file_id, batch.error_file_id):
            if not file_id:
                continue
            text = self.client.files.content(file_id).text
            for number, line in enumerate(text.splitlines(), 1):
                if not line.strip():
                    continue
                raw = json.loads(line)
                results[raw.get("custom_id")] = read_result(raw, f"batch {batch.id} file {file_id}:{number}")
        return results

    @staticmethod
    def completion(result, seed, missing) -> Completion:
        if result is None:
            return Completion(response=None, error=missing, seed=seed)
        body, error = result
        if body is None:
            return Completion(response=None, error=error, seed=seed)
        try:
            return parse_response(body, None, seed)[0]
        except RequestFailed as ex:
            return Completion(response=None, error=f"malformed response: {ex}", seed=seed)

    async def aclose(self):
        # The run is ending (or stopping): a poll in progress stops waiting.
        self.stopping.set()

    def close(self):
        self.stopping.set()
        if self._client is not None:
            self._client.close()
            self._client = None


@hookimpl
def register_samplers(register):
    register(OpenAIBatchSampler)

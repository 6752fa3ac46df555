"""A fault-injecting OpenAI-compatible server on 127.0.0.1 (port 0), for the
reliability tests.

Every POST to /v1/chat/completions gets one answer, chosen per request:

- from `script` (a queue of fault names) while it holds any, else
- from a seeded schedule that depends only on the request itself, never on the
  order requests arrive in: the request's key (its `seed` and messages) and
  how many times that key was asked before. So concurrency, retries and restarts
  cannot change which request meets which fault.

Faults come in two families:

- *transient* (FAULTS_TRANSIENT), drawn per attempt: an error status, a hang
  past the client's timeout, a connection closed mid-body, malformed JSON, zero
  choices. A client that retries gets a real answer sooner or later.
- *answers* (FAULTS_ANSWER), drawn per key, as a deterministic engine would
  give them: `length` (finish_reason length), `empty` (an empty string),
  `short` (fewer choices than n), `slow` (the right answer, late).

The content of choice i of a request is `responder(seed, i)`, a pure function,
so a run interrupted anywhere and resumed must end with exactly the rollouts of
an uninterrupted one. Every answer is appended to `log` (see Answer), with
the moment its body was written out (`delivered_at`, time.monotonic() of this
process) and a hash of each choice's content: `delivered_choices(before=t)`
is what a client had been sent before t, to hold against its ledger.
"""

import hashlib
import json
import random
import socket
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer

from servers import JSONHandler, ServerThread

FAULTS_TRANSIENT = ("429", "429-retry-after", "500", "502", "503", "hang", "close",
                    "malformed", "zero-choices")
FAULTS_ANSWER = ("length", "empty", "short", "slow")
FAULTS = FAULTS_TRANSIENT + FAULTS_ANSWER

# The kind rsr's client reports (SampleReport.faults) for each transient fault.
CLIENT_KIND = {
    "429": "http_429", "429-retry-after": "http_429", "500": "http_500", "502": "http_502",
    "503": "http_503", "hang": "timeout", "close": "disconnect", "malformed": "malformed",
    "zero-choices": "no_choices",
}


def content_hash(text):
    "The hash the server logs for a choice's content (and a test computes from a ledger)."
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def default_responder(seed, index):
    "Right or wrong as a pure function of (seed, choice index)."
    digest = hashlib.sha256(f"{seed}:{index}".encode()).digest()
    return "right" if digest[0] % 3 == 0 else f"wrong {seed}-{index}"


class QuietServer(ThreadingHTTPServer):
    "Clients that time out, are killed or are cut off are expected here, not errors."

    daemon_threads = True

    def handle_error(self, request, client_address):
        pass


@dataclass
class Answer:
    "One request and what the server answered (fault None: a normal answer)."

    number: int
    key: str
    attempt: int
    seed: int | None
    n: int
    prompt: str
    fault: str | None
    # (index, content, finish_reason) of every choice sent; empty for errors.
    choices: list = field(default_factory=list)
    # True once the whole body was written to the socket, and when
    # (time.monotonic() of the test's process).
    delivered: bool = False
    delivered_at: float | None = None
    # The server's `epoch` when it arrived (a test sets it per client process).
    epoch: int = 0


class FaultServer(ServerThread):
    """The server; start() it, point --base-url at .url, stop() it.

    rate is the share of requests that get a fault; weights picks among
    `kinds` (default: all of FAULTS). hang_s should exceed the client's
    --request-timeout; slow_s should not.
    """

    def __init__(self, seed=0, rate=0.3, kinds=FAULTS, weights=None, honour_n=True,
                 responder=default_responder, delay_s=0.0, hang_s=1.5, slow_s=0.2,
                 retry_after="1"):
        self.seed = seed
        self.rate = rate
        self.kinds = tuple(kinds)
        self.weights = weights
        self.honour_n = honour_n
        self.responder = responder
        self.delay_s = delay_s
        self.hang_s = hang_s
        self.slow_s = slow_s
        self.retry_after = retry_after
        self.script = deque()
        self.epoch = 0
        self.log = []
        self.attempts = Counter()
        self.lock = threading.Lock()
        self.serve(QuietServer(("127.0.0.1", 0), self._handler()))

    # -- the schedule -----------------------------------------------------------

    def choose(self, key, attempt):
        "The fault for the attempt-th request with this key (None: answer normally)."
        transient = [k for k in self.kinds if k in FAULTS_TRANSIENT]
        answer = [k for k in self.kinds if k in FAULTS_ANSWER]
        weight = self.weights or {}
        rng = random.Random(f"{self.seed}:{key}:{attempt}")
        # An answer fault is a property of the key: the same on every attempt.
        sticky = random.Random(f"{self.seed}:{key}")
        share = len(answer) / max(1, len(self.kinds))
        if answer and sticky.random() < self.rate * share:
            return sticky.choices(answer, [weight.get(k, 1) for k in answer])[0]
        if transient and rng.random() < self.rate * (1 - share):
            return rng.choices(transient, [weight.get(k, 1) for k in transient])[0]
        return None

    # -- answering ----------------------------------------------------------------

    def _handler(self):
        server = self

        class Handler(JSONHandler):
            def do_GET(self):
                self.send_json(200, {"object": "list", "data": [{"id": "fault-model"}]})

            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                server.answer(self, body)

        return Handler

    def answer(self, handler, body):
        seed, n = body.get("seed"), body.get("n", 1)
        messages = json.dumps(body.get("messages"), sort_keys=True)
        # n stays out of the key: a rollout's seed fixes its answer however it
        # is asked for (n=2 to a server that ignores n, then n=1).
        key = hashlib.sha256(f"{seed}:{messages}".encode()).hexdigest()[:16]
        prompt = (body.get("messages") or [{}])[-1].get("content", "")
        with self.lock:
            attempt = self.attempts[key]
            self.attempts[key] += 1
            fault = self.script.popleft() if self.script else self.choose(key, attempt)
            entry = Answer(len(self.log), key, attempt, seed, n, prompt, fault,
                           epoch=self.epoch)
            self.log.append(entry)
        if self.delay_s:
            time.sleep(self.delay_s)
        entry.delivered = self.send(handler, body, entry)
        if entry.delivered:
            entry.delivered_at = time.monotonic()

    def send(self, handler, body, entry):
        fault = entry.fault
        if fault in ("429", "500", "502", "503", "429-retry-after"):
            status = int(fault[:3])
            headers = {"Retry-After": self.retry_after} if fault == "429-retry-after" else None
            error = {"error": {"message": f"injected {fault}", "type": "server_error"}}
            return handler.send_json(status, error, headers)
        if fault == "hang":
            time.sleep(self.hang_s)
            return handler.send_json(503, {"error": {"message": "hung"}})
        if fault == "close":
            handler.send_response(200)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", "4000")
            handler.end_headers()
            try:
                handler.wfile.write(b'{"id": "chatcmpl-cut", "choices": [{"ind')
                handler.wfile.flush()
                handler.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            handler.close_connection = True
            return False
        if fault == "malformed":
            return handler.send_json(200, b'{"id": "chatcmpl-bad", "choices": [{"index": 0,')
        if fault == "slow":
            time.sleep(self.slow_s)
        count = body.get("n", 1) if self.honour_n else 1
        if fault == "zero-choices":
            count = 0
        elif fault == "short" and count > 1:
            # Two or more: one choice for n > 1 reads as a server that ignores n.
            count = random.Random(f"{self.seed}:{entry.key}").randint(2, count - 1) if count > 2 else 1
        finish = "length" if fault == "length" else "stop"
        for index in range(count):
            text = "" if fault == "empty" else self.responder(entry.seed, index)
            entry.choices.append((index, text, finish))
        payload = {
            "id": f"chatcmpl-{entry.number}", "object": "chat.completion",
            "created": int(time.time()), "model": body.get("model", "fault-model"),
            "choices": [
                {"index": i, "message": {"role": "assistant", "content": text},
                 "finish_reason": reason}
                for i, text, reason in entry.choices
            ],
            "usage": {"prompt_tokens": 9, "completion_tokens": 3 * count,
                      "total_tokens": 9 + 3 * count},
        }
        return handler.send_json(200, payload)

    # -- reading the log ------------------------------------------------------------

    def delivered_choices(self, before=None, epoch=None):
        """{(seed, content_hash(text))} of every choice whose reply was written
        out in full (before the monotonic time `before`, and to requests of
        `epoch`, if given)."""
        with self.lock:
            entries = list(self.log)
        return {(e.seed, content_hash(text)) for e in entries
                if e.delivered and (before is None or e.delivered_at < before)
                and (epoch is None or e.epoch == epoch)
                for _, text, _ in e.choices}

    def counts(self):
        "How many requests got each fault (None: a normal answer)."
        with self.lock:
            return Counter(entry.fault for entry in self.log)


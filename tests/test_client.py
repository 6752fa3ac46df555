"""rsr.client against a real HTTP server on 127.0.0.1: both transports (rsr's
own over aiohttp, and the openai SDK's httpx) turn every reply and every
failure into the same dict or the same RequestFailed."""

import asyncio
import json

import pytest

from rsr.client import HTTPClient, RequestFailed, chat_completion, make_async_client
from rsr.errors import ConfigError
from servers import JSONHandler, OpenAIStub, ServerThread, free_port

TRANSPORTS = ["aiohttp", "httpx"]


def call(client, *args, **params):
    "One chat completion on a fresh event loop; the client is closed after."
    async def go():
        try:
            return await chat_completion(client, "stub-model", *args, **params)
        finally:
            await client.close()
    return asyncio.run(go())


def failure(client, messages=None):
    "The RequestFailed one request raises."
    with pytest.raises(RequestFailed) as info:
        call(client, messages or [{"role": "user", "content": "hi"}])
    return info.value


@pytest.fixture
def stub():
    with OpenAIStub(responder=lambda body: "réponse ✓") as server:
        yield server


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_reply_headers_and_body(stub, transport, monkeypatch):
    monkeypatch.setenv("OPENAI_ORG_ID", "org-42")
    monkeypatch.delenv("OPENAI_PROJECT_ID", raising=False)
    client = make_async_client(stub.url, "sk-test-123", 30, transport)
    messages = [{"role": "user", "content": "Quelle est la réponse? 数学"}]
    reply = call(client, messages, n=2, temperature=0.5, extra_body={"top_k": 20})
    assert [c["message"]["content"] for c in reply["choices"]] == ["réponse ✓", "réponse ✓"]
    assert reply["usage"]["completion_tokens"] == 10
    (request,) = stub.requests
    headers = {k.lower(): v for k, v in request["headers"].items()}
    assert request["path"] == "/v1/chat/completions"
    assert headers["authorization"] == "Bearer sk-test-123"
    assert headers["content-type"].startswith("application/json")
    assert headers["openai-organization"] == "org-42" and "openai-project" not in headers
    assert request["body"] == {"model": "stub-model", "messages": messages, "n": 2,
                               "temperature": 0.5, "top_k": 20}


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_error_status_carries_the_servers_message_and_retry_advice(stub, transport):
    stub.script.append({"status": 400, "message": "max_tokens is too large"})
    error = failure(make_async_client(stub.url, None, 30, transport))
    assert (error.status, error.kind, error.retryable) == (400, "http_400", False)
    assert str(error) == "HTTP 400: max_tokens is too large"

    stub.script.append({"status": 429, "headers": {"Retry-After": "7"}})
    error = failure(make_async_client(stub.url, None, 30, transport))
    assert (error.status, error.kind, error.retryable, error.retry_after) == (429, "http_429", True, 7.0)

    stub.script.append({"status": 503, "headers": {"retry-after-ms": "250"}})
    error = failure(make_async_client(stub.url, None, 30, transport))
    assert error.retryable and error.retry_after == 0.25


def test_error_page_that_is_not_json_is_quoted_shortened(stub):
    stub.script.append({"status": 502, "raw": "<html>Bad gateway " + "x" * 1000 + "</html>"})
    error = failure(HTTPClient(stub.url))
    assert str(error).startswith("HTTP 502: <html>Bad gateway xxx")
    assert len(str(error)) < 330 and error.retryable


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_an_echoed_api_key_never_reaches_the_error(stub, transport):
    key = "sk-very-secret-4711"
    stub.script.append({"status": 401, "message": f"Incorrect API key provided: {key}."})
    error = failure(make_async_client(stub.url, key, 30, transport))
    assert key not in str(error) and "[redacted]" in str(error)
    assert error.kind == "http_401" and not error.retryable


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_malformed_body(stub, transport):
    stub.script.append({"raw": '{"id": "cut", "choices": ['})
    error = failure(make_async_client(stub.url, None, 30, transport))
    assert error.kind == "malformed" and str(error).startswith("malformed response")
    stub.script.append({"raw": "[1, 2]"})
    error = failure(make_async_client(stub.url, None, 30, transport))
    assert error.kind == "malformed" and "not a JSON object" in str(error)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_timeout(stub, transport):
    # The stub answers normally after 3 s: a client that ignored its 0.5 s
    # timeout would get that answer instead of the failure.
    stub.script.append({"hang": 3})
    error = failure(make_async_client(stub.url, None, 0.5, transport))
    assert error.kind == "timeout" and error.retryable


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_connection_dropped_mid_reply(stub, transport):
    stub.script.append({"close": True})
    error = failure(make_async_client(stub.url, None, 30, transport))
    assert error.kind == "disconnect" and error.retryable
    assert str(error).startswith("connection error")


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_nothing_listening(transport):
    error = failure(make_async_client(f"http://127.0.0.1:{free_port()}/v1", None, 30, transport))
    assert error.kind == "connection" and error.retryable


def test_base_url_from_the_environment(stub, monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", stub.url + "/")
    reply = call(HTTPClient(), [{"role": "user", "content": "hi"}])
    assert reply["choices"][0]["message"]["content"] == "réponse ✓"
    assert stub.requests[0]["path"] == "/v1/chat/completions"


def test_proxy_from_the_environment_is_used(monkeypatch):
    "HTTP_PROXY is honoured: the request for an unresolvable host reaches the proxy."
    seen = []

    class Proxy(JSONHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append((self.path, body["model"]))
            self.send_json(200, {"choices": [{"index": 0, "message": {"content": "via proxy"},
                                              "finish_reason": "stop"}]})

    from http.server import ThreadingHTTPServer

    server = ServerThread()
    server.serve(ThreadingHTTPServer(("127.0.0.1", 0), Proxy))
    with server:
        for name in ("NO_PROXY", "no_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{server.port}")
        reply = call(HTTPClient("http://rsr-upstream.invalid/v1"), [{"role": "user", "content": "x"}])
    assert reply["choices"][0]["message"]["content"] == "via proxy"
    assert seen == [("http://rsr-upstream.invalid/v1/chat/completions", "stub-model")]


def test_unknown_transport_is_a_config_error():
    with pytest.raises(ConfigError, match="transport must be aiohttp or httpx, not 'grpc'"):
        make_async_client("http://127.0.0.1:1/v1", None, 30, "grpc")

"""A wrong --base-url spends nothing: a malformed URL is refused before the
run starts, and an endpoint that never answered one request correctly (no
server, not JSON, not a chat reply) stops the run with one line and no rows.
Only failures after the endpoint has answered correctly become error rows."""

import pytest
from faultserver import FaultServer, QuietServer
from proc import assert_clean_error, cli, load_ledger, query
from servers import JSONHandler, OpenAIStub, ServerThread, free_port

SAMPLE = ["--model", "m", "--verifier", "exact", "--max-retries", 1, "--retry-base-delay", 0,
          "--request-timeout", 5, "--silent"]


@pytest.fixture
def ledger(tmp_path):
    return load_ledger(tmp_path, 20)


def written(db_path):
    "Rows a sampling run could have written, and prompts it left without budget."
    return query(db_path, """select (select count(*) from rollouts), (select count(*) from steps),
                                    (select count(*) from scores), (select count(*) from progress)""")


class HTMLServer(ServerThread):
    "A web server that answers every request with an HTML page and status 200."

    def __init__(self):
        class Handler(JSONHandler):
            def reply(self):
                length = int(self.headers.get("Content-Length", 0))
                self.rfile.read(length)
                self.send_json(200, b"<!doctype html><html><body>It works!</body></html>",
                               {"Content-Type": "text/html"})

            do_GET = do_POST = reply

        self.serve(QuietServer(("127.0.0.1", 0), Handler))


class NotChatServer(ServerThread):
    "A JSON API that is not a chat completions endpoint: 200 with some other object."

    def __init__(self):
        class Handler(JSONHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                self.send_json(200, {"status": "ok", "items": []})

        self.serve(QuietServer(("127.0.0.1", 0), Handler))


@pytest.mark.parametrize("url, words", [
    ("http//127.0.0.1:8000/v1", ["--base-url", "'http//127.0.0.1:8000/v1'", "http://"]),
    ("not a url", ["--base-url", "'not a url'", "http://"]),
    ("ftp://127.0.0.1/v1", ["--base-url", "'ftp://127.0.0.1/v1'", "http://"]),
    ("http://127.0.0.1:99999/v1", ["--base-url", "99999", "port"]),
    ("http:///v1", ["--base-url", "no host"]),
    ("", ["--base-url is empty"]),
])
def test_malformed_base_url_is_refused_before_anything_is_written(ledger, url, words):
    result = cli("sample", ledger, "--base-url", url, *SAMPLE)
    line = assert_clean_error(result, *words)
    assert "is for the openai sampler" not in line
    assert written(ledger) == [(0, 0, 0, 0)]
    # Refused before the run started: not even a runs row.
    assert query(ledger, "select count(*) from runs where command = 'sample'") == [(0,)]


def test_malformed_openai_base_url_from_the_environment(ledger):
    result = cli("sample", ledger, "--sampler", "openai", *SAMPLE,
                 env={"OPENAI_BASE_URL": "localhost:8000/v1"})
    assert_clean_error(result, "OPENAI_BASE_URL", "'localhost:8000/v1'")
    assert written(ledger) == [(0, 0, 0, 0)]


@pytest.mark.parametrize("make, words", [
    (HTMLServer, ["gave no usable chat completion", "malformed response"]),
    (NotChatServer, ["gave no usable chat completion", "no choices list"]),
])
def test_endpoint_that_is_not_a_chat_server_spends_nothing(ledger, make, words):
    with make() as server:
        result = cli("sample", ledger, "--base-url", server.url, *SAMPLE)
    assert_clean_error(result, server.url, *words, "nothing was written")
    assert written(ledger) == [(0, 0, 0, 0)]
    assert query(ledger, "select status from runs where command = 'sample'") == [("failed",)]


@pytest.mark.parametrize("host", ["127.0.0.1:{port}", "no-such-host.invalid"])
def test_endpoint_with_no_server_spends_nothing(ledger, host):
    url = f"http://{host.format(port=free_port())}/v1"
    result = cli("sample", ledger, "--base-url", url, *SAMPLE)
    assert_clean_error(result, url, "connection error", "nothing was written")
    assert written(ledger) == [(0, 0, 0, 0)]


def test_a_corrected_url_then_samples_every_prompt(ledger):
    with HTMLServer() as server:
        assert cli("sample", ledger, "--base-url", server.url, *SAMPLE).returncode == 1
    with FaultServer(rate=0) as server:
        result = cli("sample", ledger, "--base-url", server.url, *SAMPLE)
    assert result.returncode == 0, result.stderr
    # No prompt was left exhausted by the wrong endpoint: each passed or used its budget.
    assert query(ledger, "select count(*) from rollouts where error is not null") == [(0,)]
    assert query(ledger, """select count(*) from prompts p left join verdicts v
                            on v.prompt_id = p.id where coalesce(v.passed, 0) = 0""") == [(0,)]


def test_failures_after_the_endpoint_answered_become_error_rows(ledger):
    # The endpoint answers well, then sends garbage: those rollouts are errors.
    with OpenAIStub(responder=lambda body: "right") as stub:
        stub.script.extend([{"choices": ["right"]}] + [{"raw": "<html>"}] * 4)
        result = cli("sample", ledger, "--base-url", stub.url, *SAMPLE, "--concurrency", 1,
                     "--limit", 2, "--step-size", 1, "--target", "best-of-n:2",
                     "--max-rollouts", 2)
    assert result.returncode == 0, result.stderr
    errors = query(ledger, "select count(*) from rollouts where error like 'malformed%'")
    assert errors == [(2,)]

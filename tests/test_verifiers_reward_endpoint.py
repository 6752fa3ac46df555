"""The `reward-model` verifier against a served model's /pooling endpoint: a
real HTTP server on 127.0.0.1 that answers in the shape `vllm serve` does."""

import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from servers import ServerThread

from rsr.client import RetryPolicy
from rsr.verification import Scorer
from rsr.verifiers import get_verifier
from rsr.verifiers.reward_model import last_value


@pytest.fixture
def pooling_server():
    "Rewards the answer's length; per-token rewards, the last one being the score."
    state = {"requests": [], "fail_first": 0}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            state["requests"].append((self.path, body))
            if state["fail_first"]:
                state["fail_first"] -= 1
                payload, status = {"error": "busy"}, 429
            else:
                answer = body["messages"][-1]["content"]
                payload = {"object": "list", "data": [
                    {"index": 0, "object": "pooling", "data": [[0.5], [-1.0], [float(len(answer))]]}]}
                status = 200
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ServerThread()
    server.serve(ThreadingHTTPServer(("127.0.0.1", 0), Handler))
    with server:
        yield server.url, state


@pytest.mark.parametrize("reply, expected", [
    ({"data": [{"data": [[0.1], [0.7]]}]}, 0.7),
    ({"data": [{"data": [2.5]}]}, 2.5),
    ({"data": [{"data": 3}]}, 3.0),
    ({"data": []}, None),
    ({"error": "x"}, None),
])
def test_last_value(reply, expected):
    assert last_value(reply) == expected


def test_reward_endpoint_scores_each_rollout(pooling_server):
    url, state = pooling_server
    state["fail_first"] = 1
    verifier = get_verifier("reward-model", model="rm", base_url=url, threshold=3,
                            retry=RetryPolicy(max_attempts=3, base_delay=0.01))
    prompt = [{"role": "user", "content": "Say something"}]
    items = [("<think>long long thoughts</think>hi", {}, prompt), ("hello", {}, prompt), ("hey!", {}, prompt)]
    with Scorer(verifier) as scorer:
        assert scorer.mode == "async"
        verdicts = scorer.score(items)
    assert [(v.score, v.passed) for v in verdicts] == [(2.0, False), (5.0, True), (4.0, True)]
    paths = {path for path, _ in state["requests"]}
    assert paths == {"/pooling"}  # at the server root, as vllm serve has it
    bodies = [body for _, body in state["requests"]]
    assert len(bodies) == 4  # one 429, retried, then three answers
    assert {b["messages"][-1]["content"] for b in bodies} >= {"hi", "hello", "hey!"}
    assert all(b["model"] == "rm" and b["messages"][0] == prompt[0] for b in bodies)


def test_reward_endpoint_failure_is_undecided(pooling_server):
    url, state = pooling_server
    state["fail_first"] = 10
    verifier = get_verifier("reward-model", model="rm", base_url=url,
                            retry=RetryPolicy(max_attempts=2, base_delay=0.01))
    verdict = verifier("hi", {}, prompt=[{"role": "user", "content": "x"}])
    assert verdict.passed is None and verdict.score is None
    assert verdict.error.startswith("reward request failed: HTTP 429")

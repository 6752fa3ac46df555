"""A small batch runner for tests: it answers an OpenAI batch input file with a
real chat completions server (the embedded model behind llama_cpp.server) or a
function, and writes an OpenAI batch output file, in a shuffled order as batch
APIs do. Lines can be dropped (a runner that died) or failed (a 500)."""

import json
import random
import urllib.request
from pathlib import Path


def read_lines(path):
    "The JSON objects of a JSONL file."
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def completion_body(content, model="test-model", finish_reason="stop"):
    "A chat completion body with one choice."
    return {"id": "chatcmpl-1", "object": "chat.completion", "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                         "finish_reason": finish_reason}],
            "usage": {"prompt_tokens": 11, "completion_tokens": 3, "total_tokens": 14}}


def post_json(url, body, timeout=300):
    request = urllib.request.Request(url, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as reply:
        return json.loads(reply.read())


def run_batch(requests_path, output_path, base_url=None, answer=None, drop=(), fail=(), seed=0):
    """Answer every line of requests_path and write the output file; returns the
    output lines. base_url: a server's /v1 URL to POST each body to; answer:
    else a function body -> content."""
    out = []
    for i, line in enumerate(read_lines(requests_path)):
        custom_id = line["custom_id"]
        if custom_id in drop:
            continue
        if custom_id in fail:
            response = {"status_code": 500, "request_id": f"req_{i}",
                        "body": {"error": {"message": "engine overloaded", "type": "server_error"}}}
        elif base_url is not None:
            root = base_url.rsplit("/v1", 1)[0]
            response = {"status_code": 200, "request_id": f"req_{i}",
                        "body": post_json(root + line["url"], line["body"])}
        else:
            response = {"status_code": 200, "request_id": f"req_{i}",
                        "body": completion_body(answer(line["body"]), line["body"]["model"])}
        out.append({"id": f"batch_req_{i}", "custom_id": custom_id, "response": response,
                    "error": None})
    random.Random(seed).shuffle(out)
    Path(output_path).write_text("".join(json.dumps(r) + "\n" for r in out))
    return out

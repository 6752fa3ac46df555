"""A real local Batch API server for tests (ThreadingHTTPServer on 127.0.0.1,
port 0): the files and batches endpoints the OpenAI client calls.

    POST /v1/files                 multipart upload (purpose, file)
    GET  /v1/files/ID/content      a file's bytes (inputs, outputs, error files)
    POST /v1/batches               create (counted in `created`)
    GET  /v1/batches, /v1/batches/ID   list, retrieve (counted in `polls`)
    POST /v1/batches/ID/cancel     cancel (counted in `cancels`)

A batch stays in_progress while `hold` is clear and for `polls_to_finish`
retrieves; then it runs its requests through `answer(body) -> content`.
`fail(line)` picks requests that fail (a 500 line in the output file, or
with `errors_in_error_file` a line in the error file); `expire[n]` = k makes
the n-th batch created finish only its first k requests and expire (the rest
go to the error file as batch_expired); `invalid` fails batches at validation.
"""

import itertools
import json
import threading
import time
from email.parser import BytesParser
from email.policy import HTTP
from http.server import ThreadingHTTPServer

from servers import JSONHandler, ServerThread


def parse_multipart(content_type, body):
    "{name: bytes} of a multipart/form-data body."
    message = BytesParser(policy=HTTP).parsebytes(
        b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body)
    return {part.get_param("name", header="content-disposition"): part.get_payload(decode=True)
            for part in message.iter_parts()}


class BatchAPIStub(ServerThread):
    "A Batch API on 127.0.0.1: files, batches, delays, expiry, partial failures."

    def __init__(self, answer=lambda body: "4", polls_to_finish=1):
        self.answer = answer
        self.polls_to_finish = polls_to_finish
        self.fail = lambda line: False
        self.errors_in_error_file = False
        self.expire = {}
        self.invalid = False
        self.hold = threading.Event()
        self.hold.set()
        self.files, self.batches = {}, {}
        self.created = self.polls = self.cancels = 0
        self.lock = threading.Lock()
        self.ids = itertools.count(1)
        stub = self

        class Handler(JSONHandler):
            def do_GET(self):
                stub.route(self, "GET", b"")

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                stub.route(self, "POST", self.rfile.read(length))

        self.serve(ThreadingHTTPServer(("127.0.0.1", 0), Handler))

    def new_id(self, kind):
        return f"{kind}-{next(self.ids)}"

    def add_file(self, data, purpose):
        file_id = self.new_id("file")
        self.files[file_id] = data
        return {"id": file_id, "object": "file", "bytes": len(data), "created_at": int(time.time()),
                "filename": "batch.jsonl", "purpose": purpose, "status": "processed"}

    def route(self, handler, method, body):
        path = handler.path.split("?")[0].rstrip("/")
        parts = path.split("/")[2:]  # after /v1
        with self.lock:
            if method == "POST" and parts == ["files"]:
                form = parse_multipart(handler.headers["Content-Type"], body)
                return handler.send_json(200, self.add_file(form["file"], form["purpose"].decode()))
            if method == "GET" and len(parts) == 3 and parts[0] == "files" and parts[2] == "content":
                data = self.files.get(parts[1])
                if data is None:
                    return handler.send_json(404, {"error": {"message": "no such file"}})
                handler.send_response(200)
                handler.send_header("Content-Type", "application/octet-stream")
                handler.send_header("Content-Length", str(len(data)))
                handler.end_headers()
                handler.wfile.write(data)
                return None
            if method == "POST" and parts == ["batches"]:
                return handler.send_json(200, self.create(json.loads(body)))
            if method == "GET" and parts == ["batches"]:
                return handler.send_json(200, {"object": "list", "has_more": False,
                                               "data": list(self.batches.values())})
            if method == "GET" and len(parts) == 2 and parts[0] == "batches":
                self.polls += 1
                return handler.send_json(200, self.advance(self.batches[parts[1]]))
            if method == "POST" and len(parts) == 3 and parts[2] == "cancel":
                self.cancels += 1
                batch = self.batches[parts[1]]
                batch["status"] = "cancelling"
                return handler.send_json(200, batch)
        return handler.send_json(404, {"error": {"message": f"no route {method} {path}"}})

    def create(self, body):
        self.created += 1
        batch_id = self.new_id("batch")
        lines = [json.loads(line) for line in self.files[body["input_file_id"]].splitlines()]
        self.batches[batch_id] = {
            "id": batch_id, "object": "batch", "endpoint": body["endpoint"],
            "input_file_id": body["input_file_id"], "completion_window": body["completion_window"],
            "status": "validating", "created_at": int(time.time()), "output_file_id": None,
            "error_file_id": None, "metadata": body.get("metadata"), "errors": None,
            "request_counts": {"total": len(lines), "completed": 0, "failed": 0}, "_polls": 0,
            "_number": self.created,
        }
        return self.public(self.batches[batch_id])

    @staticmethod
    def public(batch):
        return {k: v for k, v in batch.items() if not k.startswith("_")}

    def advance(self, batch):
        "The batch one retrieve later."
        batch["_polls"] += 1
        if batch["status"] == "cancelling":
            batch["status"] = "cancelled"
        elif batch["status"] in ("validating", "in_progress"):
            if self.invalid:
                batch["status"] = "failed"
                batch["errors"] = {"object": "list", "data": [
                    {"code": "invalid_request", "message": "model 'm' not found", "line": 1}]}
            elif not self.hold.is_set() or batch["_polls"] < self.polls_to_finish:
                batch["status"] = "in_progress"
            else:
                self.run(batch)
        return self.public(batch)

    def run(self, batch):
        lines = [json.loads(line) for line in self.files[batch["input_file_id"]].splitlines()]
        output, errors = [], []
        expire_after = self.expire.get(batch["_number"])
        for number, line in enumerate(lines):
            custom_id = line["custom_id"]
            if expire_after is not None and number >= expire_after:
                errors.append({"id": f"req-{number}", "custom_id": custom_id, "response": None,
                               "error": {"code": "batch_expired", "message": "This request could "
                                         "not be executed before the completion window expired."}})
            elif self.fail(line):
                line_out = {"id": f"req-{number}", "custom_id": custom_id, "error": None,
                            "response": {"status_code": 500, "request_id": f"r{number}",
                                         "body": {"error": {"message": "server error",
                                                            "type": "server_error"}}}}
                (errors if self.errors_in_error_file else output).append(line_out)
            else:
                body = line["body"]
                output.append({"id": f"req-{number}", "custom_id": custom_id, "error": None,
                               "response": {"status_code": 200, "request_id": f"r{number}", "body": {
                                   "id": f"chatcmpl-{number}", "object": "chat.completion",
                                   "model": body["model"], "choices": [{
                                       "index": 0, "finish_reason": "stop", "message": {
                                           "role": "assistant", "content": self.answer(body)}}],
                                   "usage": {"prompt_tokens": 9, "completion_tokens": 2}}}})
        as_file = lambda rows: "".join(json.dumps(r) + "\n" for r in rows).encode()  # noqa: E731
        if output:
            batch["output_file_id"] = self.add_file(as_file(output), "batch_output")["id"]
        if errors:
            batch["error_file_id"] = self.add_file(as_file(errors), "batch_output")["id"]
        batch["status"] = "expired" if expire_after is not None else "completed"
        batch["request_counts"] = {"total": len(lines), "completed": len(output),
                                   "failed": len(errors)}

    def input_lines(self, batch_id):
        "The request lines of a batch, as submitted."
        return [json.loads(line) for line in
                self.files[self.batches[batch_id]["input_file_id"]].splitlines()]

"""An instant OpenAI-compatible chat server for benchmarks (aiohttp).

Answers /v1/chat/completions from a pool of canned multiple-choice responses,
with `usage` and `finish_reason`, honouring `n`, after an optional fixed
latency. Run it in its own process:

    python bench/stub_server.py --port 0 --latency 0.5

It prints "PORT <n>" once listening.
"""

import argparse
import asyncio
import json
import random
import time

from aiohttp import web

RESPONSES = [
    f"Let me think about the options step by step. {body}\n\nAnswer: {letter}"
    for letter in "ABCD"
    for body in ("The first option contradicts the premise.", "Only one choice fits all the facts.")
]


def make_app(latency):
    rng = random.Random(0)
    counter = {"requests": 0}

    async def chat(request):
        body = await request.json()
        counter["requests"] += 1
        if latency:
            await asyncio.sleep(latency)
        n = int(body.get("n", 1))
        choices = [
            {"index": i, "message": {"role": "assistant", "content": rng.choice(RESPONSES)},
             "finish_reason": "stop"}
            for i in range(n)
        ]
        payload = {
            "id": f"cmpl-{counter['requests']}", "object": "chat.completion",
            "created": int(time.time()), "model": body.get("model", "stub"), "choices": choices,
            "usage": {"prompt_tokens": 60, "completion_tokens": 24 * n, "total_tokens": 60 + 24 * n},
        }
        return web.Response(text=json.dumps(payload), content_type="application/json")

    async def stats(request):
        return web.json_response(counter)

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_get("/stats", stats)
    return app


async def serve(port, latency):
    runner = web.AppRunner(make_app(latency), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port, backlog=4096)
    await site.start()
    print(f"PORT {site._server.sockets[0].getsockname()[1]}", flush=True)
    await asyncio.Event().wait()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before each answer")
    args = parser.parse_args()
    asyncio.run(serve(args.port, args.latency))


if __name__ == "__main__":
    main()

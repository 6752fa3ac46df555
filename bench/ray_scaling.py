"""Ray scaling: the same run on 1 and on 2 Ray workers, against an OpenAI server.

A local Ray cluster (--cpus, default 2: this machine's cores) runs `rsr sample
--executor ray` with the `openai` sampler against bench/stub_server.py in
another process, which answers each request after a fixed --latency. Each
worker keeps --concurrency requests in flight, as each would keep its own
engine's batch full, so W workers can at best reach W x C / latency requests/s;
the figure is how close rsr and Ray get (the driver plans, scores and writes
every rollout). Workers are started before the clock starts.

    python bench/ray_scaling.py                                # latency 0.2 s, C=8
    python bench/ray_scaling.py --latency 0 --concurrency 32   # overhead-bound
"""

import argparse
import time

from common import figure, fresh_ledger, machine, mcq_prompts, start_stub


def timed_run(url, prompts, workers, args):
    "Sample a fresh ledger on `workers` Ray workers; returns (seconds, rollouts, requests)."
    from rsr.pipeline import make_executor, make_scorer, make_settings, with_defaults
    from rsr.sampling import sample

    db, _ = fresh_ledger(prompts)
    config = with_defaults({
        "sampler": {"name": "openai", "base_url": url, "model": "stub",
                    "concurrency": args.concurrency},
        "sampling": {"target": "best-of-n", "max_rollouts": args.max_rollouts,
                     "step_size": args.step_size, "max_steps": args.max_rollouts,
                     "early_stop": False, "max_tokens": 256, "seed": 1},
        "verifier": {"name": "mcq"},
        "executor": {"name": "ray", "num_workers": workers},
    })
    runner = make_executor(config)
    scorer = make_scorer(config["verifier"])
    runner.start()
    try:
        started = time.perf_counter()
        report = sample(db, runner, scorer, make_settings(config))
        elapsed = time.perf_counter() - started
    finally:
        scorer.close()
    written = db.execute("select count(*) from rollouts").fetchone()[0]
    assert written == report.rollouts == len(prompts) * args.max_rollouts, (written, report.rollouts)
    assert runner.reissued == 0 and all(runner.served), runner.served
    return elapsed, written, report.requests


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=8, help="requests in flight per worker")
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--max-rollouts", type=int, default=4)
    parser.add_argument("--step-size", type=int, default=2)
    parser.add_argument("--cpus", type=int, default=2)
    args = parser.parse_args()
    import ray

    ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
    server, url = start_stub(args.latency)
    prompts = mcq_prompts(args.prompts)
    rates = {}
    try:
        for workers in (1, 2):
            seconds, rollouts, requests = timed_run(url, prompts, workers, args)
            rates[workers] = (rollouts / seconds, requests / seconds)
    finally:
        server.kill()
        ray.shutdown()
    print(f"# {machine()}; Ray {ray.__version__} with {args.cpus} CPUs; {args.prompts} prompts x "
          f"{args.max_rollouts} rollouts, n={args.step_size}, C={args.concurrency} per worker, "
          f"latency {args.latency}s, verifier mcq on the driver")
    for workers, (rollout_rate, request_rate) in rates.items():
        figure(f"{workers} worker(s): rollouts/s", rollout_rate, "/s")
        if args.latency:
            ceiling = workers * args.concurrency / args.latency
            figure(f"{workers} worker(s): requests/s / (W x C / latency)", request_rate / ceiling, "x")
    figure("scaling, 2 workers / 1 worker", rates[2][0] / rates[1][0], "x", 1.6)


if __name__ == "__main__":
    main()

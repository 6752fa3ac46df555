"""`python -m rsr.samplers.llama_server ARGS`: llama-cpp-python's OpenAI-compatible
server (`python -m llama_cpp.server ARGS`) with the model loaded as the local
sampler loads it, without llama.cpp's extra weight buffers (see llama_compat)."""

import runpy

from .llama_compat import without_extra_buffers

if __name__ == "__main__":
    with without_extra_buffers():
        runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)

"""Loading a GGUF with llama-cpp-python without llama.cpp's extra weight buffers.

llama.cpp can repack weights into extra buffer types (AMX tiles, interleaved
CPU layouts) when it loads a model. With llama-cpp-python 0.3.36 built for a
Xeon with AMX, every batched decode of the embedded model (any prompt longer
than one token) crashes the process with a segmentation fault; with the extra
buffers off it runs, at the same speed for a model this small. Llama() has no
argument for the switch, so the model parameters it starts from are adjusted
while it loads. Set RSR_LLAMA_EXTRA_BUFFERS=1 to keep llama.cpp's default.
"""

import contextlib
import os
import threading

_lock = threading.Lock()


def extra_buffers_wanted() -> bool:
    "True when the user asked for llama.cpp's default weight buffers."
    return os.environ.get("RSR_LLAMA_EXTRA_BUFFERS", "").strip().lower() in ("1", "true", "yes")


@contextlib.contextmanager
def without_extra_buffers():
    "While inside, llama_cpp.Llama() loads models with use_extra_bufts off."
    from llama_cpp import llama_cpp as bindings

    original = bindings.llama_model_default_params
    fields = {name for name, _ in getattr(original.restype, "_fields_", ())}
    if extra_buffers_wanted() or "use_extra_bufts" not in fields:
        yield
        return

    def defaults():
        params = original()
        params.use_extra_bufts = False
        return params

    with _lock:
        bindings.llama_model_default_params = defaults
        try:
            yield
        finally:
            bindings.llama_model_default_params = original

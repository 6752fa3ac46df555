"""The local sampler and the test/bench llama.cpp server load models without
llama.cpp's extra weight buffers, which crash batched decodes on some CPUs."""

import pytest

pytest.importorskip("llama_cpp")
from llama_cpp import llama_cpp as bindings  # noqa: E402

from rsr.samplers.llama_compat import without_extra_buffers  # noqa: E402


def test_extra_buffers_off_while_loading_and_restored_after(monkeypatch):
    monkeypatch.delenv("RSR_LLAMA_EXTRA_BUFFERS", raising=False)
    assert bindings.llama_model_default_params().use_extra_bufts is True
    with without_extra_buffers():
        assert bindings.llama_model_default_params().use_extra_bufts is False
    assert bindings.llama_model_default_params().use_extra_bufts is True


def test_extra_buffers_kept_when_asked(monkeypatch):
    monkeypatch.setenv("RSR_LLAMA_EXTRA_BUFFERS", "1")
    with without_extra_buffers():
        assert bindings.llama_model_default_params().use_extra_bufts is True

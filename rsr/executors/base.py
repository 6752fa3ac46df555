"""What an executor is: a name, its declared options, and how it builds the
sampler-shaped object the sampling loop drives."""

from __future__ import annotations

from typing import Any, ClassVar

from ..factory import make_sampler
from ..options import PluginOptions


class ExecutorOptions(PluginOptions):
    "An executor's own options (none by default)."


class Executor:
    "Base class: in-process has no options and builds the sampler itself."

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    Options: ClassVar[type[PluginOptions]] = ExecutorOptions

    @classmethod
    def workers(cls, options: dict[str, Any]) -> int:
        "How many samplers serve requests at once (each with `concurrency` in flight)."
        return 1

    @classmethod
    def build(cls, config: dict[str, dict[str, Any]]) -> Any:
        "The sampler (or sampler-shaped executor) for a resolved configuration."
        raise NotImplementedError


class InProcess(Executor):
    name = "in-process"
    description = "The sampler runs inside this process"

    @classmethod
    def build(cls, config):
        return make_sampler(config["sampler"])

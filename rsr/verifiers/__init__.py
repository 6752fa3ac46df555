"""Verifiers: pure functions of (response, prompt metadata) to a Verdict.

The same verifiers grade rollouts in `rsr sample` and `rsr verify` and serve as
reward functions in RL trainers::

    from rsr.verifiers import get_verifier
    verdict = get_verifier("exact")("The answer is 4", {"answer": "4"})
    verdict.passed, verdict.score, verdict.extracted, verdict.details
"""

from dataclasses import dataclass, field

from ..errors import ConfigError
from ..reasoning import final_answer


@dataclass
class Verdict:
    """What a verifier decided about one response.

    passed is None when the verifier could not decide (unparsable judge reply,
    timeout, error): such a verdict is neither a pass nor a fail.
    """

    passed: bool | None
    score: float | None
    extracted: str | None = None
    details: dict = field(default_factory=dict)
    error: str | None = None


class Verifier:
    """Base class: subclasses set name and description and implement check().

    __call__ strips reasoning first, so check() only ever sees the final answer.
    """

    name = ""
    description = ""
    # True when check() is fast and pure enough to run on the event loop.
    inline = True

    def __call__(self, response, metadata=None, *, prompt=None) -> Verdict:
        answer = final_answer(response or "")
        return self.check(answer, metadata or {}, prompt=prompt)

    def check(self, answer, metadata, *, prompt=None) -> Verdict:
        raise NotImplementedError

    def __repr__(self):
        return f"<{type(self).__name__} {self.name!r}>"


def get_verifier(name, **options) -> Verifier:
    "The registered verifier called name (options configure it), or a user's path.py:func."
    from .. import plugins

    if ":" in name and name.rsplit(":", 1)[0].endswith(".py"):
        from .user import UserFunctionVerifier

        return UserFunctionVerifier(name)
    verifier = plugins.pick(plugins.get_verifiers(), name, "verifier", "rsr verifiers")
    if options:
        configure = getattr(verifier, "configure", None)
        if configure is None:
            raise ConfigError(f"Verifier {name!r} takes no options (got {', '.join(options)})")
        verifier = configure(**options)
    return verifier

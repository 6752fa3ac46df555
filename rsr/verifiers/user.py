"""A user's own verifier: `--verifier path.py:function`.

The function is called as function(answer, metadata) with the final answer
(reasoning stripped) and the prompt's metadata, and returns a Verdict, a bool,
a number (score; > 0 passes) or a dict with passed/score/extracted/details. It
runs in worker processes under the hard timeout, like `math`.
"""

from ..errors import ConfigError
from ..loading import load_transform
from .base import Verdict, Verifier


class UserFunctionVerifier(Verifier):
    inline = False

    def __init__(self, spec):
        self.spec = spec
        self.name = spec
        self.description = f"User function {spec}"
        try:
            self.func = load_transform(spec)
        except ConfigError as ex:
            raise ConfigError(
                str(ex).replace("--transform", "--verifier").replace("Transform file", "Verifier file")
            ) from ex

    def __reduce__(self):
        # Worker processes import the user's file again rather than pickling
        # a function that lives in no importable module.
        return (UserFunctionVerifier, (self.spec,))

    def check(self, answer, metadata, *, prompt=None):
        result = self.func(answer, metadata)
        if isinstance(result, Verdict):
            return result
        if isinstance(result, bool):
            return Verdict(result, float(result), answer)
        if isinstance(result, (int, float)):
            return Verdict(result > 0, float(result), answer)
        if isinstance(result, dict):
            return Verdict(
                result.get("passed"), result.get("score"), result.get("extracted", answer),
                result.get("details") or {}, result.get("error"),
            )
        raise ConfigError(
            f"Verifier {self.name} returned {type(result).__name__}; expected a bool, number, dict or Verdict"
        )

"""The `code` verifier: run the response's program with the prompt's tests in a sandbox.

The program is the last fenced code block of the final answer (a `python`,
`py` or unlabelled block where there is one, else the last block of any
language; an unclosed fence runs to the end), or the whole final answer when
it has no fence. The tests come from the prompt's metadata, in the first of
these shapes it has:

- HumanEval: `test` (code defining `check(candidate)`) and `entry_point` (the
  function's name). `prompt`, when it holds the function's signature, runs
  first (it defines helpers some tests use); a response that only continues
  the function body (no `def entry_point`) is appended to it.
- assert-style: `tests` (a list of statements, or one string of them; MBPP's
  `test_list` too), with optional `test_setup` code run before them.
- stdin/stdout: `io`, a list of [input, expected output] pairs or
  {"input", "output"} objects, or {"inputs": [...], "outputs": [...]}; the
  program runs once per case and its output must equal the expected one up to
  trailing spaces and blank lines.

Each check is one sandboxed run (rsr.verifiers.sandbox) of code_harness.py.
The verdict passes only when every test passes; the reason for a fail
(`syntax`, `assertion`, `exception`, `timeout`, `memory`, `recursion`, `exit`,
`output`, `wrong_output`, `missing_function`, `no_code`, `crashed`) is
details.reason, with the error, the phase and, for several tests, which one.
A prompt without tests, or whose tests are broken, is undecided.

Options: timeout (wall seconds per check, default 5; keep it under rsr
verify's --timeout), cpu_seconds (default: the timeout, rounded up), memory_mb
(1024), processes (16), output_kb (1024), hide (more directories to hide, a
list or comma-separated), unsafe (run without isolation where the kernel or
user cannot provide it).
"""

import json
import math
import re
import secrets
from pathlib import Path

from ..errors import ConfigError
from .base import Verdict, Verifier, undecided, variant_name
from . import sandbox

HARNESS = Path(__file__).with_name("code_harness.py")
PYTHON_LANGUAGES = ("", "python", "py", "python3", "py3")
_FENCE_RE = re.compile(r"^[ \t]*(`{3,}|~{3,})[ \t]*([\w+#.-]*)[^\n`]*$")
# Reasons a program's run ends without a result line from the harness.
_SIGNALS = {24: ("timeout", "CPU time limit exceeded"), 25: ("output", "file size limit exceeded")}
_DEFAULTS = {"timeout": 5.0, "cpu_seconds": None, "memory_mb": 1024, "processes": 16,
             "output_kb": 1024}


def code_blocks(text) -> list[tuple[str, str]]:
    "[(language, code)] of the fenced blocks in text, an unclosed last one running to the end."
    blocks, lines, i = [], text.split("\n"), 0
    while i < len(lines):
        opening = _FENCE_RE.match(lines[i])
        if not opening:
            i += 1
            continue
        fence, language = opening.group(1), opening.group(2).lower()
        body, i = [], i + 1
        while i < len(lines) and not re.match(rf"^[ \t]*{re.escape(fence[0])}{{{len(fence)},}}[ \t]*$",
                                              lines[i]):
            body.append(lines[i])
            i += 1
        blocks.append((language, _dedent(body)))
        i += 1
    return blocks


def _dedent(lines):
    import textwrap

    return textwrap.dedent("\n".join(lines)).strip("\n") + "\n"


def extract_program(answer) -> str | None:
    "The program in a final answer: the last Python (or unlabelled) fenced block, else the text."
    blocks = code_blocks(answer)
    if blocks:
        python = [code for language, code in blocks if language in PYTHON_LANGUAGES]
        code = python[-1] if python else blocks[-1][1]
    else:
        code = answer
    return code if code.strip() else None


def _as_list(value, field):
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    raise ValueError(f"metadata.{field} must be a string or a list of strings")


def _io_cases(value):
    if isinstance(value, dict) and "inputs" in value:
        pairs = list(zip(value["inputs"], value.get("outputs") or []))
        if len(pairs) != len(value["inputs"]):
            raise ValueError("metadata.io has fewer outputs than inputs")
    elif isinstance(value, list):
        pairs = [(case["input"], case["output"]) if isinstance(case, dict) else tuple(case)
                 for case in value]
    else:
        raise ValueError("metadata.io must be a list of [input, output] pairs")
    cases = []
    for given, expected in pairs:
        given = "\n".join(given) if isinstance(given, list) else given
        expected = "\n".join(expected) if isinstance(expected, list) else expected
        if not isinstance(given, str) or not isinstance(expected, str):
            raise ValueError("metadata.io inputs and outputs must be text")
        cases.append((given, expected))
    return cases


def test_spec(metadata) -> dict | None:
    "The harness's spec.json for a prompt's tests, or None when it has none."
    if metadata.get("test") and metadata.get("entry_point"):
        return {"kind": "check", "test": str(metadata["test"]),
                "entry_point": str(metadata["entry_point"])}
    for field in ("tests", "test_list"):
        if metadata.get(field):
            return {"kind": "asserts", "tests": _as_list(metadata[field], field),
                    "setup": metadata.get("test_setup") or metadata.get("test_setup_code") or ""}
    if metadata.get("io"):
        return {"kind": "io", "io": _io_cases(metadata["io"])}
    return None


def _defines(code, name):
    return re.search(rf"^(?:async\s+)?def\s+{re.escape(name)}\s*\(", code, re.M) is not None


def program_files(code, spec, metadata) -> dict:
    "The files of one run: solution.py, spec.json and, for HumanEval, preamble.py."
    files = {}
    if spec["kind"] == "check":
        prompt = metadata.get("prompt")
        if isinstance(prompt, str) and _defines(prompt, spec["entry_point"]):
            if _defines(code, spec["entry_point"]):
                files["preamble.py"] = prompt.encode()
            else:  # the response continues the function's body
                code = prompt + code
    files["solution.py"] = code.encode("utf-8", "replace")
    files["spec.json"] = json.dumps(spec).encode()
    files["harness.py"] = HARNESS.read_bytes()
    return files


def outcome_verdict(result, token, code) -> Verdict:
    "The Verdict for a sandbox Result: the harness's line, or why there is none."
    details = {"wall_ms": result.wall_ms}
    if result.leftover:
        details["processes_killed"] = result.leftover
    line = next((line for line in result.extra.decode("utf-8", "replace").splitlines()
                 if line.startswith(token)), None)
    if line is not None:
        outcome = json.loads(line[len(token):])
        reason = outcome.pop("outcome")
        details.update({"reason": reason, **{k: v for k, v in outcome.items() if v is not None}})
        if reason == "bad_test":
            return Verdict(None, None, code, details,
                           f"the prompt's tests are broken: {outcome.get('error')}")
        passed = reason == "passed"
        return Verdict(passed, float(passed), code, details)
    stderr = result.stderr.decode("utf-8", "replace").strip()
    if result.returncode == sandbox.SETUP_FAILED and stderr.startswith(sandbox.SETUP_MARK.decode()):
        details["reason"] = "sandbox setup failed"
        return Verdict(None, None, code, details, f"sandbox setup failed: {stderr}")
    if result.timed_out:
        details.update(reason="timeout", error="wall time limit exceeded")
    elif result.signal in _SIGNALS:
        reason, error = _SIGNALS[result.signal]
        details.update(reason=reason, error=error)
    elif result.signal == 9:
        details.update(reason="memory", error="killed (out of memory)")
    elif result.signal:
        details.update(reason="crashed", error=f"killed by signal {result.signal}")
    elif result.returncode == 0:
        details.update(reason="exit", error="the program exited before the tests finished")
    else:
        details.update(reason="crashed", error=f"exit status {result.returncode}")
    if stderr:
        details["stderr"] = stderr[-300:]
    return Verdict(False, 0.0, code, details)


class CodeVerifier(Verifier):
    "Runs the response's program against the prompt's tests in a sandbox."

    name = "code"
    description = ("Python programs run against the prompt's tests (HumanEval check(), asserts, "
                   "stdin/stdout) in a sandbox")
    inline = False  # each check is a process: run in worker processes
    needs_prompt = False

    def __init__(self, unsafe=False, hide=(), **limits):
        self.unsafe = unsafe
        self.hide = tuple(hide)
        values = {**_DEFAULTS, **limits}
        timeout = float(values["timeout"])
        cpu = values["cpu_seconds"] or math.ceil(timeout)
        self.limits = sandbox.Limits(
            wall_seconds=timeout, cpu_seconds=int(cpu), memory_mb=int(values["memory_mb"]),
            processes=int(values["processes"]), output_kb=int(values["output_kb"]))

    def configure(self, unsafe=False, hide=(), **options):
        unknown = sorted(set(options) - set(_DEFAULTS))
        if unknown:
            raise ConfigError(f"Verifier 'code' has no option {unknown[0]!r}; it takes "
                              f"{', '.join([*_DEFAULTS, 'hide', 'unsafe'])}")
        for key, value in options.items():
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
                raise ConfigError(f"Verifier 'code' option {key} must be a positive number, got {value!r}")
        if isinstance(hide, str):
            hide = [p for p in hide.split(",") if p.strip()]
        unsafe = unsafe if isinstance(unsafe, bool) else str(unsafe).lower() in ("1", "true", "yes")
        copy = CodeVerifier(unsafe=unsafe, hide=hide, **options)
        copy.name = variant_name("code", options)
        return copy

    def prepare(self):
        "Refuse (SandboxUnavailable) before any rollout is scored when code cannot be isolated."
        sandbox.require(self.unsafe)

    def check(self, answer, metadata, *, prompt=None):
        try:
            spec = test_spec(metadata)
        except (ValueError, TypeError, KeyError) as ex:
            return undecided(f"bad tests in metadata: {ex}", reason="bad tests")
        if spec is None:
            return undecided("no tests", reason="no tests: expected metadata test+entry_point, tests or io")
        code = extract_program(answer)
        if code is None:
            return Verdict(False, 0.0, None, {"reason": "no_code", "tests": spec["kind"]})
        if spec["kind"] == "io":
            spec["output_chars"] = self.limits.output_kb << 10
        token = secrets.token_hex(16)
        result = sandbox.run(["harness.py"], program_files(code, spec, metadata), self.limits,
                             unsafe=self.unsafe, hide=self.hide, env={"RSR_TOKEN": token})
        verdict = outcome_verdict(result, token, code)
        verdict.details.setdefault("tests_kind", spec["kind"])
        return verdict

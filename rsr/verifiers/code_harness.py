"""The test harness the `code` verifier runs inside the sandbox (standard library only).

It is copied into the sandbox's directory beside `solution.py` (the program),
optionally `preamble.py` (the problem's own code, run first: HumanEval's
prompt with its helper functions) and `spec.json` (the tests), and run as
`python -I -S -B harness.py`. It writes one line to fd 3: the token it was
given in RSR_TOKEN, then a JSON object {"outcome": ..., ...}, and exits.

Outcomes: passed; syntax (the program does not compile); assertion, exception,
memory, recursion, exit, output (a test failed or the program raised, ran out
of memory, called exit() during the tests, or wrote more than allowed);
wrong_output (a stdin/stdout case printed something else); missing_function
(no `entry_point` defined); bad_test (the tests themselves do not compile or
define no check()).

The token is read and removed from the environment before the program runs,
so a program that exits early (os._exit(0)) or prints a fake result line
cannot pass; one that goes looking through the harness's memory for it can.
"""

import builtins
import io
import json
import os
import sys

_TOKEN = os.environ.pop("RSR_TOKEN", "")
_write, _exit, _dumps = os.write, os._exit, json.dumps
MAX_TEXT = 300


def report(outcome, **details):
    "Send the result on fd 3 and end the process without running the program's atexit code."
    line = _TOKEN + _dumps({"outcome": outcome, **details}, default=str) + "\n"
    try:
        _write(3, line.encode("utf-8", "replace"))
    finally:
        _exit(0)


class OutputLimit(BaseException):
    "A stdin/stdout case printed more than the output limit."


class LimitedOutput(io.StringIO):
    "Captured stdout that raises OutputLimit past limit characters."

    def __init__(self, limit):
        super().__init__()
        self.limit = limit

    def write(self, text):
        if self.tell() + len(text) > self.limit:
            raise OutputLimit()
        return super().write(text)


def short(text, limit=MAX_TEXT):
    text = str(text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def outcome_of(ex):
    "The outcome name for an exception raised by the program or its tests."
    if isinstance(ex, AssertionError):
        return "assertion"
    if isinstance(ex, MemoryError):
        return "memory"
    if isinstance(ex, RecursionError):
        return "recursion"
    if isinstance(ex, SystemExit):
        return "exit"
    if isinstance(ex, OutputLimit) or (isinstance(ex, OSError) and ex.errno == 27):  # EFBIG
        return "output"
    return "exception"


def where(ex):
    "The line of the program (or tests) an exception came from, as 'file:line'."
    tb, found = ex.__traceback__, None
    while tb is not None:
        name = tb.tb_frame.f_code.co_filename
        if name in ("solution.py", "tests", "preamble.py"):
            found = f"{name}:{tb.tb_lineno}"
        tb = tb.tb_next
    return found


def fail(ex, phase, **details):
    message = f"{type(ex).__name__}: {ex}" if str(ex) else type(ex).__name__
    if isinstance(ex, OutputLimit):
        message = "output limit exceeded"
    report(outcome_of(ex), phase=phase, error=short(message), at=where(ex), **details)


def compile_program(source, filename):
    try:
        return compile(source, filename, "exec")
    except (SyntaxError, ValueError) as ex:  # ValueError: a null byte in the source
        report("syntax", phase="compile", error=short(f"{type(ex).__name__}: {ex}"),
               at=f"{filename}:{getattr(ex, 'lineno', None)}")


def compile_test(source, filename="tests"):
    try:
        return compile(source, filename, "exec")
    except (SyntaxError, ValueError) as ex:
        report("bad_test", phase="compile tests", error=short(f"{type(ex).__name__}: {ex}"))


def run_module(code, namespace, phase):
    try:
        exec(code, namespace)
    except BaseException as ex:  # the program's failure is the verdict
        fail(ex, phase)


def check_function(spec, program, namespace):
    "HumanEval: the test defines check(candidate); it is called with the entry point."
    test = compile_test(spec["test"])
    run_module(program, namespace, "program")
    entry_point = spec["entry_point"]
    candidate = namespace.get(entry_point)
    if not callable(candidate):
        report("missing_function", phase="program", error=f"no function {entry_point!r} defined")
    run_module(test, namespace, "tests")
    check = namespace.get("check")
    if not callable(check):
        report("bad_test", phase="tests", error="the tests define no check(candidate)")
    try:
        check(candidate)
    except BaseException as ex:
        fail(ex, "tests")
    report("passed", tests=1)


def check_asserts(spec, program, namespace):
    "Assert-style tests (MBPP's test_list): each statement runs after the program."
    tests = [compile_test(source, "tests") for source in spec["tests"]]
    setup = compile_test(spec["setup"]) if spec.get("setup") else None
    run_module(program, namespace, "program")
    if setup is not None:
        run_module(setup, namespace, "test setup")
    for index, test in enumerate(tests):
        try:
            exec(test, namespace)
        except BaseException as ex:
            fail(ex, "tests", test_index=index, test=short(spec["tests"][index], 200),
                 tests_passed=index, tests=len(tests))
    report("passed", tests=len(tests), tests_passed=len(tests))


def same_output(got, expected):
    "Equal up to trailing spaces on each line and trailing blank lines."
    def lines(text):
        return [line.rstrip() for line in text.rstrip().splitlines()]

    return lines(got) == lines(expected)


def check_io(spec, program, namespace):
    "Stdin/stdout cases: the program runs once per case as __main__ with that input."
    limit = int(spec.get("output_chars", 1 << 20))
    real_stdin, real_stdout = sys.stdin, sys.stdout
    for index, (given, expected) in enumerate(spec["io"]):
        sys.stdin = io.TextIOWrapper(io.BytesIO(given.encode()), encoding="utf-8")
        sys.stdout = captured = LimitedOutput(limit)
        try:
            exec(program, {"__name__": "__main__", "__builtins__": builtins})
        except SystemExit as ex:
            if ex.code not in (None, 0):
                sys.stdout = real_stdout
                fail(ex, "tests", test_index=index, tests_passed=index, tests=len(spec["io"]))
        except BaseException as ex:
            sys.stdout = real_stdout
            fail(ex, "tests", test_index=index, tests_passed=index, tests=len(spec["io"]))
        finally:
            sys.stdin, sys.stdout = real_stdin, real_stdout
        got = captured.getvalue()
        if not same_output(got, expected):
            report("wrong_output", phase="tests", test_index=index, tests_passed=index,
                   tests=len(spec["io"]), input=short(given, 200), expected=short(expected, 200),
                   got=short(got, 200))
    report("passed", tests=len(spec["io"]), tests_passed=len(spec["io"]))


def main():
    with open("spec.json", encoding="utf-8") as f:
        spec = json.load(f)
    with open("solution.py", encoding="utf-8", errors="replace") as f:
        program = compile_program(f.read(), "solution.py")
    namespace = {"__name__": "__rsr_solution__", "__builtins__": builtins}
    if os.path.exists("preamble.py"):
        with open("preamble.py", encoding="utf-8") as f:
            preamble = compile_test(f.read(), "preamble.py")
        try:
            exec(preamble, namespace)
        except BaseException as ex:
            report("bad_test", phase="preamble", error=short(f"{type(ex).__name__}: {ex}"))
    {"check": check_function, "asserts": check_asserts, "io": check_io}[spec["kind"]](
        spec, program, namespace)


if __name__ == "__main__":
    main()

"""The shape docs/architecture.md promises, checked on the source: no import
cycle in rsr/, no module over 600 lines, no comparison of a sampler's name
outside rsr/samplers/, and each configuration default declared once."""

import ast
import dataclasses
from pathlib import Path

import pytest

from rsr import config

ROOT = Path(__file__).resolve().parent.parent
SOURCES = sorted((ROOT / "rsr").rglob("*.py")) + sorted((ROOT / "commands").rglob("*.py"))
MAX_LINES = 600


def module_name(path):
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[0] == "commands":
        parts = ["rsr", *parts]
    if parts[-1] == "__init__":
        return ".".join(parts[:-1]), True
    return ".".join(parts), False


def import_graph():
    "{module: modules of rsr it imports}, every import counted (also inside functions)."
    modules = {module_name(p)[0]: p for p in SOURCES}
    graph = {}
    for path in SOURCES:
        name, is_package = module_name(path)
        package = name if is_package else name.rsplit(".", 1)[0]
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                for alias in node.names:
                    full = f"{target}.{alias.name}"
                    found.add(full if full in modules else target)
        graph[name] = {m for m in found if m in modules and m != name}
    return graph


def cycles(graph):
    "Strongly connected components with more than one module (Tarjan)."
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in graph[node]:
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return found


def test_no_import_cycle_in_rsr():
    graph = import_graph()
    assert "rsr.verification" in graph["rsr.pipeline"] | graph["rsr.sampling.ledger"]
    assert cycles(graph) == []


def test_the_cycle_check_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_module_over_600_lines():
    long = {str(p.relative_to(ROOT)): n for p in SOURCES
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert long == {}


SAMPLER_NAMES = {"local", "openai", "vllm"}


def name_comparisons(path):
    "Lines where a sampler's name is compared with something (==, !=, in)."
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            constants = set()
            for operand in operands:
                if isinstance(operand, ast.Constant):
                    constants.add(operand.value)
                elif isinstance(operand, (ast.Tuple, ast.List, ast.Set)):
                    constants.update(e.value for e in operand.elts if isinstance(e, ast.Constant))
            if constants & SAMPLER_NAMES:
                found.append(node.lineno)
    return found


def test_no_comparison_of_a_sampler_name_outside_the_samplers():
    samplers = ROOT / "rsr" / "samplers"
    offenders = {str(p.relative_to(ROOT)): lines for p in SOURCES
                 if samplers not in p.parents and (lines := name_comparisons(p))}
    assert offenders == {}


def test_the_name_check_sees_a_comparison(tmp_path):
    path = tmp_path / "m.py"
    path.write_text('if cls.name != "openai":\n    pass\nif name in ("vllm", "x"):\n    pass\n')
    assert name_comparisons(path) == [1, 3]


def config_defaults():
    "{setting name: [defaults]} of every scalar default in rsr/config.py (timeout is in two sections)."
    out = {}
    for section in (config.SamplerSection, config.SamplingSection, config.VerifierSection,
                    config.ExecutorSection):
        for f in dataclasses.fields(section):
            if f.default is not dataclasses.MISSING and f.default is not None:
                out.setdefault(f.name, []).append(f.default)
    return out


def repeated_defaults(path, defaults):
    """Places that write a config default again as a literal: a parameter or a
    dataclass field of the same name, or a click option of the same name."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        pairs = []
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            args = node.args.args + node.args.kwonlyargs
            values = [None] * (len(node.args.args) - len(node.args.defaults)) + node.args.defaults
            values += node.args.kw_defaults
            pairs = [(a.arg, v) for a, v in zip(args, values) if v is not None]
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value:
            pairs = [(node.target.id, node.value)]
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "option"
              and node.args and isinstance(node.args[-1], ast.Constant)):
            flag = node.args[-1].value
            for keyword in node.keywords:
                if keyword.arg == "default" and isinstance(flag, str):
                    pairs = [(flag.lstrip("-").replace("-", "_"), keyword.value)]
        for name, value in pairs:
            # On/off flags (dedupe=False) are not values declared again.
            if isinstance(value, ast.Constant) and isinstance(value.value, bool):
                continue
            if name in defaults and isinstance(value, ast.Constant) and any(
                    value.value == d and type(value.value) is type(d) for d in defaults[name]):
                found.append((node.lineno, name))
    return found


# Settings of a plugin's own that share a name with a job setting.
OWN_SETTINGS = {("rsr/verifiers/judge.py", "max_tokens")}  # the judge's reply limit


def test_each_configuration_default_is_declared_once():
    defaults = config_defaults()
    assert defaults["max_rollouts"] == [16] and defaults["timeout"] == [600.0, 10.0]
    offenders = {}
    for path in SOURCES:
        name = str(path.relative_to(ROOT))
        places = [(line, setting) for line, setting in repeated_defaults(path, defaults)
                  if (name, setting) not in OWN_SETTINGS]
        if places and path.name != "config.py":
            offenders[name] = places
    assert offenders == {}


def test_the_default_check_sees_a_second_declaration(tmp_path):
    path = tmp_path / "m.py"
    path.write_text('def f(max_rollouts=16, step_size=None):\n    pass\n'
                    '@click.option("--max-steps", default=8)\ndef g():\n    pass\n'
                    'class S:\n    concurrency: int = 32\n    dedupe: bool = False\n')
    assert sorted(repeated_defaults(path, config_defaults())) == [
        (1, "max_rollouts"), (3, "max_steps"), (7, "concurrency")]


SAMPLE_FLAGS = {
    "sampling": {"max_rollouts": "max_rollouts", "step_size": "step_size",
                 "max_steps": "max_steps", "temperature": "temperature",
                 "max_tokens": "max_tokens", "target": "target"},
    "sampler": {"concurrency": "concurrency", "timeout": "request_timeout",
                "max_retries": "max_retries", "retry_base_delay": "retry_base_delay"},
}


@pytest.mark.parametrize("section", sorted(SAMPLE_FLAGS))
def test_sample_options_show_the_declared_defaults(section):
    # The command's defaults are read from rsr/config.py: what --help shows is it.
    from rsr.commands.sample import sample

    params = {p.name: p.default for p in sample.params}
    defaults = config.defaults()[section]
    assert {param: params[param] for param in SAMPLE_FLAGS[section].values()} == {
        param: defaults[setting] for setting, param in SAMPLE_FLAGS[section].items()}

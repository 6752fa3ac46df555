import os

# Tests never load installed plugins: only rsr's built-ins and the ones a test
# registers itself.
os.environ["RSR_LOAD_PLUGINS"] = ""

import shutil  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
from click.testing import CliRunner  # noqa: E402

from rsr.commands import cli  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent

# Fixtures for real servers: openai_stub, llama_server.
pytest_plugins = ["servers"]


@pytest.fixture
def db_path(tmp_path):
    return str(tmp_path / "run.db")


@pytest.fixture
def runner():
    return CliRunner()


@pytest.fixture
def invoke(runner):
    def invoke(*args, **kwargs):
        return runner.invoke(cli, [str(a) for a in args], catch_exceptions=False, **kwargs)

    return invoke


@pytest.fixture
def fixtures_dir():
    return ROOT / "tests" / "fixtures"


@pytest.fixture
def copy_fixture(tmp_path, fixtures_dir):
    def copy(name):
        target = tmp_path / name
        shutil.copy(fixtures_dir / name, target)
        return target

    return copy


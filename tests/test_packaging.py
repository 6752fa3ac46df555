"""The built wheel carries what an installed rsr needs: schema.sql, the
Datasette metadata, templates and style sheet, the commands package and every subpackage; and the CLI
starts without importing what no command needs up front."""

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_wheel_contents(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(tmp_path),
                    str(ROOT)], check=True, capture_output=True)
    wheel = next(tmp_path.glob("rsr-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for required in ("rsr/schema.sql", "rsr/metadata.yml", "rsr/commands/__init__.py",
                     "rsr/commands/sample.py", "rsr/samplers/openai.py", "rsr/verifiers/maths.py"):
        assert required in names, required
    # rsr browse's templates and style sheet: every one in the source tree
    plugin = ROOT / "rsr" / "datasette_plugin"
    shipped = [str(p.relative_to(ROOT)) for p in sorted(plugin.glob("templates/*.html"))
               + sorted(plugin.glob("static/*.css"))]
    assert "rsr/datasette_plugin/templates/database.html" in shipped
    assert "rsr/datasette_plugin/static/rsr.css" in shipped
    assert sorted(set(shipped) - names) == []
    schema = zipfile.ZipFile(wheel).read("rsr/schema.sql").decode()
    assert schema == (ROOT / "schema.sql").read_text()
    packages = {str(p.parent.relative_to(ROOT)).replace("commands", "rsr/commands", 1)
                for p in list(ROOT.glob("rsr/**/__init__.py")) + [ROOT / "commands" / "__init__.py"]}
    for package in packages:
        assert f"{package}/__init__.py" in names, package
    entry_points = [n for n in names if n.endswith("entry_points.txt")]
    assert "rsr = rsr.commands:cli" in zipfile.ZipFile(wheel).read(entry_points[0]).decode()


def test_cli_starts_without_heavy_imports():
    # Start-up time is part of every command and of every resume: the CLI must
    # not pull in pandas or numpy (sqlite-utils would), the openai SDK or sympy
    # before a command needs them.
    code = (
        "import runpy, sys\n"
        "sys.argv = ['rsr', 'sample', '--help']\n"
        "try:\n"
        "    runpy.run_module('rsr', run_name='__main__')\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(sorted(m for m in ('pandas', 'numpy', 'openai', 'sympy', 'torch') if m in sys.modules))\n"
        "import pandas, sqlite_utils\n"  # still importable afterwards
        "print(pandas.DataFrame is not None)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.splitlines()[-2:] == ["[]", "True"], result.stdout + result.stderr

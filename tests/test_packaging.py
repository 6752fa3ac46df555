"""The built wheel carries what an installed rsr needs: schema.sql, the
Datasette metadata, the commands package and every subpackage."""

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
    schema = zipfile.ZipFile(wheel).read("rsr/schema.sql").decode()
    assert schema == (ROOT / "schema.sql").read_text()
    packages = {str(p.parent.relative_to(ROOT)).replace("commands", "rsr/commands", 1)
                for p in list(ROOT.glob("rsr/**/__init__.py")) + [ROOT / "commands" / "__init__.py"]}
    for package in packages:
        assert f"{package}/__init__.py" in names, package
    entry_points = [n for n in names if n.endswith("entry_points.txt")]
    assert "rsr = rsr.commands:cli" in zipfile.ZipFile(wheel).read(entry_points[0]).decode()

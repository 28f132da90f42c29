"""The wheel installs the project under its own names: toysup (the API and, as toysup.engine, the
engine) and toysup_tui, never a generic top-level ``engine`` another distribution could shadow."""

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_wheel_has_no_top_level_engine_and_carries_the_engine_and_presets(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path), str(ROOT)], check=True, capture_output=True, timeout=300)
    (wheel,) = tmp_path.glob("toysup-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert top == {"toysup", "toysup_tui"}
    engine_files = {name.removeprefix("toysup/engine/") for name in names if name.startswith("toysup/engine/")}
    source = {str(p.relative_to(ROOT / "engine")) for p in (ROOT / "engine").rglob("*.py")}
    assert source <= engine_files  # every engine module, subpackages included
    presets = {p.name for p in (ROOT / "presets").glob("*.toml")}
    assert presets and {f"presets/{name}" for name in presets} <= engine_files

"""The dependency locks in requirements/ agree with pyproject.toml, and the check that says so
fails when they do not."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)", re.MULTILINE)


def _copy_project(tmp_path: Path) -> Path:
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "check_lock.py", tmp_path / "scripts")
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    shutil.copytree(ROOT / "requirements", tmp_path / "requirements")
    return tmp_path


def _check(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(root / "scripts" / "check_lock.py")],
        capture_output=True,
        text=True,
        check=False,
    )


def _pins(name: str) -> dict[str, str]:
    return dict(_PIN.findall((ROOT / "requirements" / name).read_text()))


def test_the_committed_locks_agree() -> None:
    result = _check(ROOT)
    assert result.returncode == 0, result.stderr


def test_a_dependency_added_without_relocking_fails(tmp_path: Path) -> None:
    root = _copy_project(tmp_path)
    pyproject = root / "pyproject.toml"
    text = pyproject.read_text()
    pyproject.write_text(
        text.replace('"PyJWT[crypto]>=2.9",', '"PyJWT[crypto]>=2.9",\n    "pyfiglet",')
    )
    result = _check(root)
    assert result.returncode == 1
    assert "other dependency lists than pyproject.toml's" in result.stderr
    assert "has no pin for pyfiglet" in result.stderr
    assert "run scripts/lock" in result.stderr


def test_a_pin_outside_its_range_fails(tmp_path: Path) -> None:
    root = _copy_project(tmp_path)
    lock = root / "requirements" / "dev.txt"
    version = _pins("dev.txt")["pydantic"]
    lock.write_text(lock.read_text().replace(f"pydantic=={version}", "pydantic==1.10.0"))
    result = _check(root)
    assert result.returncode == 1
    assert "pins pydantic==1.10.0, outside" in result.stderr


def test_runtime_pins_are_the_dev_pins() -> None:
    dev, runtime = _pins("dev.txt"), _pins("runtime.txt")
    assert runtime.items() <= dev.items()
    assert runtime["torch"].startswith("2.13.0")  # the CPU build on disk, never the CUDA one

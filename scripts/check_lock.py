"""Check that the dependency locks in requirements/ agree with pyproject.toml.

Each lock's header carries a fingerprint of pyproject.toml's dependency lists (runtime, extras and
build requirements), written by scripts/lock. This check fails when the fingerprint differs (the
lists changed since the lock was made) or when a lock's pinned version does not satisfy a
requirement. It reads files only: it never asks an index, so a new release upstream cannot turn
it red.

    python scripts/check_lock.py                 check every lock (exit 1 on disagreement)
    python scripts/check_lock.py --fingerprint   print pyproject.toml's fingerprint
    python scripts/check_lock.py --build-requirements   print the build-system requirements
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# lock file -> the requirement lists of pyproject.toml it must satisfy
LOCKS: dict[str, tuple[str, ...]] = {
    "requirements/dev.txt": ("dependencies", "local", "dev"),
    "requirements/runtime.txt": ("dependencies", "local"),
    "requirements/build.txt": ("build-system",),
}
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^ \\;]+)", re.MULTILINE)
_FINGERPRINT = re.compile(r"^# pyproject-dependencies-sha256: ([0-9a-f]{64})$", re.MULTILINE)


def _project() -> dict[str, object]:
    with (ROOT / "pyproject.toml").open("rb") as f:
        return tomllib.load(f)


def requirement_lists(project: dict[str, object]) -> dict[str, list[str]]:
    table = project["project"]
    assert isinstance(table, dict)
    lists: dict[str, list[str]] = {"dependencies": list(table.get("dependencies", []))}
    lists.update(table.get("optional-dependencies", {}))
    build = project["build-system"]
    assert isinstance(build, dict)
    lists["build-system"] = list(build["requires"])
    return lists


def fingerprint(project: dict[str, object]) -> str:
    text = json.dumps(requirement_lists(project), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def problems() -> list[str]:
    from packaging.requirements import Requirement  # in the dev lock; only the check needs it

    project = _project()
    want = fingerprint(project)
    lists = requirement_lists(project)
    found: list[str] = []
    for lock, names in LOCKS.items():
        path = ROOT / lock
        if not path.exists():
            found.append(f"{lock} is missing: run scripts/lock")
            continue
        text = path.read_text()
        have = _FINGERPRINT.search(text)
        if have is None or have.group(1) != want:
            found.append(f"{lock} was made from other dependency lists than pyproject.toml's")
        pins = {_normalise(n): v for n, v in _PIN.findall(text)}
        for name in names:
            for line in lists[name]:
                req = Requirement(line)
                if req.marker is not None and not req.marker.evaluate({"extra": ""}):
                    continue
                version = pins.get(_normalise(req.name))
                if version is None:
                    found.append(f"{lock} has no pin for {req.name} ({name})")
                elif not req.specifier.contains(version, prereleases=True):
                    found.append(f"{lock} pins {req.name}=={version}, outside {req.specifier}")
    return found


def main(argv: list[str]) -> int:
    if argv == ["--fingerprint"]:
        print(fingerprint(_project()))
        return 0
    if argv == ["--build-requirements"]:
        print("\n".join(requirement_lists(_project())["build-system"]))
        return 0
    if argv:
        print(__doc__, file=sys.stderr)
        return 2
    found = problems()
    for problem in found:
        print(f"lock check: {problem}", file=sys.stderr)
    if found:
        print(
            "lock check: run scripts/lock and commit requirements/ with pyproject.toml "
            "(see CONTRIBUTING.md)",
            file=sys.stderr,
        )
        return 1
    print("lock check: requirements/ agrees with pyproject.toml")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""A wheel of the plait installed here, for a machine that must install this very plait (a SageMaker training job or
endpoint) from a file shipped beside its code, so that no package index needs to hold it.

- installed from a wheel file that is still there: a copy of that file;
- installed from a source folder (`pip install -e .`, `pip install .`): built from a clean copy of the folder's
  project files by its own build backend (setuptools), offline; the source folder itself is left as it was;
- installed from a package index: the installed files packed back into a wheel (the RECORD lists them).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from fnmatch import fnmatch
from importlib import metadata
from pathlib import Path
from urllib.parse import unquote, urlparse

from plait.errors import PlaitError

DROPPED = ("RECORD", "INSTALLER", "REQUESTED", "direct_url.json")  # what an installer adds to a dist-info
PROJECT_FILES = ("pyproject.toml", "setup.py", "setup.cfg", "MANIFEST.in", "README*", "LICEN[CS]E*", "COPYING*", "NOTICE*")


def plait_wheel(out_dir: str | Path, dist: metadata.Distribution | None = None) -> Path:
    """A wheel of `dist` (the installed plait) written into `out_dir`; its path."""
    dist = dist or metadata.distribution("plait")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    origin = json.loads(dist.read_text("direct_url.json") or "{}")
    url = urlparse(origin.get("url", ""))
    source = Path(unquote(url.path)) if url.scheme == "file" else None
    if source and "archive_info" in origin and source.suffix == ".whl" and source.is_file():
        return Path(shutil.copy2(source, out_dir / source.name))
    if source and "dir_info" in origin and (source / "pyproject.toml").is_file():
        return built(source, out_dir)
    return repacked(dist, out_dir)


def built(project: Path, out_dir: Path) -> Path:
    """`project` built by its PEP 517 backend in a copy of its project files and `src/`, so no stale `build/` folder
    of the user's can slip old modules into the wheel."""
    backend = tomllib.loads((project / "pyproject.toml").read_text(encoding="utf-8"))["build-system"]["build-backend"]
    with tempfile.TemporaryDirectory(prefix="plait-wheel-") as scratch:
        copy, built_dir = Path(scratch) / "project", Path(scratch) / "dist"
        copy.mkdir()
        for path in project.iterdir():
            if path.is_file() and any(fnmatch(path.name, pattern) for pattern in PROJECT_FILES):
                shutil.copy2(path, copy / path.name)
        shutil.copytree(project / "src", copy / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        code = f"import importlib, sys; print(importlib.import_module({backend!r}).build_wheel(sys.argv[1]))"
        done = subprocess.run([sys.executable, "-c", code, str(built_dir)], cwd=copy, capture_output=True, text=True)
        if done.returncode != 0:
            tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-5:])
            raise PlaitError(f"cannot build a plait wheel from {project} with {backend} (is it installed?):\n{tail}")
        name = done.stdout.strip().splitlines()[-1]
        return Path(shutil.move(built_dir / name, out_dir / name))


def repacked(dist: metadata.Distribution, out_dir: Path) -> Path:
    """The installed files of `dist` as a wheel: its packages and dist-info (the console scripts are made again from
    entry_points.txt when the wheel is installed), with a new RECORD."""
    name = re.sub(r"[-_.]+", "_", dist.metadata["Name"]).lower()
    files = [file for file in dist.files or [] if file.parts[0] != ".." and "__pycache__" not in file.parts]
    info = next((file.parts[0] for file in files if file.parts[0].endswith(".dist-info")), None)
    if info is None:
        raise PlaitError(f"{name} {dist.version}: its installed files are not listed (no RECORD); reinstall it with pip")
    wheel = out_dir / f"{name}-{dist.version}-py3-none-any.whl"
    record = []
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as archive:
        for file in files:
            if file.parts[0] == info and file.name in DROPPED:
                continue
            data = Path(file.locate()).read_bytes()
            archive.writestr(file.as_posix(), data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            record.append(f"{file.as_posix()},sha256={digest},{len(data)}")
        archive.writestr(f"{info}/RECORD", "\n".join([*record, f"{info}/RECORD,,"]) + "\n")
    return wheel


def ship_plait(folder: str | Path, installed_from: str) -> Path:
    """plait's wheel in `folder` and a requirements.txt installing it from `installed_from`, the folder's path on the
    machine that runs `pip install -r requirements.txt` (`.` when pip runs in the folder); returns the wheel."""
    wheel = plait_wheel(folder)
    (Path(folder) / "requirements.txt").write_text(f"{installed_from.rstrip('/')}/{wheel.name}\n", encoding="utf-8")
    return wheel

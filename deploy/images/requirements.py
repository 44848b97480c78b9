"""Print the project's requirements for some extras, one per line, from pyproject.toml.

The one place that turns "the api image" or "the trainer image" into a list of packages:
the host's wheelhouse script downloads them and the Dockerfile installs them, so the
dependency layers of an image build before (and are cached apart from) the project code.

    python3 deploy/images/requirements.py serve          # the api image
    python3 deploy/images/requirements.py train index    # the trainer image
"""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path


def requirements(extras: list[str], pyproject: Path) -> list[str]:
    project = tomllib.loads(pyproject.read_text())["project"]
    optional = project["optional-dependencies"]
    unknown = [e for e in extras if e not in optional]
    if unknown:
        raise SystemExit(f"unknown extra(s) {unknown}; pyproject.toml has {sorted(optional)}")
    found = list(project["dependencies"])
    for extra in extras:
        found += [r for r in optional[extra] if not r.startswith(project["name"])]
    return list(dict.fromkeys(found))


if __name__ == "__main__":
    args = sys.argv[1:]
    if args[:1] == ["--pyproject"]:
        path, args = Path(args[1]), args[2:]
    else:
        path = Path(__file__).resolve().parents[2] / "pyproject.toml"
    print("\n".join(requirements(args, path)))

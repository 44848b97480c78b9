"""Dependencies: every installed package is pinned in the lock file, and pip-audit finds no
known vulnerability in the locked set (where a vulnerability service can be reached)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements" / "lock.txt"


def locked() -> dict[str, str]:
    pins = {}
    for line in LOCK.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, version = line.split("==")
            pins[re.sub(r"[-_.]+", "-", name).lower()] = version
    return pins


def test_every_runtime_dependency_is_pinned_in_the_lock_file():
    pins = locked()
    requirements = metadata.requires("sine-rec") or []
    names = {re.sub(r"[-_.]+", "-", re.split(r"[ ;<>=!\[]", r, maxsplit=1)[0]).lower() for r in requirements}
    names.discard("sine-rec")
    missing = sorted(n for n in names if n not in pins)
    assert not missing, f"not in {LOCK.name}: {missing}"
    for name, version in pins.items():
        assert re.fullmatch(r"[0-9][0-9A-Za-z.!+-]*", version), (name, version)


def test_pip_audit_finds_no_known_vulnerability():
    result = subprocess.run(
        [sys.executable, "-m", "pip_audit", "-r", str(LOCK), "--no-deps", "--disable-pip", "--format", "json",
         "--progress-spinner", "off"], capture_output=True, text=True, timeout=600)
    try:
        report = json.loads(result.stdout)
    except json.JSONDecodeError:
        pytest.skip(f"pip-audit could not run here: {result.stderr.strip()[-300:]}")
    audited = [d for d in report["dependencies"] if "skip_reason" not in d]
    if not audited:
        example = report["dependencies"][0].get("skip_reason", "") if report["dependencies"] else ""
        pytest.skip(f"no vulnerability service answered: pip-audit skipped all {len(report['dependencies'])} "
                    f"packages (e.g. {example!r})")
    vulnerable = {d["name"]: [v["id"] for v in d["vulns"]] for d in audited if d.get("vulns")}
    assert not vulnerable, f"known vulnerabilities: {vulnerable}"

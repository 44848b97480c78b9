"""Atomic publication leaves artifacts readable by other users, as plain writes would.

A bundle written on the host (root, or a CI user) is mounted into the API container,
whose user is uid 10001: with tempfile's private modes (0700 directories, 0600 files) it
could not read it.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from sine.atomic import atomic_write, staging_directory


@pytest.fixture()
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_published_directory_has_the_mode_of_a_plain_mkdir(tmp_path, umask_022):
    (tmp_path / "plain").mkdir()
    with staging_directory(tmp_path / "bundle") as staged:
        (staged / "manifest.json").write_text("{}")
    assert mode(tmp_path / "bundle") == mode(tmp_path / "plain") == 0o755


def test_an_atomically_written_file_has_the_mode_of_a_plain_write(tmp_path, umask_022):
    (tmp_path / "plain").write_text("x")
    atomic_write(tmp_path / "CURRENT", "v1\n")
    assert mode(tmp_path / "CURRENT") == mode(tmp_path / "plain") == 0o644


def test_a_stricter_umask_is_respected(tmp_path):
    old = os.umask(0o077)
    try:
        with staging_directory(tmp_path / "bundle"):
            pass
        atomic_write(tmp_path / "CURRENT", "v1\n")
    finally:
        os.umask(old)
    assert mode(tmp_path / "bundle") == 0o700 and mode(tmp_path / "CURRENT") == 0o600

"""The admin token as deployments set it: an empty value (compose's `${SINE_ADMIN_TOKEN:-}`)
disables the admin API instead of matching an empty bearer; a placeholder (the Kubernetes
Secret's `change-me`) refuses to start."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from service.core.config import Settings
from service.main import create_app

SINE = str(Path(sys.executable).parent / "sine")


@pytest.mark.parametrize("token", ["", "   "])
def test_an_empty_token_disables_the_admin_api(flat_bundle, monkeypatch, token):
    monkeypatch.setenv("SINE_ADMIN_TOKEN", token)
    monkeypatch.setenv("SINE_BUNDLE", str(flat_bundle))
    with TestClient(create_app(Settings())) as client:
        for header in ({}, {"authorization": "Bearer "}, {"authorization": f"Bearer {token}"}):
            answer = client.post("/admin/rollback", headers=header)
            assert answer.status_code == 403, (header, answer.text)
            assert "disabled" in answer.json()["error"]


def test_a_real_token_still_guards_the_admin_api(flat_bundle, monkeypatch):
    monkeypatch.setenv("SINE_ADMIN_TOKEN", "a-real-secret-0123456789")
    with TestClient(create_app(Settings(bundle=flat_bundle))) as client:
        assert client.post("/admin/rollback", headers={"authorization": "Bearer "}).status_code == 401
        assert client.post("/admin/rollback").status_code == 401


@pytest.mark.parametrize("placeholder", ["change-me", "CHANGE-ME", "<your-token>"])
def test_a_placeholder_token_refuses_to_start(flat_bundle, placeholder):
    with pytest.raises(ValueError, match="placeholder"):
        Settings(bundle=flat_bundle, admin_token=placeholder)


def test_sine_serve_says_why_it_refuses_a_placeholder(flat_bundle, tmp_path):
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "SINE_ADMIN_TOKEN": "change-me"}
    result = subprocess.run([SINE, "serve", "--bundle", str(flat_bundle), "--port", "1"],
                            capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 2
    assert "placeholder" in result.stderr and "Traceback" not in result.stderr

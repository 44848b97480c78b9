"""The deployment files, checked without a Docker engine or a cluster: the compose file
and the Kubernetes manifests against their published schemas, the Dockerfile with
hadolint, the bootstrap script with sh -n."""

from __future__ import annotations

import copy
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
K8S_VERSION = "1.30.0"


def tool(name: str) -> str:
    path = shutil.which(name) or str(Path(__import__("sys").executable).parent / name)
    if not Path(path).exists():
        pytest.fail(f"{name} is not installed: pip install -e '.[dev]'", pytrace=False)
    return path


def test_compose_file_matches_the_compose_spec():
    result = subprocess.run([tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec",
                             str(ROOT / "docker-compose.yml")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_stack_has_the_agreed_shape():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) == {"redis", "init", "api", "scheduler"}
    assert "--appendonly" in services["redis"]["command"]
    assert services["api"]["depends_on"]["init"]["condition"] == "service_completed_successfully"
    assert services["api"]["read_only"] is True
    assert services["scheduler"]["command"][:2] == ["schedule", "--"]


def manifests():
    for path in sorted((ROOT / "deploy" / "k8s").glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            yield path.name, document


@pytest.mark.parametrize("name, document", list(manifests()),
                         ids=[f"{n}:{d['kind']}" for n, d in manifests()])
def test_kubernetes_manifest_matches_its_schema(name, document):
    import kubernetes_validate

    kubernetes_validate.validate(document, K8S_VERSION, strict=True)


def test_the_schema_check_catches_a_broken_manifest():
    import kubernetes_validate

    deployment = next(d for _, d in manifests() if d["kind"] == "Deployment")
    broken = copy.deepcopy(deployment)
    broken["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)


def test_cluster_has_api_autoscaler_cronjob_shared_volume_and_redis():
    kinds = {d["kind"] for _, d in manifests()}
    assert {"Deployment", "Service", "HorizontalPodAutoscaler", "CronJob", "Job",
            "PersistentVolumeClaim", "StatefulSet", "ConfigMap", "Secret"} <= kinds
    for _, d in manifests():
        pod = d.get("spec", {}).get("template", {}).get("spec") or \
            d.get("spec", {}).get("jobTemplate", {}).get("spec", {}).get("template", {}).get("spec")
        if pod:
            assert pod["securityContext"]["runAsNonRoot"] is True, d["metadata"]["name"]


def test_dockerfile_passes_hadolint():
    result = subprocess.run([tool("hadolint"), str(ROOT / "Dockerfile")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def stage(name: str) -> str:
    """One stage of the Dockerfile, from its FROM line to the next."""
    text = (ROOT / "Dockerfile").read_text()
    return text.split(f" AS {name}\n")[1].split("\nFROM ")[0]


def requirements(extras: list[str]) -> list[str]:
    """What an image installs, as deploy/images/requirements.py (a script, not a module) says."""
    import runpy

    script = runpy.run_path(str(ROOT / "deploy" / "images" / "requirements.py"))
    return script["requirements"](extras, ROOT / "pyproject.toml")


def test_images_run_as_non_root_and_the_api_has_no_torch():
    for target in ("api", "trainer"):
        assert "USER 10001:10001" in stage(target), target
    assert "HEALTHCHECK" in stage("api")
    assert "-r /wheelhouse/api.txt" in stage("api-deps")
    serve = requirements(["serve"])
    assert not [r for r in serve if r.startswith("torch")], serve
    assert any(r.startswith("torch") for r in requirements(["train", "index"]))


def test_image_builds_need_no_network_nor_registry_front_end():
    text = (ROOT / "Dockerfile").read_text()
    assert not text.startswith("# syntax=") and "RUN --mount" not in text
    assert "PIP_NO_INDEX=1" in stage("base")
    # The classic builder builds every stage before its target: torch must come after api.
    assert text.index(" AS api\n") < text.index(" AS trainer-deps\n")


def test_compose_publishes_on_loopback_and_needs_no_top_level_name():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert "name" not in compose  # docker-compose 1.29 rejects it
    for name, service in compose["services"].items():
        for port in service.get("ports", []):
            assert port.startswith("${SINE_API_BIND:-127.0.0.1}:"), (name, port)
    assert compose["services"]["scheduler"]["command"] == ["schedule", "--", "sine-nightly"]

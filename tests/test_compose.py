"""The compose file, as `docker-compose config` resolves it (no Docker engine runs here), and the Dockerfile."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SECRETS = {"REDIS_PASSWORD": "redis-secret-1", "POSTGRES_PASSWORD": "pg-secret-2", "FLOWER_USER": "ops",
           "FLOWER_PASSWORD": "flower-secret-3"}


def compose_config(**environment: str) -> subprocess.CompletedProcess[str]:
    """``docker-compose config`` of the project's file with exactly ``environment`` set (plus PATH)."""
    binary = shutil.which("docker-compose")
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("docker-compose is not installed (required in CI: .ci/run installs it)")
        pytest.skip("docker-compose is not installed")
    env = {"PATH": os.environ["PATH"], **environment}
    return subprocess.run([binary, "--project-directory", str(ROOT), "-f", str(ROOT / "docker-compose.yml"),
                           "config"], env=env, capture_output=True, text=True, timeout=60, cwd=ROOT, check=False)


@pytest.fixture(scope="module")
def services():
    result = compose_config(**SECRETS)
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)["services"]


@pytest.mark.parametrize("missing", sorted(SECRETS))
def test_no_secret_has_a_default(missing):
    result = compose_config(**{k: v for k, v in SECRETS.items() if k != missing})
    assert result.returncode != 0
    assert missing in result.stderr and "README" in result.stderr


def test_the_file_holds_no_password(services):
    text = (ROOT / "docker-compose.yml").read_text()
    assert not re.search(r"PASSWORD:-", text) and "annotate@" not in text


def test_redis_and_postgres_publish_no_host_port(services):
    assert "ports" not in services["redis"] and "ports" not in services["postgres"]
    published = {name for name, service in services.items() if service.get("ports")}
    assert published == {"flower"}


def test_redis_requires_the_password_and_everyone_uses_it(services):
    assert services["redis"]["command"][:3] == ["redis-server", "--requirepass", SECRETS["REDIS_PASSWORD"]]
    assert services["redis"]["environment"]["REDISCLI_AUTH"] == SECRETS["REDIS_PASSWORD"]  # the health check
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD"] == SECRETS["POSTGRES_PASSWORD"]
    for name in ("worker-cpu", "worker-gpu0", "cli", "migrate", "flower"):
        env = services[name]["environment"]
        assert env["ANNOTATE_BROKER_URL"] == f"redis://:{SECRETS['REDIS_PASSWORD']}@redis:6379/0"
        assert f":{SECRETS['POSTGRES_PASSWORD']}@postgres:5432/" in env["ANNOTATE_DATABASE_URL"]


def test_flower_asks_for_credentials_and_listens_on_loopback(services):
    flower = services["flower"]
    assert flower["environment"]["FLOWER_BASIC_AUTH"] == f"{SECRETS['FLOWER_USER']}:{SECRETS['FLOWER_PASSWORD']}"
    assert flower["ports"] == ["127.0.0.1:5555:5555/tcp"]


def test_workers_never_run_as_root(services):
    for name in ("worker-cpu", "worker-gpu0", "worker-gpu1", "cli", "migrate", "flower"):
        assert services[name].get("user") == "10001:10001", name
    dockerfile = (ROOT / "Dockerfile").read_text()
    users = re.findall(r"^USER\s+(\S+)", dockerfile, re.MULTILINE)
    assert users and users[-1].split(":")[0] not in ("root", "0")


def test_services_exist_with_healthchecks(services):
    assert {"redis", "postgres", "migrate", "worker-cpu", "worker-gpu0", "flower"} <= set(services)
    assert "healthcheck" in services["redis"] and "healthcheck" in services["postgres"]


def test_migrate_runs_once_before_workers(services):
    assert services["migrate"]["command"] == ["db", "upgrade"]
    assert services["migrate"]["restart"] == "no"
    for name in ("worker-cpu", "worker-gpu0", "worker-gpu1"):
        assert services[name]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}


def test_each_gpu_worker_reserves_its_own_device(services):
    gpu_workers = [s for name, s in services.items() if name.startswith("worker-gpu")]
    devices = [s["deploy"]["resources"]["reservations"]["devices"][0] for s in gpu_workers]
    assert all(d["capabilities"] == ["gpu"] for d in devices)
    ids = [tuple(d["device_ids"]) for d in devices]
    assert len(set(ids)) == len(ids)
    assert all("gpu" in s["command"][2] for s in gpu_workers)


def test_cpu_workers_can_scale(services):
    worker = services["worker-cpu"]
    assert "container_name" not in worker and "ports" not in worker  # both would block --scale


def test_photos_are_mounted_at_the_same_path_for_cli_and_workers(services):
    for name in ("cli", "worker-cpu", "worker-gpu0"):
        targets = [v["target"] if isinstance(v, dict) else v.split(":")[1] for v in services[name]["volumes"]]
        assert "/photos" in targets, name


def test_compose_file_parses_without_docker_compose():
    # The structure is also plain YAML, readable where docker-compose is missing.
    data = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert "worker-cpu" in data["services"]

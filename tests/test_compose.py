"""No Docker engine runs here, so the compose file's structure is checked as data."""

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def load():
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_services_exist_with_healthchecks():
    services = load()["services"]
    assert {"redis", "postgres", "migrate", "worker-cpu", "worker-gpu0", "flower"} <= set(services)
    assert "healthcheck" in services["redis"] and "healthcheck" in services["postgres"]
    assert "--requirepass" in services["redis"]["command"]


def test_migrate_runs_once_before_workers():
    services = load()["services"]
    assert services["migrate"]["command"] == ["db", "upgrade"]
    assert services["migrate"]["restart"] == "no"
    for name in ("worker-cpu", "worker-gpu0", "worker-gpu1"):
        assert services[name]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}


def test_each_gpu_worker_reserves_its_own_device():
    services = load()["services"]
    gpu_workers = [s for name, s in services.items() if name.startswith("worker-gpu")]
    devices = [s["deploy"]["resources"]["reservations"]["devices"][0] for s in gpu_workers]
    assert all(d["capabilities"] == ["gpu"] for d in devices)
    ids = [tuple(d["device_ids"]) for d in devices]
    assert len(set(ids)) == len(ids)
    assert all("gpu" in s["command"][2] for s in gpu_workers)


def test_cpu_workers_can_scale():
    worker = load()["services"]["worker-cpu"]
    assert "container_name" not in worker and "ports" not in worker  # both would block --scale


def test_photos_are_mounted_at_the_same_path_for_cli_and_workers():
    services = load()["services"]
    for name in ("cli", "worker-cpu", "worker-gpu0"):
        assert any(":/photos:" in volume for volume in services[name]["volumes"]), name


def test_services_share_one_broker_and_database():
    services = load()["services"]
    urls = {(s["environment"]["ANNOTATE_BROKER_URL"], s["environment"]["ANNOTATE_DATABASE_URL"])
            for name, s in services.items() if name.startswith("worker") or name == "cli"}
    assert len(urls) == 1

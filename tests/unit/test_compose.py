"""docker-compose.yml and what it mounts hold together, checked without a Docker engine.

Parsed as YAML: every service is pinned, health-checked and bound to loopback;
every mounted file exists; the services find each other under the names and
ports the Prometheus, Alertmanager and Grafana files use.
"""

from __future__ import annotations

import json
import re
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from tracker.monitoring.grafana import DATASOURCE_UID

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
DASHBOARDS = sorted((ROOT / "deploy" / "grafana" / "dashboards").glob("*.json"))


def mounts(service: str) -> dict[str, str]:
    """Return container path -> source (a host path or a named volume) of a service's volumes."""
    found = {}
    for entry in SERVICES[service].get("volumes", []):
        source, target, *_ = entry.split(":")
        found[target] = source
    return found


def host_file(service: str, container_path: str) -> Path:
    """Return the host file behind a path inside a service's container, through its bind mounts."""
    wanted = PurePosixPath(container_path)
    for target, source in mounts(service).items():
        if source.startswith("./") and (wanted == PurePosixPath(target) or PurePosixPath(target) in wanted.parents):
            return ROOT / source / wanted.relative_to(target)
    raise AssertionError(f"{container_path} is not mounted into {service}")


def flag(service: str, name: str) -> str:
    """Return the value of ``--name=value`` in a service's command."""
    (value,) = [arg.split("=", 1)[1] for arg in SERVICES[service]["command"] if arg.startswith(f"--{name}=")]
    return str(value)


def container_ports(service: str) -> set[int]:
    return {int(str(port).rsplit(":", 1)[1]) for port in SERVICES[service].get("ports", [])}


def test_the_stack_has_every_service_of_the_issue() -> None:
    assert {"kafka", "worker", "prometheus", "alertmanager", "grafana"} <= set(SERVICES)


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_every_image_is_pinned(name: str) -> None:
    image = SERVICES[name]["image"]
    repository, _, tag = image.rpartition(":")

    assert repository and tag and tag != "latest", image
    assert re.search(r"\d+\.\d+", tag), f"{image}: pin a version"


def test_the_worker_is_built_from_the_dockerfile_as_a_non_root_user_with_a_healthcheck() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()

    assert SERVICES["worker"]["build"] == "."
    assert re.search(r"^FROM python:[\d.]+-slim", dockerfile, re.MULTILINE)
    assert re.search(r"^USER (?!root)\S+", dockerfile, re.MULTILINE)
    assert re.search(r"^HEALTHCHECK ", dockerfile, re.MULTILINE)


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_every_port_is_bound_to_loopback(name: str) -> None:
    for port in SERVICES[name].get("ports", []):
        assert isinstance(port, str) and port.startswith("127.0.0.1:"), f"{name}: {port}"


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_every_service_is_health_checked_and_restarted(name: str) -> None:
    assert SERVICES[name]["healthcheck"]["test"][0] == "CMD"
    assert SERVICES[name]["restart"] == "unless-stopped"


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_every_mounted_file_exists_and_every_dependency_is_a_service(name: str) -> None:
    for target, source in mounts(name).items():
        if source.startswith("./"):
            assert (ROOT / source).exists(), f"{name} mounts missing {source}"
        else:
            assert source in COMPOSE["volumes"], f"{name}: undeclared volume {source}"
        assert target.startswith("/"), target
    assert set(SERVICES[name].get("depends_on", {})) <= set(SERVICES)


def test_kafka_and_prometheus_keep_their_data_in_named_volumes() -> None:
    assert mounts("kafka")[SERVICES["kafka"]["environment"]["KAFKA_LOG_DIRS"]] == "kafka-data"
    assert mounts("prometheus")[flag("prometheus", "storage.tsdb.path")] == "prometheus-data"


def test_prometheus_scrapes_the_worker_and_loads_the_mounted_rules() -> None:
    config_path = flag("prometheus", "config.file")
    config = yaml.safe_load(host_file("prometheus", config_path).read_text())
    (job,) = [job for job in config["scrape_configs"] if job["job_name"] == "tracker"]
    worker_port = SERVICES["worker"]["environment"]["TRACKER_HTTP_PORT"]
    config_dir = PurePosixPath(config_path).parent

    assert job["static_configs"] == [{"targets": [f"worker:{worker_port}"]}]
    for pattern in config["rule_files"]:
        rules_dir = host_file("prometheus", str(config_dir / pattern).rsplit("/", 1)[0])
        assert list(rules_dir.glob(PurePosixPath(pattern).name)), pattern


def test_prometheus_sends_alerts_to_the_alertmanager_service() -> None:
    config = yaml.safe_load(host_file("prometheus", flag("prometheus", "config.file")).read_text())
    targets = [t for am in config["alerting"]["alertmanagers"] for c in am["static_configs"] for t in c["targets"]]

    for target in targets:
        host, port = target.split(":")
        assert host in SERVICES and int(port) in container_ports(host), target


def test_alertmanager_routes_to_the_example_webhook_receiver_service() -> None:
    config = yaml.safe_load(host_file("alertmanager", flag("alertmanager", "config.file")).read_text())
    urls = [hook["url"] for receiver in config["receivers"] for hook in receiver.get("webhook_configs", [])]
    echo = SERVICES["webhook-echo"]
    script = next(arg for arg in echo["command"] if arg.endswith(".py"))

    assert urls
    for url in urls:
        parts = urlsplit(url)
        assert parts.hostname == "webhook-echo"
        assert str(parts.port) == echo["command"][echo["command"].index("--port") + 1]
    assert host_file("webhook-echo", script).is_file()


def test_grafana_provisions_the_prometheus_datasource_the_dashboards_use() -> None:
    datasources = yaml.safe_load(
        host_file("grafana", "/etc/grafana/provisioning/datasources/datasources.yml").read_text()
    )["datasources"]
    (prometheus,) = [source for source in datasources if source["type"] == "prometheus"]
    url = urlsplit(prometheus["url"])

    assert prometheus["uid"] == DATASOURCE_UID
    assert url.hostname == "prometheus" and url.port in container_ports("prometheus")
    assert DASHBOARDS
    for path in DASHBOARDS:
        uids = {match for match in re.findall(r'"uid": "([^"]+)"', path.read_text())}
        board_uid = json.loads(path.read_text())["uid"]
        assert uids - {board_uid} == {prometheus["uid"]}, path.name


def test_grafana_loads_the_generated_dashboards_from_their_mount() -> None:
    providers = yaml.safe_load(host_file("grafana", "/etc/grafana/provisioning/dashboards/dashboards.yml").read_text())[
        "providers"
    ]
    (provider,) = providers
    home = SERVICES["grafana"]["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]

    assert host_file("grafana", provider["options"]["path"]) == ROOT / "deploy" / "grafana" / "dashboards"
    assert host_file("grafana", home).is_file()


def test_services_reach_each_other_only_on_ports_they_serve() -> None:
    assert int(SERVICES["worker"]["environment"]["TRACKER_HTTP_PORT"]) in container_ports("worker")
    assert 9090 in container_ports("prometheus")
    assert 3000 in container_ports("grafana")

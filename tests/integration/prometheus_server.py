"""A real Prometheus for tests: installed from Debian's packages when missing, run on a free loopback port.

The config is deploy/prometheus/prometheus.yml with its rules, narrowed to the
``tracker`` job pointed at test workers, scraped and evaluated every second,
and without Alertmanager. Every wait is bounded.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import ROOT, free_port
from tracker.polling import wait_until

__all__ = ["DEPLOY", "PrometheusServer", "config_for", "ensure_installed"]

DEPLOY = ROOT / "deploy"
INSTALL_SCRIPT = DEPLOY / "prometheus" / "install.sh"
TOOLS = ("prometheus", "promtool", "amtool")


def ensure_installed() -> None:
    """Install prometheus, promtool and amtool with deploy/prometheus/install.sh unless all are on PATH."""
    if all(shutil.which(tool) for tool in TOOLS):
        return
    result = subprocess.run(["bash", str(INSTALL_SCRIPT)], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"{INSTALL_SCRIPT} failed:\n{result.stdout}\n{result.stderr}"
    missing = [tool for tool in TOOLS if not shutil.which(tool)]
    assert not missing, f"{INSTALL_SCRIPT} ran but {missing} are still missing"


def config_for(targets: list[str]) -> dict[str, Any]:
    """Return the deployed config, scraping only ``targets`` as job tracker, every second."""
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    (job,) = [job for job in config["scrape_configs"] if job["job_name"] == "tracker"]
    job["static_configs"] = [{"targets": targets}]
    config["scrape_configs"] = [job]
    config["global"].update(scrape_interval="1s", scrape_timeout="1s", evaluation_interval="1s")
    config.pop("alerting", None)
    rules_dir = DEPLOY / "prometheus"
    config["rule_files"] = [str(rules_dir / pattern) for pattern in config["rule_files"]]
    return dict(config)


class PrometheusServer:
    """One ``prometheus`` process with its own config, storage and port; stop it when done."""

    def __init__(self, config: dict[str, Any], directory: Path) -> None:
        self.config = config
        self.directory = directory
        self.port = free_port()
        self.log = directory / "prometheus.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Return the base URL of the HTTP API."""
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30) -> PrometheusServer:
        """Start the process and wait until it is ready."""
        self.directory.mkdir(parents=True, exist_ok=True)
        config_file = self.directory / "prometheus.yml"
        config_file.write_text(yaml.safe_dump(self.config, sort_keys=False))
        self.process = subprocess.Popen(
            [
                "prometheus",
                f"--config.file={config_file}",
                f"--storage.tsdb.path={self.directory / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--log.level=warn",
            ],
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_until("Prometheus to be ready", self._ready, timeout=timeout)
        return self

    def _ready(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise AssertionError(f"prometheus exited with {self.process.returncode}:\n{self.log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def stop(self) -> None:
        """Stop the process (SIGTERM, then SIGKILL after 15 s)."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)

    def api(self, path: str, **params: str | list[str]) -> Any:
        """GET ``/api/v1/<path>`` and return its ``data``; raise AssertionError on an API error."""
        query = urllib.parse.urlencode(params, doseq=True)
        try:
            with urllib.request.urlopen(f"{self.url}/api/v1/{path}?{query}", timeout=10) as response:
                document = json.loads(response.read())
        except urllib.error.HTTPError as error:
            document = json.loads(error.read())
        assert document["status"] == "success", f"{path} {params}: {document.get('error')}"
        return document["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """Run an instant query; return its vector as [{"metric": labels, "value": float}]."""
        data = self.api("query", query=expr)
        if data["resultType"] == "scalar":
            return [{"metric": {}, "value": float(data["result"][1])}]
        assert data["resultType"] == "vector", f"{expr}: {data['resultType']}"
        return [{"metric": item["metric"], "value": float(item["value"][1])} for item in data["result"]]

    def label_values(self, label: str, match: str) -> list[str]:
        """Return the values of ``label`` on the series ``match`` selects (Grafana's label_values)."""
        return list(self.api(f"label/{label}/values", **{"match[]": match}))

    def wait_for(self, expr: str, timeout: float = 30) -> list[dict[str, Any]]:
        """Wait until ``expr`` returns data; return it."""
        wait_until(f"{expr} in Prometheus", lambda: self.query(expr), timeout=timeout)
        return self.query(expr)

    def wait_for_scrapes(self, count: int, timeout: float = 30) -> None:
        """Wait until every target has been scraped successfully ``count`` more times."""
        seen: dict[str, set[str]] = {}

        def scraped() -> bool:
            for target in self.api("targets", state="active")["activeTargets"]:
                if target["health"] == "up":
                    seen.setdefault(target["scrapeUrl"], set()).add(target["lastScrape"])
            return bool(seen) and all(len(times) > count for times in seen.values())

        wait_until(f"{count} scrapes of every target", scraped, timeout=timeout)

    def rules(self) -> list[dict[str, Any]]:
        """Return every loaded rule with its group name, health and last error."""
        groups = self.api("rules")["groups"]
        return [{**rule, "group": group["name"]} for group in groups for rule in group["rules"]]

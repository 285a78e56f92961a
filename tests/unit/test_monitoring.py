"""The compose `monitoring` profile's files: Prometheus scrapes every stylebot service on the
metrics port, Grafana is provisioned, and the dashboard queries only metrics that exist."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from quota.gauges import QueueGauges
from storage import metrics

pytestmark = pytest.mark.unit

yaml = pytest.importorskip("yaml")  # PyYAML: a transformers/huggingface_hub dependency

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "deploy" / "monitoring"
DASHBOARD = MONITORING / "grafana" / "dashboards" / "stylebot.json"
PROMQL_WORDS = {
    "sum", "max", "min", "avg", "count", "by", "without", "rate", "increase", "irate",
    "histogram_quantile", "or", "and", "unless", "vector", "on", "ignoring", "bool",
}  # fmt: skip
OTHER_SERIES = {"up"}  # Prometheus's own, per target


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = load_yaml(ROOT / "docker-compose.yml")
    assert isinstance(data, dict)
    return data


def series_names() -> set[str]:
    """Every series name the processes expose."""
    names: set[str] = set()
    for spec in metrics.SPECS:
        if spec.kind == "counter":
            names.add(f"{spec.name}_total")
        elif spec.kind == "histogram":
            names |= {f"{spec.name}_{part}" for part in ("bucket", "sum", "count")}
        else:
            names.add(spec.name)
    gauges = QueueGauges(None, None, {}, None)  # type: ignore[arg-type]  # describe() reads none
    return names | {family.name for family in gauges.describe()}


def metric_names(expr: str) -> set[str]:
    """The series a PromQL expression selects: its identifiers, less label matchers, label
    lists, range selectors, strings and PromQL's own words."""
    bare = re.sub(r'"[^"]*"', "", expr)
    bare = re.sub(r"\{[^}]*\}|\[[^\]]*\]", "", bare)
    bare = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", bare)
    return {word for word in re.findall(r"[A-Za-z_:][A-Za-z0-9_:]*", bare)} - PROMQL_WORDS


def test_metric_names_reads_promql() -> None:
    expr = 'histogram_quantile(0.95, sum by (tier, le) (rate(a_bucket{x="y"}[$__rate_interval])))'
    assert metric_names(expr) == {"a_bucket"}
    assert metric_names("max by (mode) (b) == 1 or vector(0)") == {"b"}


def dashboard_panels() -> list[dict[str, Any]]:
    data = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert data["uid"] == "stylebot" and data["title"]
    return [p for p in data["panels"] if p["type"] != "row"]


def test_the_dashboard_queries_only_metrics_that_exist() -> None:
    known = series_names() | OTHER_SERIES
    used: set[str] = set()
    for panel in dashboard_panels():
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            names = metric_names(target["expr"])
            assert names and names <= known, (panel["title"], names - known)
            used |= names
    # Every metric family is on the dashboard somewhere.
    families = {re.sub(r"_(total|bucket|sum|count)$", "", name) for name in used}
    assert {spec.name for spec in metrics.SPECS} - families == set()


def test_the_dashboard_shows_what_the_issue_asks_for() -> None:
    panels = {p["title"]: p for p in dashboard_panels()}
    exprs = {title: " ".join(t["expr"] for t in p["targets"]) for title, p in panels.items()}
    assert "stylebot_jobs_queued" in exprs["Queue by tier"]
    waits = exprs["Waits against each tier's promise"]
    assert "stylebot_job_wait_seconds_bucket" in waits
    assert "stylebot_tier_max_wait_seconds" in waits
    assert "stylebot_images_total" in exprs["Images/s by tier"]
    assert 'outcome="refused"' in exprs["Rejections by reason"]
    assert "stylebot_workers_live" in exprs["Workers live"]
    assert "stylebot_gpu_memory_used_bytes" in exprs["GPU memory"]
    ids = [p["id"] for p in dashboard_panels()]
    assert len(ids) == len(set(ids))


def test_grafana_is_provisioned_with_the_prometheus_service(compose: dict[str, Any]) -> None:
    grafana = compose["services"]["grafana"]
    mounts = dict(v.rsplit(":", 1)[0].split(":", 1) for v in grafana["volumes"] if ":ro" in v)
    for source in mounts:
        assert (ROOT / source).is_dir(), source
    sources = load_yaml(MONITORING / "grafana/provisioning/datasources/prometheus.yml")
    (source,) = sources["datasources"]
    assert source["url"] == "http://prometheus:9090" and "prometheus" in compose["services"]
    uids = {t["datasource"]["uid"] for p in dashboard_panels() for t in p["targets"]}
    assert uids == {source["uid"]}
    providers = load_yaml(MONITORING / "grafana/provisioning/dashboards/stylebot.yml")
    path = providers["providers"][0]["options"]["path"]
    assert mounts["./deploy/monitoring/grafana/dashboards"] == path  # mounted where it looks
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == f"{path}/{DASHBOARD.name}"
    assert grafana["environment"]["GF_SECURITY_ADMIN_PASSWORD"] is None  # from .env, not here


def test_monitoring_services_are_opt_in_and_local(compose: dict[str, Any]) -> None:
    for name in ("prometheus", "grafana"):
        service = compose["services"][name]
        assert service["profiles"] == ["monitoring"]
        assert service["ports"] and all(p.startswith("127.0.0.1:") for p in service["ports"])
    assert {"prometheus-data", "grafana-data"} <= set(compose["volumes"])
    config = compose["services"]["prometheus"]["volumes"][0]
    assert config.startswith("./deploy/monitoring/prometheus.yml:")


def test_prometheus_scrapes_every_stylebot_service_on_the_metrics_port(
    compose: dict[str, Any],
) -> None:
    port = int(compose["x-stylebot-env"]["STYLEBOT_METRICS_PORT"])
    services = compose["services"]
    stylebot = {
        name
        for name, svc in services.items()
        if "stylebot" in str(svc.get("image", "")) and svc.get("command") != ["migrate"]
    }
    assert {"worker", "bot-telegram", "bot-discord"} <= stylebot
    assert all(services[name]["environment"]["STYLEBOT_METRICS_PORT"] for name in stylebot)
    config = load_yaml(MONITORING / "prometheus.yml")
    scraped: set[str] = set()
    for job in config["scrape_configs"]:
        for sd in job.get("dns_sd_configs", []):
            assert sd["type"] == "A" and sd["port"] == port, job["job_name"]
            scraped |= set(sd["names"])
        for static in job.get("static_configs", []):
            for target in static["targets"]:
                host = target.rsplit(":", 1)[0]
                assert host == "localhost" or host in services, target
    assert stylebot <= scraped  # a `--scale`d worker: each replica is an A record of `worker`
    assert scraped <= set(services)

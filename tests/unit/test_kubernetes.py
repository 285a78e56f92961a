"""deploy/kubernetes: kustomize renders the base and every overlay, the built-in kinds pass
kubernetes-validate --strict, KEDA's objects fit KEDA's own CRD schemas (vendored in
deploy/kubernetes/schemas), and the properties the deployment relies on hold.

Offline: kubectl's built-in kustomize renders, nothing talks to a cluster or the network.
Without kubectl the tests skip, except with CI=true, where they fail.
"""

from __future__ import annotations

import base64
import copy
import functools
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from storage.models import Job, JobStatus
from storage.settings import Settings
from tasks.app import check_visibility_timeout

pytestmark = pytest.mark.unit

yaml = pytest.importorskip("yaml")
jsonschema = pytest.importorskip("jsonschema")
kubernetes_validate = pytest.importorskip("kubernetes_validate")

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "kubernetes"
BASE = K8S / "base"
SCALE_TO_ZERO = K8S / "overlays" / "scale-to-zero"
# An overlay of an operator's own, next to its real secrets.env (git ignores that name), is
# theirs to check: these tests are for what the repository ships.
OPERATOR_SECRETS = "secrets.env"
KUSTOMIZATIONS = sorted(
    p.parent for p in K8S.rglob("kustomization.yaml") if not (p.parent / OPERATOR_SECRETS).exists()
)
# The oldest Kubernetes we claim, and the kubectl these tests run with.
KUBERNETES_VERSIONS = ("1.30.0", "1.32.0")
OTHER_ENV = {"HF_TOKEN", "HF_HOME", "TORCHINDUCTOR_CACHE_DIR", "TRITON_CACHE_DIR"}
FIELDS = {f"STYLEBOT_{name.upper()}" for name in Settings.model_fields}
PLACEHOLDER = "REPLACE_ME"
MIN_STARTUP_WINDOW_S = 15 * 60  # model download + load + torch.compile


def _kubectl() -> str:
    exe = shutil.which("kubectl")
    if exe is None:
        reason = "kubectl is not on PATH; it renders deploy/kubernetes (`kubectl kustomize`)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    return exe


@functools.cache
def _render_text(directory: Path) -> str:
    result = subprocess.run(
        [_kubectl(), "kustomize", str(directory)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"kubectl kustomize {directory}:\n{result.stderr}"
    return result.stdout


def render(directory: Path) -> list[dict[str, Any]]:
    docs = [d for d in yaml.safe_load_all(_render_text(directory)) if d]
    assert docs, f"{directory} renders nothing"
    return docs


def _id(path: Path) -> str:
    return str(path.relative_to(K8S)) if path != K8S else "."


@pytest.fixture(params=KUSTOMIZATIONS, ids=_id)
def docs(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    return render(request.param)


def one(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


def named(docs: list[dict[str, Any]], kind: str, prefix: str) -> dict[str, Any]:
    """The one `kind` whose name starts with `prefix` (generated names carry a hash)."""
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"].startswith(prefix)]
    assert len(found) == 1, f"{kind}/{prefix}*: {len(found)} found"
    return found[0]


def pod_specs(docs: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    for d in docs:
        if d["kind"] in ("Deployment", "Job"):
            yield d["metadata"]["name"], d["spec"]["template"]["spec"]


def containers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [*spec.get("initContainers", []), *spec["containers"]]


def main_container(docs: list[dict[str, Any]], deployment: str) -> dict[str, Any]:
    spec = one(docs, "Deployment", deployment)["spec"]["template"]["spec"]
    assert len(spec["containers"]) == 1
    return spec["containers"][0]


def env_names(container: dict[str, Any], docs: list[dict[str, Any]]) -> set[str]:
    names = {e["name"] for e in container.get("env", [])}
    for source in container.get("envFrom", []):
        ref = source["configMapRef"]["name"]
        names |= set(one(docs, "ConfigMap", ref)["data"])
    return names


def secret_data(docs: list[dict[str, Any]]) -> dict[str, str]:
    secret = named(docs, "Secret", "stylebot-secrets")
    return {k: base64.b64decode(v).decode() for k, v in secret.get("data", {}).items()}


def effective_settings(
    docs: list[dict[str, Any]], container: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> Settings:
    """Settings as the container parses them: its ConfigMap and literal env, no secrets."""
    for key in list(os.environ):
        if key.startswith("STYLEBOT_"):
            monkeypatch.delenv(key)
    for source in container.get("envFrom", []):
        for key, value in one(docs, "ConfigMap", source["configMapRef"]["name"])["data"].items():
            monkeypatch.setenv(key, value)
    for e in container.get("env", []):
        if "value" in e:
            monkeypatch.setenv(e["name"], e["value"])
    return Settings(_env_file=None)  # type: ignore[call-arg]


# --- rendering and schemas -------------------------------------------------------------------


def test_every_kustomization_renders_the_whole_stack(docs: list[dict[str, Any]]) -> None:
    kinds = {(d["kind"], d["metadata"]["name"]) for d in docs}
    assert len(kinds) == len(docs), "two objects of one kind share a name"
    for kind, name in [
        ("Deployment", "stylebot-worker"),
        ("Deployment", "stylebot-telegram"),
        ("Deployment", "stylebot-discord"),
        ("Job", "stylebot-migrate"),
        ("ScaledObject", "stylebot-worker"),
        ("TriggerAuthentication", "stylebot-keda-postgresql"),
        ("PersistentVolumeClaim", "stylebot-data"),
        ("PersistentVolumeClaim", "stylebot-model-cache"),
        ("Service", "stylebot-status"),
    ]:
        assert (kind, name) in kinds
    # External services: nothing here runs PostgreSQL or Redis.
    images = [c["image"] for _, spec in pod_specs(docs) for c in containers(spec)]
    assert not [i for i in images if re.search(r"postgres|redis", i)]
    assert not [d for d in docs if d["kind"] == "StatefulSet"]


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_builtin_kinds_pass_strict_validation(docs: list[dict[str, Any]], version: str) -> None:
    builtin = [d for d in docs if not d["apiVersion"].startswith("keda.sh/")]
    assert len(builtin) >= 8
    for doc in builtin:
        # Raises on an unknown field (strict), a wrong type, a missing required field, and
        # SchemaNotFoundError on a kind or apiVersion Kubernetes does not have.
        kubernetes_validate.validate(doc, version, strict=True)


def _strict(schema: Any) -> Any:
    """A CRD schema that refuses unknown fields, as `kubectl apply` (strict field validation)
    does; a plain JSON Schema reading of it would let a misspelt field through."""
    if isinstance(schema, list):
        return [_strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _strict(v) for k, v in schema.items() if k != "properties"}
    if "properties" in schema:
        out["properties"] = {k: _strict(v) for k, v in schema["properties"].items()}
        if not schema.get("x-kubernetes-preserve-unknown-fields"):
            out.setdefault("additionalProperties", False)
    return out


@functools.cache
def keda_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) -> the strict openAPIV3Schema, from the vendored KEDA CRDs."""
    found = {}
    for path in sorted((K8S / "schemas").glob("keda.sh_*.yaml")):
        crd = yaml.safe_load(path.read_text(encoding="utf-8"))
        for version in crd["spec"]["versions"]:
            key = (f"{crd['spec']['group']}/{version['name']}", crd["spec"]["names"]["kind"])
            found[key] = _strict(version["schema"]["openAPIV3Schema"])
    return found


def keda_errors(doc: dict[str, Any]) -> list[str]:
    schema = keda_schemas()[(doc["apiVersion"], doc["kind"])]
    validator = jsonschema.Draft4Validator(schema)  # OpenAPI 3.0 schemas follow draft 4
    return [
        f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)
    ]


def test_keda_objects_fit_kedas_crd_schemas(docs: list[dict[str, Any]]) -> None:
    keda = [d for d in docs if d["apiVersion"].startswith("keda.sh/")]
    assert {d["kind"] for d in keda} == {"ScaledObject", "TriggerAuthentication"}
    for doc in keda:
        assert keda_errors(doc) == [], f"{doc['kind']}/{doc['metadata']['name']}"


def test_the_validators_do_refuse_mistakes() -> None:
    """The checks above can fail: a misspelt field and a bad value are caught."""
    docs = render(BASE)
    deployment = copy.deepcopy(one(docs, "Deployment", "stylebot-worker"))
    deployment["spec"]["template"]["spec"]["terminationGracePeriod"] = 240
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[0], strict=True)
    scaled = copy.deepcopy(one(docs, "ScaledObject", "stylebot-worker"))
    scaled["spec"]["minReplicas"] = 0
    assert keda_errors(scaled)
    scaled = copy.deepcopy(one(docs, "ScaledObject", "stylebot-worker"))
    del scaled["spec"]["triggers"][0]["type"]
    assert keda_errors(scaled)
    auth = copy.deepcopy(one(docs, "TriggerAuthentication", "stylebot-keda-postgresql"))
    auth["spec"]["secretTargetRef"][0]["secret"] = auth["spec"]["secretTargetRef"][0].pop("name")
    assert keda_errors(auth)


def test_references_resolve(docs: list[dict[str, Any]]) -> None:
    """Every Secret key, ConfigMap, claim and KEDA reference names something rendered."""
    secrets = {d["metadata"]["name"]: set(d.get("data", {})) for d in docs if d["kind"] == "Secret"}
    maps = {d["metadata"]["name"] for d in docs if d["kind"] == "ConfigMap"}
    claims = {d["metadata"]["name"] for d in docs if d["kind"] == "PersistentVolumeClaim"}
    for name, spec in pod_specs(docs):
        for c in containers(spec):
            for e in c.get("env", []):
                if ref := e.get("valueFrom", {}).get("secretKeyRef"):
                    assert ref["name"] in secrets, f"{name}: {ref}"
                    assert ref.get("optional") or ref["key"] in secrets[ref["name"]], (
                        f"{name}: {ref}"
                    )
            for source in c.get("envFrom", []):
                assert source["configMapRef"]["name"] in maps, name
            mounts = {m["name"] for m in c.get("volumeMounts", [])}
            assert mounts <= {v["name"] for v in spec.get("volumes", [])}, name
        for volume in spec.get("volumes", []):
            if claim := volume.get("persistentVolumeClaim"):
                assert claim["claimName"] in claims, name
    for auth in (d for d in docs if d["kind"] == "TriggerAuthentication"):
        for ref in auth["spec"]["secretTargetRef"]:
            assert ref["key"] in secrets.get(ref["name"], set()), ref
    auths = {d["metadata"]["name"] for d in docs if d["kind"] == "TriggerAuthentication"}
    for scaled in (d for d in docs if d["kind"] == "ScaledObject"):
        one(docs, "Deployment", scaled["spec"]["scaleTargetRef"]["name"])
        for trigger in scaled["spec"]["triggers"]:
            assert trigger["authenticationRef"]["name"] in auths
    for service in (d for d in docs if d["kind"] == "Service"):
        selector = service["spec"]["selector"].items()
        templates = [d["spec"]["template"] for d in docs if d["kind"] == "Deployment"]
        pods = [t["spec"] for t in templates if selector <= t["metadata"]["labels"].items()]
        assert pods, f"Service {service['metadata']['name']} selects no pod"
        ports = {p.get("name") for s in pods for c in s["containers"] for p in c.get("ports", [])}
        assert {p["targetPort"] for p in service["spec"]["ports"]} <= ports


# --- the GPU workers -------------------------------------------------------------------------


def _probe_command(probe: dict[str, Any]) -> list[str]:
    assert set(probe) & {"exec", "httpGet", "tcpSocket", "grpc"} == {"exec"}, probe
    return probe["exec"]["command"]


def test_worker_takes_one_gpu_and_no_fixed_replica_count() -> None:
    docs = render(BASE)
    worker = one(docs, "Deployment", "stylebot-worker")
    # KEDA owns the count: a `replicas` here would be reset by every `kubectl apply`.
    assert "replicas" not in worker["spec"]
    container = main_container(docs, "stylebot-worker")
    assert container["image"] == "stylebot:gpu"
    assert container["args"] == ["worker", "--concurrency", "1"]
    assert int(container["resources"]["limits"]["nvidia.com/gpu"]) == 1
    spec = worker["spec"]["template"]["spec"]
    assert any(t["key"] == "nvidia.com/gpu" for t in spec.get("tolerations", []))


def test_worker_probes_read_the_heartbeat_and_allow_for_compiling() -> None:
    docs = render(BASE)
    container = main_container(docs, "stylebot-worker")
    startup, liveness = container["startupProbe"], container["livenessProbe"]
    assert _probe_command(startup) == ["stylebot", "health", "worker"]
    assert _probe_command(liveness) == ["stylebot", "health", "worker"]
    window = startup.get("initialDelaySeconds", 0) + startup["failureThreshold"] * startup.get(
        "periodSeconds", 10
    )
    assert window >= MIN_STARTUP_WINDOW_S, f"startup window {window} s"
    # A liveness failure restarts the worker; it must not fire on one slow probe.
    assert liveness.get("failureThreshold", 3) >= 3
    worker = one(docs, "Deployment", "stylebot-worker")
    assert worker["spec"]["progressDeadlineSeconds"] >= window


def test_no_probe_asks_celery(docs: list[dict[str, Any]]) -> None:
    for name, spec in pod_specs(docs):
        for c in containers(spec):
            for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
                if kind in c:
                    text = " ".join(_probe_command(c[kind]))
                    assert not re.search(r"celery|inspect|ping", text), f"{name} {kind}: {text}"


def test_worker_grace_period_outlasts_the_task_time_limit(
    docs: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    container = main_container(docs, "stylebot-worker")
    settings = effective_settings(docs, container, monkeypatch)
    grace = one(docs, "Deployment", "stylebot-worker")["spec"]["template"]["spec"][
        "terminationGracePeriodSeconds"
    ]
    # Warm shutdown lets the running job finish; the hard limit bounds it, plus time to settle.
    assert grace >= settings.task_time_limit + 20, (grace, settings.task_time_limit)
    # The worker refuses to start when the broker's visibility timeout is too short.
    check_visibility_timeout(settings.model_copy(update={"broker_url": "redis://redis:6379/0"}))


def test_worker_volumes_hold_the_data_and_the_caches(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    docs = render(BASE)
    container = main_container(docs, "stylebot-worker")
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    env = {e["name"]: e.get("value") for e in container["env"]}
    settings = effective_settings(docs, container, monkeypatch)

    def mounted(path: str) -> bool:
        return any(path == m or path.startswith(m.rstrip("/") + "/") for m in mounts)

    assert mounted(str(settings.data_dir)) and str(settings.data_dir) == "/data"
    for var in ("HF_HOME", "TORCHINDUCTOR_CACHE_DIR", "TRITON_CACHE_DIR"):
        assert env[var] and mounted(env[var]), var
    claims = {
        v["name"]: v["persistentVolumeClaim"]["claimName"]
        for v in one(docs, "Deployment", "stylebot-worker")["spec"]["template"]["spec"]["volumes"]
        if "persistentVolumeClaim" in v
    }
    assert claims[mounts["/data"]] == "stylebot-data"
    assert claims[mounts["/cache"]] == "stylebot-model-cache"
    for claim in ("stylebot-data", "stylebot-model-cache"):  # shared across nodes
        assert one(docs, "PersistentVolumeClaim", claim)["spec"]["accessModes"] == ["ReadWriteMany"]


# --- bots, migrations, wiring ----------------------------------------------------------------


@pytest.mark.parametrize("platform", ["telegram", "discord"])
def test_one_bot_per_platform(platform: str) -> None:
    docs = render(BASE)
    bot = one(docs, "Deployment", f"stylebot-{platform}")
    # One poller / gateway session per token: never two at once, not even during a rollout.
    assert bot["spec"]["replicas"] == 1
    assert bot["spec"]["strategy"]["type"] == "Recreate"
    container = main_container(docs, f"stylebot-{platform}")
    assert container["image"] == "stylebot:slim"
    assert container["args"] == [platform]
    assert _probe_command(container["startupProbe"]) == ["stylebot", "health", "bot"]
    assert _probe_command(container["livenessProbe"]) == ["stylebot", "health", "bot"]
    data = [m for m in container["volumeMounts"] if m["mountPath"] == "/data"]
    assert data, "bots send the results the workers stored"


def test_platform_tokens_reach_only_their_bot(docs: list[dict[str, Any]]) -> None:
    tokens = {
        "STYLEBOT_TELEGRAM_TOKEN": "stylebot-telegram",
        "STYLEBOT_DISCORD_TOKEN": "stylebot-discord",
    }
    seen = set()
    for name, spec in pod_specs(docs):
        for c in containers(spec):
            for var in env_names(c, docs):
                if var in tokens:
                    assert name == tokens[var] and c["name"] == "bot", (
                        f"{var} in {name}/{c['name']}"
                    )
                    seen.add(var)
    assert seen == set(tokens)


def test_migrations_run_before_anything_else(docs: list[dict[str, Any]]) -> None:
    job = one(docs, "Job", "stylebot-migrate")["spec"]["template"]["spec"]
    assert [c["args"] for c in job["containers"]] == [["migrate"]]
    assert job["restartPolicy"] in ("OnFailure", "Never")
    for d in (d for d in docs if d["kind"] == "Deployment"):
        spec = d["spec"]["template"]["spec"]
        init = spec.get("initContainers", [])
        assert init and init[0]["args"] == ["migrate"], d["metadata"]["name"]
        # The image the pod runs anyway, so an `images:` override moves both.
        assert init[0]["image"] == spec["containers"][0]["image"]
    for name, spec in pod_specs(docs):
        for c in containers(spec):
            if c.get("args") == ["migrate"]:
                assert env_names(c, docs) == {"STYLEBOT_DATABASE_URL"}, name


def test_metrics_and_status_ports_are_wired(docs: list[dict[str, Any]]) -> None:
    for d in (d for d in docs if d["kind"] == "Deployment"):
        template = d["spec"]["template"]
        container = template["spec"]["containers"][0]
        ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert ports["metrics"] == int(env["STYLEBOT_METRICS_PORT"]) == 9108
        annotations = template["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true"
        assert annotations["prometheus.io/port"] == str(ports["metrics"])
    telegram = main_container(docs, "stylebot-telegram")
    env = {e["name"]: e.get("value") for e in telegram["env"]}
    status = one(docs, "Service", "stylebot-status")["spec"]["ports"]
    assert int(env["STYLEBOT_STATUS_PORT"]) == 8080
    assert [(p["port"], p["targetPort"]) for p in status] == [(8080, "status")]


def test_env_names_are_real_settings(docs: list[dict[str, Any]]) -> None:
    for name, spec in pod_specs(docs):
        for c in containers(spec):
            for var in env_names(c, docs):
                if var.startswith("STYLEBOT_"):
                    assert var in FIELDS, f"{name}: {var} is not a setting"
                else:
                    assert var in OTHER_ENV, f"{name}: unexpected variable {var}"
    for key in secret_data(docs):
        assert key in FIELDS or not key.startswith("STYLEBOT_"), key


def test_configmap_parses_as_settings(
    docs: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    data = named(docs, "ConfigMap", "stylebot-config")["data"]
    # An empty value is a value, not "unset": "" fails for a number.
    assert all(value.strip() for value in data.values()), "empty value in the ConfigMap"
    for deployment in ("stylebot-worker", "stylebot-telegram", "stylebot-discord"):
        effective_settings(docs, main_container(docs, deployment), monkeypatch)


def test_pods_run_unprivileged_without_service_links(docs: list[dict[str, Any]]) -> None:
    for name, spec in pod_specs(docs):
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["automountServiceAccountToken"] is False, name
        # Else a Service named stylebot-status sets STYLEBOT_STATUS_PORT=tcp://…
        assert spec["enableServiceLinks"] is False, name
        for c in containers(spec):
            assert c["securityContext"]["allowPrivilegeEscalation"] is False, (name, c["name"])
            assert c["securityContext"]["capabilities"]["drop"] == ["ALL"], (name, c["name"])


# --- secrets ---------------------------------------------------------------------------------


def test_secrets_are_placeholders(docs: list[dict[str, Any]]) -> None:
    data = secret_data(docs)
    assert {"STYLEBOT_DATABASE_URL", "STYLEBOT_BROKER_URL", "KEDA_POSTGRESQL_CONNECTION"} <= set(
        data
    )
    for key, value in data.items():
        assert PLACEHOLDER in value, f"{key} is not an obvious placeholder"
    assert "HF_TOKEN" not in data  # a fake token would break public downloads too


def test_no_literal_secrets_in_manifests(docs: list[dict[str, Any]]) -> None:
    for name, spec in pod_specs(docs):
        for c in containers(spec):
            for e in c.get("env", []):
                if re.search(r"TOKEN|PASSWORD|SECRET|_URL$", e["name"]):
                    assert "secretKeyRef" in e.get("valueFrom", {}), f"{name}: {e['name']}"
    for value in named(docs, "ConfigMap", "stylebot-config")["data"].values():
        assert not re.search(r"://[^/\s]*:[^@\s]*@", value), value


def test_no_real_credentials_in_the_files() -> None:
    for path in K8S.rglob("*"):
        shipped = "schemas" not in path.parts and path.name != OPERATOR_SECRETS
        if path.is_file() and shipped and path.suffix != ".md":
            text = path.read_text(encoding="utf-8")
            for password in re.findall(r"://[^/\s:@]*:([^@\s/]*)@", text):
                assert password == PLACEHOLDER, f"{path}: a password that is not {PLACEHOLDER}"
            assert not re.search(r"\b\d{8,10}:[A-Za-z0-9_-]{35}\b", text), f"{path}: a bot token"


# --- KEDA ------------------------------------------------------------------------------------


def _statuses(query: str) -> set[str]:
    m = re.fullmatch(r"SELECT count\(\*\) FROM (\w+) WHERE status IN \(([^)]*)\)", query.strip())
    assert m and m.group(1) == Job.__tablename__, query
    return set(re.findall(r"'(\w+)'", m.group(2)))


def test_keda_scales_workers_from_the_jobs_table(
    docs: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    scaled = one(docs, "ScaledObject", "stylebot-worker")
    assert scaled["spec"]["scaleTargetRef"]["name"] == "stylebot-worker"
    assert scaled["spec"].get("scaleTargetRef", {}).get("kind", "Deployment") == "Deployment"
    queue = [t for t in scaled["spec"]["triggers"] if "FROM jobs" in t["metadata"]["query"]]
    assert len(queue) == 1 and queue[0]["type"] == "postgresql"
    assert _statuses(queue[0]["metadata"]["query"]) == {JobStatus.QUEUED, JobStatus.RUNNING}
    # Below one batch per worker, a single busy worker would already ask for another.
    settings = effective_settings(docs, main_container(docs, "stylebot-worker"), monkeypatch)
    assert float(queue[0]["metadata"]["targetQueryValue"]) >= settings.max_batch
    assert scaled["spec"]["maxReplicaCount"] >= max(1, scaled["spec"]["minReplicaCount"])


def test_keda_connects_with_a_plain_postgresql_url(docs: list[dict[str, Any]]) -> None:
    auth = one(docs, "TriggerAuthentication", "stylebot-keda-postgresql")
    (ref,) = auth["spec"]["secretTargetRef"]
    assert ref["parameter"] == "connection"
    # KEDA's pgx reads postgresql:// URLs, not SQLAlchemy's postgresql+psycopg://.
    assert secret_data(docs)[ref["key"]].startswith("postgresql://")
    for scaled in (d for d in docs if d["kind"] == "ScaledObject"):
        for trigger in scaled["spec"]["triggers"]:
            assert not {"connection", "connectionFromEnv", "password"} & set(trigger["metadata"])


def test_one_worker_stays_warm_by_default() -> None:
    assert one(render(BASE), "ScaledObject", "stylebot-worker")["spec"]["minReplicaCount"] == 1


def test_scale_to_zero_queues_requests_so_the_queue_wakes_a_worker() -> None:
    docs = render(SCALE_TO_ZERO)
    spec = one(docs, "ScaledObject", "stylebot-worker")["spec"]
    assert spec["minReplicaCount"] == 0
    # With no live worker admission would refuse, the jobs table would stay empty and the
    # queue-depth trigger would never fire: the cold start setting makes admission queue.
    config = next(
        d for d in docs if d["kind"] == "ConfigMap" and "stylebot-config" in d["metadata"]["name"]
    )
    cold = float(config["data"]["STYLEBOT_COLD_START_S"])
    assert cold >= 60
    assert Settings(_env_file=None, cold_start_s=cold).cold_start_s == cold  # type: ignore[call-arg]
    (trigger,) = spec["triggers"]
    assert float(trigger["metadata"].get("activationTargetQueryValue", 0)) == 0  # one job wakes


# --- the README's recipe for an operator's overlay -------------------------------------------


def test_an_operator_overlay_replaces_images_secrets_and_names(tmp_path: Path) -> None:
    (tmp_path / "secrets.env").write_text(
        "STYLEBOT_DATABASE_URL=postgresql+psycopg://u:p@db:5432/stylebot\n"
        "STYLEBOT_BROKER_URL=redis://:p@redis:6379/0\nSTYLEBOT_TELEGRAM_TOKEN=t\n"
        "STYLEBOT_DISCORD_TOKEN=d\nKEDA_POSTGRESQL_CONNECTION=postgresql://k:p@db:5432/stylebot\n",
        encoding="utf-8",
    )
    (tmp_path / "kustomization.yaml").write_text(
        f"resources: [{os.path.relpath(BASE, tmp_path)}]\n"
        "namePrefix: shop-\n"
        "images:\n  - name: stylebot\n    newName: registry.example.com/stylebot\n"
        "secretGenerator:\n"
        "  - name: stylebot-secrets\n    behavior: replace\n    envs: [secrets.env]\n",
        encoding="utf-8",
    )
    docs = render(tmp_path)
    test_references_resolve(docs)
    images = {c["image"] for _, spec in pod_specs(docs) for c in containers(spec)}
    assert images == {"registry.example.com/stylebot:gpu", "registry.example.com/stylebot:slim"}
    secret = named(docs, "Secret", "shop-stylebot-secrets")["data"]
    assert PLACEHOLDER not in base64.b64decode(secret["STYLEBOT_DATABASE_URL"]).decode()
    scaled = one(docs, "ScaledObject", "shop-stylebot-worker")
    assert scaled["spec"]["scaleTargetRef"]["name"] == "shop-stylebot-worker"

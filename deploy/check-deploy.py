"""Check the deployment files offline: Kubernetes (deploy/k8s), docker-compose.yml, nginx, the Dockerfile.

    .venv/bin/python deploy/check-deploy.py        (CI: .ci/run; needs the project's venv, docker-compose, nginx)

1. Kubernetes: every overlay of deploy/k8s/overlays is rendered by ``render`` below, a small renderer of exactly
   the kustomize features these files use (resources, namespace, images, JSON-6902 patches with a target); where
   ``kubectl`` is installed its ``kubectl kustomize`` renders them too and both renderings must be equal, so the
   small renderer stays faithful. Each resource is validated with kubernetes-validate against KUBERNETES_VERSION,
   strictly (unknown fields are errors). kubernetes-validate has no schema for custom resources and only warns
   about them: here a kind without a schema is an error, except KEDA's ScaledObject, validated against
   SCALED_OBJECT_SCHEMA (the fields used here, strictly; written from KEDA 2.x's CRD, keda.sh/v1alpha1).
   Then what no schema knows: grace periods cover the drain, probes name real routes, the private keys reach the
   remote workers only, HPA/KEDA targets exist and leave `replicas` to them, KEDA watches the served aliases'
   queues, every pod runs as non-root, GPU pods take one GPU each.
2. yamllint (.yamllint) over deploy/ and docker-compose.yml.
3. ``docker-compose config -q`` (or ``docker compose``) with .env.example, every profile; the private keys volume
   reaches only the remote workers and the keys one-shot; every build target exists in deploy/Dockerfile.
4. ``nginx -t`` on deploy/nginx/bodhi.conf inside a minimal http block, where nginx is installed.
5. deploy/Dockerfile: pinned base images and uv; every file it copies exists and passes its .dockerignore.

Exit status 0 when everything passes; each failure is printed.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

from bodhi_api.routes.health import router as health_router
from bodhi_cli.api_server import BACKSTOP_S
from bodhi_shared.redis_keys import RedisKeys

ROOT = Path(__file__).resolve().parent.parent
K8S = ROOT / "deploy" / "k8s"
KUBERNETES_VERSION = "1.32.0"
CLUSTER_SCOPED = {"Namespace", "PersistentVolume", "ClusterRole", "ClusterRoleBinding", "StorageClass"}
KUSTOMIZATION_KEYS = {"apiVersion", "kind", "namespace", "resources", "images", "patches"}
K8S_PRIVATE_KEYS = "bodhi-worker-private-keys"  # the Secret of the private keys
COMPOSE_PRIVATE_KEYS = "keys"  # docker-compose.yml's volume of the private keys
DRAIN_MARGIN_S = 5

Resource = dict[str, Any]


class CheckFailed(Exception):
    pass


# --- a small kustomize ---------------------------------------------------------------------------------------------


def render(directory: Path) -> list[Resource]:
    """The resources of the kustomization in ``directory``, for the kustomize features these files use only."""
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    unknown = set(kustomization) - KUSTOMIZATION_KEYS
    if unknown:
        raise CheckFailed(f"{directory}: the renderer of check-deploy.py knows no {sorted(unknown)}; extend it")
    resources: list[Resource] = []
    for entry in kustomization.get("resources", []):
        path = directory / entry
        resources += render(path) if path.is_dir() else [r for r in yaml.safe_load_all(path.read_text()) if r]
    for patch in kustomization.get("patches", []):
        _patch(directory, patch, resources)
    for image in kustomization.get("images", []):
        for container in _containers(resources):
            if container["image"].split(":")[0] == image["name"]:
                container["image"] = f"{image.get('newName', image['name'])}:{image['newTag']}"
    for resource in resources:
        if "namespace" in kustomization and resource["kind"] not in CLUSTER_SCOPED:
            resource["metadata"]["namespace"] = kustomization["namespace"]
    return resources


def _patch(directory: Path, patch: dict[str, Any], resources: list[Resource]) -> None:
    operations = yaml.safe_load((directory / patch["path"]).read_text())
    targets = [r for r in resources if _matches(r, patch["target"])]
    if not isinstance(operations, list) or len(targets) != 1:
        raise CheckFailed(f"{directory}: patch {patch['path']} must be a JSON patch with exactly one target")
    for operation in operations:
        _apply(targets[0], operation)


def _matches(resource: Resource, target: dict[str, str]) -> bool:
    group, _, version = resource["apiVersion"].rpartition("/")
    actual = {"group": group, "version": version, "kind": resource["kind"], "name": resource["metadata"]["name"]}
    return all(actual[key] == value for key, value in target.items())


def _apply(document: Resource, operation: dict[str, Any]) -> None:
    """One RFC 6902 operation (add, remove, replace) on ``document``, in place."""
    *parents, last = [part.replace("~1", "/").replace("~0", "~") for part in operation["path"].split("/")[1:]]
    node: Any = document
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    op, value = operation["op"], operation.get("value")
    if op not in ("add", "remove", "replace"):
        raise CheckFailed(f"the renderer of check-deploy.py knows no JSON patch operation {op!r}")
    if isinstance(node, list):
        index = len(node) if last == "-" else int(last)
        if op == "add":
            node.insert(index, value)
        elif op == "replace":
            node[index] = value
        else:
            del node[index]
    elif op != "add" and last not in node:
        raise CheckFailed(f"cannot {op} {operation['path']}: nothing is there")
    elif op == "remove":
        del node[last]
    else:
        node[last] = value


def _pod_specs(resources: Iterable[Resource]) -> Iterator[tuple[Resource, dict[str, Any]]]:
    for resource in resources:
        if resource["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
            yield resource, resource["spec"]["template"]["spec"]


def _containers(resources: Iterable[Resource]) -> Iterator[dict[str, Any]]:
    for _, pod in _pod_specs(resources):
        yield from pod.get("initContainers", []) + pod["containers"]


def _key(resource: Resource) -> tuple[str, str, str, str]:
    meta = resource["metadata"]
    return resource["apiVersion"], resource["kind"], meta.get("namespace", ""), meta["name"]


def kubectl_rendering(directory: Path) -> list[Resource] | None:
    if shutil.which("kubectl") is None:
        return None
    out = subprocess.run(["kubectl", "kustomize", str(directory)], check=True, capture_output=True, text=True)
    return [r for r in yaml.safe_load_all(out.stdout) if r]


# --- schemas -------------------------------------------------------------------------------------------------------

_STRING = {"type": "string"}
_INT = {"type": "integer", "minimum": 0}
SCALED_OBJECT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "keda.sh/v1alpha1"},
        "kind": {"const": "ScaledObject"},
        "metadata": {"type": "object", "required": ["name"]},
        "spec": {
            "type": "object",
            "required": ["scaleTargetRef", "triggers"],
            "additionalProperties": False,
            "properties": {
                "scaleTargetRef": {
                    "type": "object",
                    "required": ["name"],
                    "additionalProperties": False,
                    "properties": {"name": _STRING, "kind": _STRING, "apiVersion": _STRING},
                },
                "minReplicaCount": _INT,
                "maxReplicaCount": {"type": "integer", "minimum": 1},
                "pollingInterval": _INT,
                "cooldownPeriod": _INT,
                "advanced": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "restoreToOriginalReplicaCount": {"type": "boolean"},
                        "horizontalPodAutoscalerConfig": {
                            "type": "object",
                            "additionalProperties": False,
                            # behavior: checked as an autoscaling/v2 HPA's behavior (check_scaled_object)
                            "properties": {"name": _STRING, "behavior": {"type": "object"}},
                        },
                    },
                },
                "triggers": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["type", "metadata"],
                        "additionalProperties": False,
                        "properties": {
                            "type": _STRING,
                            "name": _STRING,
                            "metricType": {"enum": ["AverageValue", "Value", "Utilization"]},
                            "metadata": {"type": "object", "additionalProperties": _STRING},
                            "authenticationRef": {
                                "type": "object",
                                "required": ["name"],
                                "additionalProperties": False,
                                "properties": {
                                    "name": _STRING,
                                    "kind": {"enum": ["TriggerAuthentication", "ClusterTriggerAuthentication"]},
                                },
                            },
                        },
                    },
                },
            },
        },
    },
}
REDIS_TRIGGER_REQUIRED = {"listName", "listLength"}


def validate_resource(resource: Resource) -> list[str]:
    name = "{}/{}".format(resource["kind"], resource["metadata"]["name"])
    try:
        if resource["kind"] == "ScaledObject":
            jsonschema.validate(resource, SCALED_OBJECT_SCHEMA)
            check_scaled_object_fields(resource)
        else:
            kubernetes_validate.validate(resource, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.SchemaNotFoundError:
        return [f"{name}: no schema for {resource['apiVersion']} (a custom resource check-deploy.py does not know)"]
    except (kubernetes_validate.ValidationError, jsonschema.ValidationError, CheckFailed) as exc:
        return [f"{name}: {getattr(exc, 'message', exc)}"]
    return []


def check_scaled_object_fields(scaled: Resource) -> None:
    behavior = scaled["spec"].get("advanced", {}).get("horizontalPodAutoscalerConfig", {}).get("behavior")
    if behavior is not None:  # the same type as an HPA's: let the Kubernetes schema judge it
        hpa = {
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "behavior-check"},
            "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "x"}, "maxReplicas": 1, "behavior": behavior},
        }
        kubernetes_validate.validate(hpa, KUBERNETES_VERSION, strict=True)
    for trigger in scaled["spec"]["triggers"]:
        missing = REDIS_TRIGGER_REQUIRED - set(trigger["metadata"]) if trigger["type"] == "redis" else set()
        if trigger["type"] == "redis" and not {"address", "addressFromEnv", "host"} & set(trigger["metadata"]):
            missing.add("address")
        if missing:
            raise CheckFailed(f"the redis trigger lacks {sorted(missing)}")


# --- what no schema knows ------------------------------------------------------------------------------------------


def check_semantics(resources: list[Resource]) -> list[str]:
    errors: list[str] = []
    by_kind_name = {(r["kind"], r["metadata"]["name"]): r for r in resources}
    config = {k: v for r in resources if r["kind"] == "ConfigMap" for k, v in r.get("data", {}).items()}
    drain = float(config.get("BODHI_DRAIN_TIMEOUT", 30))
    for resource, pod in _pod_specs(resources):
        errors += _check_pod(resource, pod, drain)
    for resource in resources:
        if resource["kind"] == "HorizontalPodAutoscaler":
            errors += _check_scaled_target(resource, resource["spec"]["scaleTargetRef"]["name"], by_kind_name)
        elif resource["kind"] == "ScaledObject":
            errors += _check_scaled_target(resource, resource["spec"]["scaleTargetRef"]["name"], by_kind_name)
            errors += _check_keda_queues(resource, by_kind_name, config)
    return errors


def _check_pod(resource: Resource, pod: dict[str, Any], drain: float) -> list[str]:
    name, errors = resource["metadata"]["name"], []
    security = pod.get("securityContext", {})
    if not security.get("runAsNonRoot") or security.get("runAsUser", 0) == 0:
        errors.append(f"{name}: the pod must set runAsNonRoot and a non-zero runAsUser")
    secrets = {v["secret"]["secretName"] for v in pod.get("volumes", []) if "secret" in v}
    if K8S_PRIVATE_KEYS in secrets and name != "remote-worker":
        errors.append(f"{name}: only the remote workers may mount the private keys ({K8S_PRIVATE_KEYS})")
    for container in pod["containers"]:
        errors += _check_container(name, container, pod, drain)
    return errors


def _check_container(name: str, container: dict[str, Any], pod: dict[str, Any], drain: float) -> list[str]:
    errors = []
    if container.get("securityContext", {}).get("allowPrivilegeEscalation", True):
        errors.append(f"{name}: allowPrivilegeEscalation must be false")
    gpus = container.get("resources", {}).get("limits", {}).get("nvidia.com/gpu")
    if gpus not in (None, 1):
        errors.append(f"{name}: a local worker takes exactly one GPU (nvidia.com/gpu: 1), not {gpus}")
    if container["command"][:1] == ["bodhi"] and container["command"][1:2] != ["migrate"]:
        pre_stop = container.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", [])
        pause = float(pre_stop[1]) if pre_stop[:1] == ["sleep"] else 0.0
        needed = pause + drain + BACKSTOP_S + DRAIN_MARGIN_S
        if pod.get("terminationGracePeriodSeconds", 30) < needed:
            errors.append(f"{name}: terminationGracePeriodSeconds must be at least {needed:g} (drain + margin)")
    if container["command"][1:2] == ["api"]:
        errors += _check_api_probes(name, container)
    return errors


def _check_api_probes(name: str, container: dict[str, Any]) -> list[str]:
    routes = {getattr(route, "path", None) for route in health_router.routes}
    expected = {"readinessProbe": "/ready", "livenessProbe": "/ping"}
    errors = []
    for probe, path in expected.items():
        actual = container.get(probe, {}).get("httpGet", {}).get("path")
        if actual != path or path not in routes:
            errors.append(f"{name}: {probe} must GET {path} (a route of bodhi_api.routes.health), not {actual}")
    return errors


def _check_scaled_target(scaler: Resource, target: str, by_kind_name: dict[tuple[str, str], Resource]) -> list[str]:
    deployment = by_kind_name.get(("Deployment", target))
    who = "{}/{}".format(scaler["kind"], scaler["metadata"]["name"])
    if deployment is None:
        return [f"{who}: scales Deployment {target}, which is not rendered"]
    if "replicas" in deployment["spec"]:
        return [f"{who}: Deployment {target} sets replicas, which every `kubectl apply` would reset"]
    return []


def _check_keda_queues(scaled: Resource, by_kind_name: dict[tuple[str, str], Resource], config: dict[str, str]) -> list:
    deployment = by_kind_name.get(("Deployment", scaled["spec"]["scaleTargetRef"]["name"]))
    if deployment is None:
        return []
    env = {e["name"]: e.get("value") for c in deployment["spec"]["template"]["spec"]["containers"] for e in c["env"]}
    aliases = [a.strip() for a in (env.get("BODHI_LOCAL_MODELS") or "").split(",") if a.strip()]
    keys = RedisKeys(config.get("BODHI_REDIS_PREFIX", "bodhi"))
    queues = {t["metadata"]["listName"] for t in scaled["spec"]["triggers"] if t["type"] == "redis"}
    errors = []
    if not aliases:
        errors.append("ScaledObject: its Deployment must name its aliases (BODHI_LOCAL_MODELS) for their queues")
    if queues != {keys.local_queue(alias) for alias in aliases}:
        wanted = sorted(keys.local_queue(alias) for alias in aliases)
        errors.append(f"ScaledObject: triggers watch {sorted(queues)}, the Deployment serves {wanted}")
    if scaled["spec"].get("minReplicaCount", 0) < 1:
        errors.append("ScaledObject: minReplicaCount must be at least 1 (no worker: nothing is ever enqueued)")
    return errors


def check_kubernetes() -> list[str]:
    errors: list[str] = []
    overlays = sorted(p for p in (K8S / "overlays").iterdir() if (p / "kustomization.yaml").exists())
    for overlay in overlays:
        name = overlay.relative_to(ROOT)
        resources = render(overlay)
        theirs = kubectl_rendering(overlay)
        if theirs is not None and {_key(r): r for r in theirs} != {_key(r): r for r in resources}:
            errors.append(f"{name}: `kubectl kustomize` renders something else than check-deploy.py's renderer")
        found = [f"{name}: {e}" for r in resources for e in validate_resource(r)]
        found += [f"{name}: {e}" for e in check_semantics(resources)]
        by = "kubectl kustomize and check-deploy.py" if theirs is not None else "check-deploy.py (no kubectl)"
        print(f"  {name}: {len(resources)} resources rendered by {by}, Kubernetes {KUBERNETES_VERSION}")
        errors += found
    return errors


# --- yamllint, compose, nginx, Dockerfile --------------------------------------------------------------------------


def check_yamllint() -> list[str]:
    command = [sys.executable, "-m", "yamllint", "--strict", "-c", ".yamllint", "deploy", "docker-compose.yml"]
    run = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    return [] if run.returncode == 0 else [f"yamllint:\n{run.stdout}{run.stderr}"]


def compose_command() -> list[str] | None:
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    if shutil.which("docker") is None:
        return None
    plugin = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
    return ["docker", "compose"] if plugin.returncode == 0 else None


def check_compose() -> list[str]:
    compose = compose_command()
    if compose is None:
        return ["docker-compose (or the docker compose plugin) is not installed: apt-get install docker-compose"]
    base = [*compose, "--env-file", ".env.example", "--profile", "gpu", "--profile", "gpu2"]
    quiet = subprocess.run([*base, "config", "-q"], cwd=ROOT, capture_output=True, text=True, check=False)
    if quiet.returncode != 0:
        return [f"{' '.join(compose)} config: {quiet.stdout}{quiet.stderr}"]
    rendered = subprocess.run([*base, "config"], cwd=ROOT, capture_output=True, text=True, check=True)
    services: dict[str, Any] = yaml.safe_load(rendered.stdout)["services"]
    print(f"  {' '.join(compose)} config: {len(services)} services")
    errors = []
    targets = set(re.findall(r"^FROM \S+ AS (\S+)$", (ROOT / "deploy" / "Dockerfile").read_text(), re.MULTILINE))
    for name, service in services.items():
        volumes = service.get("volumes", [])
        sources = {v["source"] if isinstance(v, dict) else v.split(":")[0] for v in volumes}
        if COMPOSE_PRIVATE_KEYS in sources and name not in ("remote-worker", "keys"):
            errors.append(f"docker-compose.yml: {name} mounts the private keys volume `{COMPOSE_PRIVATE_KEYS}`")
        target = service.get("build", {}).get("target")
        if target is not None and target not in targets:
            errors.append(f"docker-compose.yml: {name} builds target {target}, which deploy/Dockerfile lacks")
    return errors


def check_nginx() -> list[str]:
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if nginx is None:
        return ["nginx is not installed (apt-get install nginx-light): deploy/nginx/bodhi.conf is not checked"]
    with tempfile.TemporaryDirectory() as prefix:
        conf = Path(prefix) / "nginx.conf"
        conf.write_text(f"events {{}}\nhttp {{\n    include {ROOT / 'deploy' / 'nginx' / 'bodhi.conf'};\n}}\n")
        globals_ = f"pid {prefix}/nginx.pid; error_log stderr;"
        command = [nginx, "-t", "-q", "-p", prefix, "-c", str(conf), "-g", globals_]
        run = subprocess.run(command, capture_output=True, text=True, check=False)
    print(f"  nginx -t: {'ok' if run.returncode == 0 else 'failed'}")
    return [] if run.returncode == 0 else [f"nginx -t on deploy/nginx/bodhi.conf: {run.stderr}"]


def check_dockerfile() -> list[str]:
    text = (ROOT / "deploy" / "Dockerfile").read_text()
    args = dict(re.findall(r"^ARG (\w+)=(\S+)$", text, re.MULTILINE))
    errors = []
    for image in re.findall(r"^FROM (\S+)", text, re.MULTILINE) + re.findall(r"--from=(\S+/\S+)", text):
        resolved = re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), m.group(0)), image)
        if "/" in resolved or "." in resolved or ":" in resolved:  # an image, not a stage name
            tag = resolved.rpartition(":")[2]
            if ":" not in resolved or tag == "latest" or not re.search(r"\d+\.\d+", tag):
                errors.append(f"deploy/Dockerfile: {image} is not pinned to a version")
    ignore = (ROOT / "deploy" / "Dockerfile.dockerignore").read_text().splitlines()
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    for source in re.findall(r"^COPY (?:--chmod=\S+ )?(?!--from)(\S+(?: \S+)*) \S+$", text, re.MULTILINE):
        for path in source.split():
            if not (ROOT / path).exists():
                errors.append(f"deploy/Dockerfile copies {path}, which does not exist")
            elif not any(path == a or path.startswith(f"{a}/") for a in allowed):
                errors.append(f"deploy/Dockerfile copies {path}, which Dockerfile.dockerignore leaves out")
    return errors


def main() -> int:
    os.chdir(ROOT)
    checks = {
        "kubernetes": check_kubernetes,
        "yamllint": check_yamllint,
        "compose": check_compose,
        "nginx": check_nginx,
        "dockerfile": check_dockerfile,
    }
    failures = []
    for name, check in checks.items():
        print(f"check-deploy: {name}")
        try:
            failures += check()
        except (CheckFailed, OSError, KeyError, IndexError, subprocess.CalledProcessError, yaml.YAMLError) as exc:
            failures.append(f"{name}: {exc}")
    for failure in failures:
        print(f"FAIL {failure}", file=sys.stderr)
    print("check-deploy: " + ("ok" if not failures else f"{len(failures)} failure(s)"))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

"""The Helm chart: lint, render every ci/*-values.yaml, validate every object, check behaviour.

Built-in kinds are validated with kubernetes-validate (strict) against the oldest Kubernetes the
chart supports and the newest the validator knows. prometheus-operator's kinds have no schema
there: MONITORING_SCHEMAS below holds the fields of their CRDs that this chart can produce, so a
misspelt or misplaced field fails just the same.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from helpers import make_certificate

from probe_exporter import __version__
from probe_exporter.binrpc.address import parse_address
from probe_exporter.config import parse_config

pytestmark = pytest.mark.real  # helm renders and lints the chart

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "helm" / "kamailio-probe-exporter"
CI_VALUES = sorted((CHART / "ci").glob("*-values.yaml"))
RELEASE = "r"
NAMESPACE = "monitoring"
FULLNAME = "r-kamailio-probe-exporter"
SERVICE_ADDRESS = f"{FULLNAME}.{NAMESPACE}.svc:9494"
KUBERNETES_VERSIONS = ("1.25", "1.37")
HELM_TIMEOUT = 30
# Every install names the image (no public registry has it): what a user's values file sets.
IMAGE_VALUES = str(ROOT / "tests" / "fixtures" / "helm-image-values.yaml")


def _helm_binary() -> str:
    found = ROOT / ".tools" / "bin" / "helm"
    path = str(found) if found.is_file() else shutil.which("helm")
    if path is None:
        message = "helm not found: scripts/fetch-tools.sh installs it into .tools/bin"
        if os.environ.get("CI", "").lower() in ("true", "1"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [_helm_binary(), *args],
        capture_output=True,
        text=True,
        timeout=HELM_TIMEOUT,
        check=False,
    )
    if check and result.returncode != 0:
        pytest.fail(f"helm {' '.join(args)} failed:\n{result.stderr}")
    return result


def render(*args: str) -> list[dict[str, Any]]:
    """`helm template` of the chart with the given extra arguments, as a list of objects."""
    out = helm(
        "template", RELEASE, str(CHART), "--namespace", NAMESPACE, "-f", IMAGE_VALUES, *args
    ).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


@cache
def render_ci(values_file: Path) -> tuple[dict[str, Any], ...]:
    return tuple(render("-f", str(values_file)))


def render_values(tmp_path: Path, values: dict[str, Any], *args: str) -> list[dict[str, Any]]:
    path = tmp_path / f"values-{len(list(tmp_path.iterdir()))}.yaml"
    path.write_text(yaml.safe_dump(values))
    return render("-f", str(path), *args)


def only(docs: list[dict[str, Any]] | tuple[dict[str, Any], ...], kind: str) -> dict[str, Any]:
    found = [doc for doc in docs if doc["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, got {len(found)}"
    return found[0]


def kinds(docs: list[dict[str, Any]] | tuple[dict[str, Any], ...]) -> set[str]:
    return {doc["kind"] for doc in docs}


# --- prometheus-operator CRDs (monitoring.coreos.com): the fields this chart can render --------

_STR: dict[str, Any] = {"type": "string"}
_STRMAP: dict[str, Any] = {"type": "object", "additionalProperties": {"type": "string"}}
_DURATION: dict[str, Any] = {
    "type": "string",
    "pattern": r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?"
    r"(([0-9]+)ms)?)$",
}


def _object(properties: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": list(required),
        "additionalProperties": False,
    }


_SECRET_KEY = _object({"name": _STR, "key": _STR, "optional": {"type": "boolean"}}, ("key",))
_SECRET_OR_CONFIGMAP = _object({"secret": _SECRET_KEY, "configMap": _SECRET_KEY})
_SAFE_TLS = _object(
    {
        "ca": _SECRET_OR_CONFIGMAP,
        "cert": _SECRET_OR_CONFIGMAP,
        "keySecret": _SECRET_KEY,
        "serverName": _STR,
        "insecureSkipVerify": {"type": "boolean"},
        "minVersion": _STR,
        "maxVersion": _STR,
    }
)
_BASIC_AUTH = _object({"username": _SECRET_KEY, "password": _SECRET_KEY})
_RELABEL_ACTIONS = [
    *["replace", "keep", "drop", "hashmod", "labelmap", "labeldrop", "labelkeep"],
    *["lowercase", "uppercase", "keepequal", "dropequal"],
    *["Replace", "Keep", "Drop", "HashMod", "LabelMap", "LabelDrop", "LabelKeep"],
    *["Lowercase", "Uppercase", "KeepEqual", "DropEqual"],
]
_RELABEL = _object(
    {
        "sourceLabels": {"type": "array", "items": {"type": "string", "pattern": "^[a-zA-Z_]"}},
        "separator": _STR,
        "targetLabel": _STR,
        "regex": _STR,
        "modulus": {"type": "integer"},
        "replacement": _STR,
        "action": {"enum": _RELABEL_ACTIONS},
    }
)
_RELABELS: dict[str, Any] = {"type": "array", "items": _RELABEL}
_METADATA = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$"},
        "namespace": _STR,
        "labels": _STRMAP,
        "annotations": _STRMAP,
    },
    "required": ["name"],
}
_LABEL_SELECTOR = _object(
    {"matchLabels": _STRMAP, "matchExpressions": {"type": "array", "items": {"type": "object"}}}
)


def _crd(api_version: str, kind: str, spec: dict[str, Any]) -> dict[str, Any]:
    return _object(
        {
            "apiVersion": {"const": api_version},
            "kind": {"const": kind},
            "metadata": _METADATA,
            "spec": spec,
        },
        ("apiVersion", "kind", "metadata", "spec"),
    )


MONITORING_SCHEMAS: dict[str, dict[str, Any]] = {
    "ServiceMonitor": _crd(
        "monitoring.coreos.com/v1",
        "ServiceMonitor",
        _object(
            {
                "selector": _LABEL_SELECTOR,
                "namespaceSelector": _object(
                    {"any": {"type": "boolean"}, "matchNames": {"type": "array", "items": _STR}}
                ),
                "jobLabel": _STR,
                "endpoints": {
                    "type": "array",
                    "minItems": 1,
                    "items": _object(
                        {
                            "port": _STR,
                            "path": _STR,
                            "scheme": {"enum": ["http", "https", "HTTP", "HTTPS"]},
                            "interval": _DURATION,
                            "scrapeTimeout": _DURATION,
                            "tlsConfig": _SAFE_TLS,
                            "basicAuth": _BASIC_AUTH,
                            "relabelings": _RELABELS,
                            "metricRelabelings": _RELABELS,
                        }
                    ),
                },
            },
            ("selector", "endpoints"),
        ),
    ),
    "Probe": _crd(
        "monitoring.coreos.com/v1",
        "Probe",
        _object(
            {
                "jobName": _STR,
                "prober": _object(
                    {
                        "url": {"type": "string", "pattern": r"^[^/:]+:[0-9]+$"},
                        "scheme": {"enum": ["http", "https"]},
                        "path": _STR,
                    },
                    ("url",),
                ),
                "module": _STR,
                "interval": _DURATION,
                "scrapeTimeout": _DURATION,
                "tlsConfig": _SAFE_TLS,
                "basicAuth": _BASIC_AUTH,
                "targets": _object(
                    {
                        "staticConfig": _object(
                            {
                                "static": {"type": "array", "items": _STR, "minItems": 1},
                                "labels": _STRMAP,
                                "relabelingConfigs": _RELABELS,
                            }
                        )
                    }
                ),
                "metricRelabelings": _RELABELS,
            },
            ("prober", "targets"),
        ),
    ),
    "ScrapeConfig": _crd(
        "monitoring.coreos.com/v1alpha1",
        "ScrapeConfig",
        _object(
            {
                "jobName": _STR,
                "metricsPath": _STR,
                "scheme": {"enum": ["HTTP", "HTTPS"]},
                "scrapeInterval": _DURATION,
                "scrapeTimeout": _DURATION,
                "tlsConfig": _SAFE_TLS,
                "basicAuth": _BASIC_AUTH,
                "httpSDConfigs": {
                    "type": "array",
                    "items": _object(
                        {
                            "url": {"type": "string", "pattern": "^https?://"},
                            "refreshInterval": _DURATION,
                            "tlsConfig": _SAFE_TLS,
                            "basicAuth": _BASIC_AUTH,
                        },
                        ("url",),
                    ),
                },
                "relabelings": _RELABELS,
                "metricRelabelings": _RELABELS,
            }
        ),
    ),
    "PrometheusRule": _crd(
        "monitoring.coreos.com/v1",
        "PrometheusRule",
        _object(
            {
                "groups": {
                    "type": "array",
                    "items": _object(
                        {
                            "name": _STR,
                            "interval": _DURATION,
                            "rules": {
                                "type": "array",
                                "items": _object(
                                    {
                                        "alert": _STR,
                                        "record": _STR,
                                        "expr": _STR,
                                        "for": _DURATION,
                                        "keep_firing_for": _DURATION,
                                        "labels": _STRMAP,
                                        "annotations": _STRMAP,
                                    },
                                    ("expr",),
                                ),
                            },
                        },
                        ("name", "rules"),
                    ),
                }
            },
            ("groups",),
        ),
    ),
}


def validate_object(doc: dict[str, Any]) -> None:
    schema = MONITORING_SCHEMAS.get(doc["kind"])
    if doc["apiVersion"].startswith("monitoring.coreos.com/"):
        assert schema is not None, f"no schema for {doc['kind']}"
        jsonschema.validate(doc, schema)
        return
    for version in KUBERNETES_VERSIONS:
        kubernetes_validate.validate(doc, version, strict=True)


# --- Prometheus relabeling, enough of it to follow what the operator generates -----------------


def relabel(labels: dict[str, str], rules: list[dict[str, Any]]) -> dict[str, str]:
    """Applies prometheus-operator style relabel rules (replace, labeldrop, hashmod)."""
    labels = dict(labels)
    for rule in rules:
        action = rule.get("action", "replace").lower()
        regex = re.compile(rule.get("regex", "(.*)"))
        source = rule.get("separator", ";").join(
            labels.get(name, "") for name in rule.get("sourceLabels", [])
        )
        if action == "replace":
            match = regex.fullmatch(source)
            if match is None:
                continue
            # Prometheus writes $1 or ${1}; Python's expand wants \g<1>.
            value = match.expand(
                re.sub(r"\$\{?(\d+)\}?", r"\\g<\1>", rule.get("replacement", "$1"))
            )
            if value:
                labels[rule["targetLabel"]] = value
            else:
                labels.pop(rule["targetLabel"], None)
        elif action == "labeldrop":
            labels = {k: v for k, v in labels.items() if not regex.fullmatch(k)}
        else:
            raise AssertionError(f"relabel action {action} is not simulated")
    return labels


def probe_targets(probe: dict[str, Any]) -> dict[str, dict[str, str]]:
    """The scrape targets the operator makes of a Probe: job, then its three prober rules
    (prometheus-operator pkg/prometheus generateProbeConfig), then the Probe's own rules."""
    spec = probe["spec"]
    static = spec["targets"]["staticConfig"]
    operator_rules = [
        {"targetLabel": "job", "replacement": spec["jobName"]},
        {"sourceLabels": ["__address__"], "targetLabel": "__param_target"},
        {"sourceLabels": ["__param_target"], "targetLabel": "instance"},
        {"targetLabel": "__address__", "replacement": spec["prober"]["url"]},
    ]
    rules = operator_rules + static.get("relabelingConfigs", [])
    return {
        target: relabel({"__address__": target, **static.get("labels", {})}, rules)
        for target in static["static"]
    }


# --- tests -----------------------------------------------------------------------------------


def test_ci_values_cover_every_feature() -> None:
    rendered = set().union(*(kinds(render_ci(path)) for path in CI_VALUES))
    assert rendered == {
        "ConfigMap",
        "Deployment",
        "HorizontalPodAutoscaler",
        "NetworkPolicy",
        "PodDisruptionBudget",
        "Probe",
        "PrometheusRule",
        "ScrapeConfig",
        "Secret",
        "Service",
        "ServiceAccount",
        "ServiceMonitor",
    }


@pytest.mark.parametrize(
    "values_file", [None, *CI_VALUES], ids=lambda p: p.name if p else "defaults"
)
def test_helm_lint_strict(values_file: Path | None) -> None:
    args = ["-f", str(values_file) if values_file else IMAGE_VALUES]
    result = helm("lint", "--strict", str(CHART), *args, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("values_file", CI_VALUES, ids=lambda p: p.name)
def test_rendered_objects_validate(values_file: Path) -> None:
    docs = render_ci(values_file)
    assert docs
    for doc in docs:
        try:
            validate_object(doc)
        except (jsonschema.ValidationError, kubernetes_validate.ValidationError) as error:
            pytest.fail(
                f"{doc['kind']}/{doc['metadata']['name']}: {error.message} at {list(error.path)}"
            )
        assert doc["metadata"]["namespace"] == NAMESPACE


@pytest.mark.parametrize("values_file", CI_VALUES, ids=lambda p: p.name)
def test_notes_render(values_file: Path) -> None:
    out = helm(
        "install",
        RELEASE,
        str(CHART),
        "--dry-run=client",
        "--namespace",
        NAMESPACE,
        "-f",
        str(values_file),
    ).stdout
    notes = out.split("NOTES:", 1)[1]
    assert "port-forward svc/" in notes
    assert "/probe?target=" in notes


def test_validation_catches_a_bad_object() -> None:
    deployment = json.loads(json.dumps(only(render_ci(CI_VALUES[0]), "Deployment")))
    deployment["spec"]["template"]["spec"]["containers"][0]["securityContext"]["readOnlyRoot"] = (
        True
    )
    with pytest.raises(kubernetes_validate.ValidationError):
        validate_object(deployment)
    probe = json.loads(
        json.dumps(only(render_ci(CHART / "ci" / "prometheus-operator-values.yaml"), "Probe"))
    )
    probe["spec"]["targets"]["staticConfig"]["relabelingConfigs"][0]["target_label"] = "x"
    with pytest.raises(jsonschema.ValidationError):
        validate_object(probe)


def test_secure_defaults() -> None:
    docs = render()
    pod = only(docs, "Deployment")["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert only(docs, "ServiceAccount")["automountServiceAccountToken"] is False
    assert pod["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 10001,
        "runAsGroup": 10001,
        "fsGroup": 10001,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    (container,) = pod["containers"]
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "privileged": False,
        "capabilities": {"drop": ["ALL"]},
    }
    assert container["livenessProbe"]["httpGet"] == {
        "path": "/-/healthy",
        "port": "http",
        "scheme": "HTTP",
    }
    assert container["readinessProbe"]["httpGet"] == {
        "path": "/-/ready",
        "port": "http",
        "scheme": "HTTP",
    }
    assert container["startupProbe"]["httpGet"]["path"] == "/-/healthy"
    assert container["ports"] == [{"name": "http", "containerPort": 9494, "protocol": "TCP"}]
    # The only writable places: the in-memory /tmp; the config directory is read-only.
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert mounts["/etc/kamailio-probe-exporter"]["readOnly"] is True
    assert set(mounts) == {"/etc/kamailio-probe-exporter", "/tmp"}
    assert "--config.file=/etc/kamailio-probe-exporter/targets.toml" in container["args"]
    assert "--web.listen-address=:9494" in container["args"]


def test_user_matches_the_image() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    (user,) = re.findall(r"^USER (\d+):(\d+)$", dockerfile, re.MULTILINE)
    pod = only(render(), "Deployment")["spec"]["template"]["spec"]
    assert (
        str(pod["securityContext"]["runAsUser"]),
        str(pod["securityContext"]["runAsGroup"]),
    ) == user


def _config_checksum(docs: list[dict[str, Any]]) -> str:
    annotations = only(docs, "Deployment")["spec"]["template"]["metadata"]["annotations"]
    return str(annotations["checksum/config"])


def test_config_checksum_follows_the_targets(tmp_path: Path) -> None:
    one = {"targets": {"targets": [{"name": "sbc-1", "address": "tcp:10.0.0.5:2046"}]}}
    two = {"targets": {"targets": [{"name": "sbc-1", "address": "tcp:10.0.0.6:2046"}]}}
    first = _config_checksum(render_values(tmp_path, one))
    assert first == _config_checksum(render_values(tmp_path, one))
    assert first != _config_checksum(render_values(tmp_path, two))
    # Values that do not reach targets.toml do not roll the pods.
    assert first == _config_checksum(render_values(tmp_path, {**one, "replicas": 3}))


def test_web_config_checksum_follows_the_web_config(tmp_path: Path) -> None:
    def checksum(password_hash: str) -> str:
        docs = render_values(
            tmp_path,
            {"webConfig": {"enabled": True, "config": {"basic_auth_users": {"p": password_hash}}}},
        )
        return str(
            only(docs, "Deployment")["spec"]["template"]["metadata"]["annotations"][
                "checksum/web-config"
            ]
        )

    assert checksum("$2y$10$a") != checksum("$2y$10$b")


def _targets_toml_text(docs: list[dict[str, Any]]) -> str:
    configmap = next(
        d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == FULLNAME
    )
    return str(configmap["data"]["targets.toml"])


def _targets_toml(docs: list[dict[str, Any]]) -> dict[str, Any]:
    return tomllib.loads(_targets_toml_text(docs))


FLEET_VALUES: dict[str, Any] = {
    "targets": {
        "pool": {"idle_ttl": 120.5, "max_connections": 512, "per_target": 2},
        "modules": {
            "default": {"collectors": ["all"], "timeout": 5.0},
            "light": {"collectors": ["stats", "pkg"], "timeout": 2.5, "dialog_profiles": ["calls"]},
        },
        "targets": [
            {
                "name": "sbc-fra-1",
                "address": "tcp:[2001:db8::5]:2046",
                "module": "light",
                "timeout": 3,
                "labels": {"site": "fra", "note": 'quote " and \\ backslash, üñí'},
                "xhttp_prom_url": "http://user:secret@10.0.0.5:8080/metrics",
            },
            {"name": "local", "address": "unix:/run/kamailio/kamailio_ctl"},
        ],
        "allow": [{"address": "tcp:10.20.0.0/16:2046", "module": "default"}],
    }
}


def test_targets_toml_renders_the_values(tmp_path: Path) -> None:
    parsed = _targets_toml(render_values(tmp_path, FLEET_VALUES))
    assert parsed == FLEET_VALUES["targets"]
    # Helm reads every number as a float: integral ones must come out as TOML integers.
    assert isinstance(parsed["pool"]["max_connections"], int)
    assert isinstance(parsed["targets"][0]["timeout"], int)
    assert isinstance(parsed["pool"]["idle_ttl"], float)


def test_targets_toml_takes_set_flags() -> None:
    # --set gives integers and strings rather than YAML's floats.
    docs = render(
        "--set",
        "targets.pool.max_connections=64",
        "--set",
        "targets.targets[0].name=a",
        "--set",
        "targets.targets[0].address=tcp:h:1",
    )
    assert _targets_toml(docs)["pool"] == {"max_connections": 64}
    assert _targets_toml(docs)["targets"] == [{"name": "a", "address": "tcp:h:1"}]


def test_chart_app_version_is_the_package_version() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["appVersion"] == __version__


@pytest.mark.parametrize("command", ["template", "install"])
def test_without_an_image_the_chart_says_to_build_and_push_it(command: str) -> None:
    args = ["--dry-run=client"] if command == "install" else []
    result = helm(command, RELEASE, str(CHART), *args, check=False)
    assert result.returncode != 0
    assert "image.repository is not set" in result.stderr
    assert f"docker build --build-arg VERSION={__version__}" in result.stderr
    assert f"docker push REGISTRY/kamailio-probe-exporter:{__version__}" in result.stderr


def test_every_ci_values_file_names_the_image() -> None:
    """chart-testing installs each ci/ file alone: each must name an image."""
    for path in CI_VALUES:
        assert yaml.safe_load(path.read_text())["image"]["repository"], path.name


def test_targets_toml_default_is_valid_toml() -> None:
    assert _targets_toml(render()) == {
        "modules": {"default": {"collectors": ["all"], "timeout": 5}},
        "pool": {},
    }


def test_targets_toml_is_accepted_by_the_exporter(tmp_path: Path) -> None:
    parsed = parse_config(_targets_toml_text(render_values(tmp_path, FLEET_VALUES)), "targets.toml")
    assert set(parsed.targets) == {"sbc-fra-1", "local"}
    assert parsed.pool.max_connections == 512
    assert parsed.modules["light"].timeout == 2.5
    # The chart's default configuration starts the exporter too.
    assert set(parse_config(_targets_toml_text(render()), "targets.toml").modules) == {"default"}


def test_existing_configmap_replaces_the_rendered_one() -> None:
    docs = render_ci(CHART / "ci" / "existing-configmap-values.yaml")
    assert "ConfigMap" not in kinds(docs)
    template = only(docs, "Deployment")["spec"]["template"]
    assert "checksum/config" not in template["metadata"].get("annotations", {})
    (source,) = template["spec"]["volumes"][0]["projected"]["sources"]
    assert source == {
        "configMap": {
            "name": "kamailio-fleet",
            "items": [{"key": "fleet.toml", "path": "targets.toml"}],
        }
    }


def test_existing_secret_replaces_the_rendered_configmap() -> None:
    docs = render_ci(CHART / "ci" / "existing-secret-values.yaml")
    assert "ConfigMap" not in kinds(docs)
    (source,) = only(docs, "Deployment")["spec"]["template"]["spec"]["volumes"][0]["projected"][
        "sources"
    ]
    assert source == {
        "secret": {
            "name": "kamailio-fleet",
            "items": [{"key": "targets.toml", "path": "targets.toml"}],
        }
    }


def test_web_config_serves_https_everywhere() -> None:
    docs = render_ci(CHART / "ci" / "web-config-values.yaml")
    container = only(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert "--web.config.file=/etc/kamailio-probe-exporter/web-config.yml" in container["args"]
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert container[probe]["httpGet"]["scheme"] == "HTTPS"
    secret = only(docs, "Secret")
    web_config = yaml.safe_load(secret["stringData"]["web-config.yml"])
    assert web_config["tls_server_config"] == {
        "cert_file": "/etc/kamailio-probe-exporter/tls/tls.crt",
        "key_file": "/etc/kamailio-probe-exporter/tls/tls.key",
    }
    assert set(web_config["basic_auth_users"]) == {"prometheus"}
    projected = only(docs, "Deployment")["spec"]["template"]["spec"]["volumes"][0]["projected"][
        "sources"
    ]
    paths = {
        item["path"] for source in projected for kind in source.values() for item in kind["items"]
    }
    assert paths == {"targets.toml", "web-config.yml", "tls/tls.crt", "tls/tls.key"}
    probe = only(docs, "Probe")["spec"]
    assert probe["prober"]["scheme"] == "https"
    assert probe["basicAuth"]["password"]["name"] == "kamailio-probe-exporter-auth"
    endpoint = only(docs, "ServiceMonitor")["spec"]["endpoints"][0]
    assert endpoint["scheme"] == "https"
    assert endpoint["tlsConfig"]["serverName"] == "kamailio-probe-exporter.monitoring.svc"


def test_probe_lists_the_fleet_with_module_and_labels() -> None:
    docs = render_ci(CHART / "ci" / "prometheus-operator-values.yaml")
    probe = only(docs, "Probe")
    assert probe["spec"]["prober"] == {"url": SERVICE_ADDRESS, "scheme": "http", "path": "/probe"}
    assert "module" not in probe["spec"]
    assert probe_targets(probe) == {
        "sbc-fra-1": {
            "job": "kamailio",
            "__param_target": "sbc-fra-1",
            "instance": "sbc-fra-1",
            "__address__": SERVICE_ADDRESS,
            "fleet": "production",
            "site": "fra",
        },
        "sbc-ams-1": {
            "job": "kamailio",
            "__param_target": "sbc-ams-1",
            "instance": "sbc-ams-1",
            "__address__": SERVICE_ADDRESS,
            "fleet": "production",
            "site": "ams",
            "role": "edge",
            "__param_module": "light",
        },
        "tcp:10.20.0.7:2046": {
            "job": "kamailio",
            "__param_target": "tcp:10.20.0.7:2046",
            "instance": "tcp:10.20.0.7:2046",
            "__address__": SERVICE_ADDRESS,
            "fleet": "production",
            "site": "lab",
            "__param_module": "light",
        },
    }


def test_probe_rules_match_whole_target_names(tmp_path: Path) -> None:
    # "sbc-1" must not pick up the module of "sbc-10", nor a dot match any character.
    docs = render_values(
        tmp_path,
        {
            "targets": {
                "targets": [
                    {"name": "sbc-1", "address": "tcp:10.0.0.1:2046"},
                    {"name": "sbc-10", "address": "tcp:10.0.0.2:2046", "module": "default"},
                ]
            },
            "probe": {
                "enabled": True,
                "additionalTargets": [
                    {"target": "tcp:10x0.0.3:2046"},
                    {"target": "tcp:10.0.0.3:2046", "module": "default"},
                ],
            },
        },
    )
    targets = probe_targets(only(docs, "Probe"))
    assert "__param_module" not in targets["sbc-1"]
    assert targets["sbc-10"]["__param_module"] == "default"
    assert "__param_module" not in targets["tcp:10x0.0.3:2046"]


def test_probe_needs_targets() -> None:
    result = helm(
        "template",
        RELEASE,
        str(CHART),
        "-f",
        IMAGE_VALUES,
        "--set",
        "probe.enabled=true",
        check=False,
    )
    assert result.returncode != 0
    assert "probe.enabled needs targets" in result.stderr


def test_scrapeconfig_discovers_from_sd() -> None:
    scrape = only(render_ci(CHART / "ci" / "scrapeconfig-values.yaml"), "ScrapeConfig")["spec"]
    assert scrape["metricsPath"] == "/probe"
    assert scrape["httpSDConfigs"][0]["url"] == f"http://{SERVICE_ADDRESS}/sd"
    # One entry of /sd, as the exporter serves it, through the ScrapeConfig's rules.
    discovered = {
        "__address__": "sbc-fra-1",
        "__meta_kamailio_target_module": "light",
        "site": "fra",
    }
    labels = relabel(discovered, scrape["relabelings"])
    assert {k: v for k, v in labels.items() if not k.startswith("__meta_")} == {
        "__address__": SERVICE_ADDRESS,
        "__param_target": "sbc-fra-1",
        "instance": "sbc-fra-1",
        "__param_module": "light",
        "site": "fra",
        "fleet": "production",
    }
    without_module = relabel(
        {"__address__": "sbc-2", "__meta_kamailio_target_module": ""}, scrape["relabelings"]
    )
    assert "__param_module" not in without_module


def test_servicemonitor_scrapes_metrics_as_the_alerts_job() -> None:
    docs = render_ci(CHART / "ci" / "scrapeconfig-values.yaml")
    monitor = only(docs, "ServiceMonitor")["spec"]
    service = only(docs, "Service")
    assert monitor["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    (endpoint,) = monitor["endpoints"]
    assert (endpoint["port"], endpoint["path"]) == ("http", "/metrics")
    assert relabel({"job": FULLNAME}, endpoint["relabelings"])["job"] == "kamailio-probe-exporter"
    rules = yaml.safe_load((ROOT / "deploy" / "rules" / "kamailio-alerts.yml").read_text())
    exporter_down = next(
        rule
        for group in rules["groups"]
        for rule in group["rules"]
        if rule["alert"] == "KamailioExporterDown"
    )
    assert 'job="kamailio-probe-exporter"' in exporter_down["expr"]


def test_prometheusrule_carries_the_deploy_rules() -> None:
    docs = render_ci(CHART / "ci" / "prometheus-operator-values.yaml")
    groups = only(docs, "PrometheusRule")["spec"]["groups"]
    source = yaml.safe_load((ROOT / "deploy" / "rules" / "kamailio-alerts.yml").read_text())[
        "groups"
    ]
    expected = []
    for group in source:
        rules = [
            {**rule, "labels": {**rule["labels"], "team": "voip"}}
            for rule in group["rules"]
            if rule["alert"] != "KamailioTLSConnectionsNearLimit"
        ]
        expected.append({**group, "rules": rules})
    assert groups == expected


def test_dashboard_configmap_carries_the_deploy_dashboard() -> None:
    docs = render_ci(CHART / "ci" / "prometheus-operator-values.yaml")
    configmap = next(d for d in docs if d["metadata"]["name"] == f"{FULLNAME}-dashboard")
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert configmap["metadata"]["annotations"] == {"grafana_folder": "Kamailio"}
    source = (ROOT / "deploy" / "grafana" / "kamailio-fleet.json").read_text()
    assert configmap["data"]["kamailio-fleet.json"] == source


@pytest.mark.parametrize(
    ("deploy_file", "chart_file"),
    [
        ("deploy/rules/kamailio-alerts.yml", "files/kamailio-alerts.yml"),
        ("deploy/grafana/kamailio-fleet.json", "files/kamailio-fleet.json"),
    ],
)
def test_chart_files_are_copies_of_deploy(deploy_file: str, chart_file: str) -> None:
    assert (CHART / chart_file).read_bytes() == (ROOT / deploy_file).read_bytes(), (
        f"{chart_file} differs from {deploy_file}: run scripts/sync-chart-files.sh"
    )


def test_autoscaling_owns_the_replica_count() -> None:
    docs = render_ci(CHART / "ci" / "autoscaling-values.yaml")
    assert "replicas" not in only(docs, "Deployment")["spec"]
    hpa = only(docs, "HorizontalPodAutoscaler")["spec"]
    assert hpa["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": FULLNAME,
    }
    assert {m["resource"]["name"] for m in hpa["metrics"]} == {"cpu", "memory"}
    assert only(docs, "PodDisruptionBudget")["spec"]["minAvailable"] == 1


def test_ha_spreads_replicas() -> None:
    docs = render_ci(CHART / "ci" / "ha-values.yaml")
    deployment = only(docs, "Deployment")
    assert deployment["spec"]["replicas"] == 3
    (constraint,) = deployment["spec"]["template"]["spec"]["topologySpreadConstraints"]
    assert (
        constraint["labelSelector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
    )
    pdb = only(docs, "PodDisruptionBudget")["spec"]
    assert pdb == {"maxUnavailable": 1, "selector": deployment["spec"]["selector"]}


def test_network_policy_limits_ingress_and_egress() -> None:
    policy = only(render_ci(CHART / "ci" / "networkpolicy-values.yaml"), "NetworkPolicy")["spec"]
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    (ingress,) = policy["ingress"]
    assert ingress["ports"] == [{"port": "http", "protocol": "TCP"}]
    assert ingress["from"][0]["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": "monitoring"
    }
    dns, fleet = policy["egress"]
    assert {p["port"] for p in dns["ports"]} == {53}
    assert fleet["to"] == [{"ipBlock": {"cidr": "10.20.0.0/16"}}]


def test_extras_reach_the_pod() -> None:
    docs = render_ci(CHART / "ci" / "extras-values.yaml")
    assert "ServiceAccount" not in kinds(docs)
    pod = only(docs, "Deployment")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == (
        "registry.internal/voip/kamailio-probe-exporter@sha256:"
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
    )
    assert container["args"][-2:] == ["--probe.max-concurrent=512", "--history.limit=100"]
    assert "--log.format=json" in container["args"]
    assert container["env"] == [{"name": "KAMAILIO_EXPORTER_TIMEOUT_OFFSET", "value": "1.0"}]
    assert {m["name"] for m in container["volumeMounts"]} == {"config", "tmp", "kamailio-run"}
    assert pod["serviceAccountName"] == "monitoring"
    assert pod["tolerations"][0]["key"] == "dedicated"
    assert only(docs, "Service")["metadata"]["labels"]["team"] == "voip"


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--set", "replicas=two", "at '/replicas'"),
        ("--set", "surprise=1", "additional properties 'surprise' not allowed"),
        ("--set", "targets.bogus=1", "additional properties 'bogus' not allowed"),
        (
            "--set-json",
            'targets.pool={"max_connections":1.5}',
            "at '/targets/pool/max_connections'",
        ),
        ("--set-json", 'targets.targets=[{"name":"a"}]', "missing property 'address'"),
        (
            "--set-json",
            'targets.targets=[{"name":"a","address":"tcp:h:1","lables":{}}]',
            "'lables' not allowed",
        ),
        ("--set", "log.level=verbose", "at '/log/level'"),
        ("--set", "log.prober=DEBUG", "at '/log/prober'"),
        ("--set-json", "config.autoReloadInterval=-1", "at '/config/autoReloadInterval'"),
        ("--set", "config.autoReloadInterval=30s", "at '/config/autoReloadInterval'"),
        ("--set", "probe.interval=30 seconds", "at '/probe/interval'"),
        ("--set", "service.port=70000", "at '/service/port'"),
        ("--set", "image.digest=latest", "at '/image/digest'"),
        ("--set", "podDisruptionBudget.enabled=yes", "at '/podDisruptionBudget/enabled'"),
        ("--set-json", "extraArgs=[1]", "at '/extraArgs/0'"),
    ],
)
def test_schema_rejects_bad_values(flag: str, value: str, message: str) -> None:
    result = helm("template", RELEASE, str(CHART), "-f", IMAGE_VALUES, flag, value, check=False)
    assert result.returncode != 0
    assert "values don't meet the specifications of the schema" in result.stderr
    assert message in result.stderr, result.stderr


def _values_schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads((CHART / "values.schema.json").read_text())
    return schema


# Values documented as one object rather than key by key.
OPAQUE_VALUES = {
    "strategy",
    "podSecurityContext",
    "securityContext",
    "livenessProbe",
    "readinessProbe",
    "startupProbe",
    "targets.modules",
    "dashboard.labels",
    "resources",
}


def _leaf_paths(node: Any, prefix: str = "") -> Iterator[str]:
    if isinstance(node, dict) and node and prefix not in OPAQUE_VALUES:
        for key, value in node.items():
            yield from _leaf_paths(value, f"{prefix}.{key}" if prefix else key)
    else:
        yield prefix


def test_schema_and_readme_cover_every_value() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert set(_values_schema()["properties"]) == set(values) | {"global"}
    readme = (CHART / "README.md").read_text()
    documented = set(re.findall(r"^\| `([^`]+)` \|", readme, re.MULTILINE))
    assert set(_leaf_paths(values)) <= documented
    assert documented <= set(_leaf_paths(values)), "README documents values that do not exist"


def test_values_yaml_passes_its_schema() -> None:
    jsonschema.validate(yaml.safe_load((CHART / "values.yaml").read_text()), _values_schema())


def test_rendering_is_deterministic() -> None:
    path = str(CHART / "ci" / "prometheus-operator-values.yaml")
    first = helm("template", RELEASE, str(CHART), "-f", path).stdout
    assert helm("template", RELEASE, str(CHART), "-f", path).stdout == first


@pytest.mark.parametrize(
    "values_file",
    ["default-values.yaml", "extras-values.yaml", "web-config-values.yaml"],
)
def test_rendered_args_are_accepted_by_the_exporter(values_file: str, tmp_path: Path) -> None:
    """The container's arguments, with the files the pod would mount, pass --config.check."""
    docs = render_ci(CHART / "ci" / values_file)
    container = only(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    (tmp_path / "targets.toml").write_text(
        next(d for d in docs if d["kind"] == "ConfigMap")["data"]["targets.toml"]
    )
    for secret in (d for d in docs if d["kind"] == "Secret"):
        for name, content in secret["stringData"].items():
            (tmp_path / name).write_text(
                content.replace("/etc/kamailio-probe-exporter", str(tmp_path))
            )
    if values_file == "web-config-values.yaml":
        # tls.crt and tls.key, as the kubernetes.io/tls Secret of the web-config values holds
        (tmp_path / "tls").mkdir()
        cert, key = make_certificate(tmp_path / "tls")
        cert.rename(tmp_path / "tls" / "tls.crt")
        key.rename(tmp_path / "tls" / "tls.key")
    _passes_config_check(container["args"], tmp_path)


def _passes_config_check(args: list[str], config_dir: Path) -> None:
    """The container's arguments, the pod's files read from `config_dir`, pass --config.check."""
    args = [arg.replace("/etc/kamailio-probe-exporter", str(config_dir)) for arg in args]
    result = subprocess.run(
        [sys.executable, "-m", "probe_exporter.cli", *args, "--config.check"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("values", "interval"),
    [
        ({}, None),  # a change of `targets` rolls the pods
        ({"replicas": 3}, "30"),  # POST /-/reload through the Service reaches one of them
        ({"autoscaling": {"enabled": True}}, "30"),
        ({"existingConfig": {"configMapName": "fleet"}}, "30"),  # nothing rolls the pods
        ({"existingConfig": {"secretName": "fleet"}}, "30"),
        ({"existingConfig": {"configMapName": "fleet"}, "config": {"autoReloadInterval": 0}}, None),
        ({"config": {"autoReloadInterval": 2.5}}, "2.5"),
        ({"replicas": 2, "config": {"autoReloadInterval": 120}}, "120"),
    ],
)
def test_config_auto_reload_interval(
    values: dict[str, Any], interval: str | None, tmp_path: Path
) -> None:
    docs = render_values(tmp_path, values)
    args = only(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
    flag = "--config.auto-reload-interval="
    assert [arg.removeprefix(flag) for arg in args if arg.startswith(flag)] == (
        [interval] if interval else []
    )
    (tmp_path / "targets.toml").write_text('[[targets]]\nname = "kam"\naddress = "tcp:k:2049"\n')
    _passes_config_check(args, tmp_path)


@pytest.mark.parametrize("level", ["debug", "info", "warn", "error"])
def test_log_prober_sets_the_flag(level: str, tmp_path: Path) -> None:
    docs = render_values(tmp_path, {"log": {"prober": level, "level": "error"}})
    args = only(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert f"--log.prober={level}" in args
    assert "--log.level=error" in args
    (tmp_path / "targets.toml").write_text('[[targets]]\nname = "kam"\naddress = "tcp:k:2049"\n')
    _passes_config_check(args, tmp_path)


# --- alert overrides, egress ports, spreading, resources, address syntax ----------------------


def _rendered_rules(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    groups = only(docs, "PrometheusRule")["spec"]["groups"]
    return {rule["alert"]: rule for group in groups for rule in group["rules"]}


def _deploy_rules() -> dict[str, dict[str, Any]]:
    groups = yaml.safe_load((ROOT / "deploy" / "rules" / "kamailio-alerts.yml").read_text())
    return {rule["alert"]: rule for group in groups["groups"] for rule in group["rules"]}


def test_alerts_severity_and_for_are_overridable(tmp_path: Path) -> None:
    docs = render_values(
        tmp_path,
        {
            "prometheusRule": {
                "enabled": True,
                "alertLabels": {"severity": "ticket", "team": "voip"},
                "alerts": {
                    "KamailioDown": {"severity": "page", "for": "5m", "labels": {"tier": "1"}},
                    "KamailioProbeFailures": {"for": "10m"},
                },
            }
        },
    )
    rules = _rendered_rules(docs)
    source = _deploy_rules()
    assert rules["KamailioDown"]["labels"] == {"severity": "page", "team": "voip", "tier": "1"}
    assert rules["KamailioDown"]["for"] == "5m"
    # KamailioProbeFailures has no `for` of its own: the override adds one.
    assert "for" not in source["KamailioProbeFailures"]
    assert rules["KamailioProbeFailures"]["for"] == "10m"
    # alertLabels replaces the rule's severity; the rest of every rule is untouched.
    assert rules["KamailioShmNearlyExhausted"]["labels"] == {"severity": "ticket", "team": "voip"}
    for name, rule in rules.items():
        assert rule["expr"] == source[name]["expr"]
        if name not in ("KamailioDown", "KamailioProbeFailures"):
            assert rule.get("for") == source[name].get("for")
    # Without overrides the rules are those of deploy/.
    plain = _rendered_rules(render_values(tmp_path, {"prometheusRule": {"enabled": True}}))
    assert plain == source


def test_schema_knows_every_alert_name() -> None:
    schema = _values_schema()["properties"]["prometheusRule"]["properties"]
    names = sorted(_deploy_rules())
    assert sorted(schema["alerts"]["propertyNames"]["enum"]) == names
    assert sorted(schema["disabledAlerts"]["items"]["enum"]) == names


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ('{"KamailioDwn": {"for": "5m"}}', "invalid propertyName 'KamailioDwn'"),
        ('{"KamailioDown": {"for": "5 minutes"}}', "at '/prometheusRule/alerts/KamailioDown/for'"),
        ('{"KamailioDown": {"severty": "page"}}', "'severty' not allowed"),
    ],
)
def test_schema_rejects_bad_alert_overrides(value: str, message: str) -> None:
    result = helm(
        "template", RELEASE, str(CHART), "--set-json", f"prometheusRule.alerts={value}", check=False
    )
    assert result.returncode != 0
    assert message in result.stderr, result.stderr


def test_network_policy_egress_adds_the_targets_ports(tmp_path: Path) -> None:
    values = {
        "targets": {
            "targets": [
                {
                    "name": "a",
                    "address": "tcp:10.0.0.5:2046",
                    "xhttp_prom_url": "http://user:secret@10.0.0.5:8080/metrics",
                    "rtpengine_metrics_url": "http://10.0.0.5:9901/metrics",
                },
                {
                    "name": "b",
                    "address": "udp:[2001:db8::5]",
                    "xhttp_prom_url": "https://kamailio-b.example/metrics",
                },
                {"name": "c", "address": "unix:/run/kamailio/kamailio_ctl"},
                {"name": "d", "address": "TCP:[::1]:2046"},
            ],
            "allow": [
                {"address": "tcp:10.20.0.0/16:2047"},
                {"address": "tcp:*.sbc.example:*"},
                {"address": "unix:/run/kamailio/*"},
            ],
        },
        "networkPolicy": {
            "enabled": True,
            "egress": {
                "enabled": True,
                "to": [{"ipBlock": {"cidr": "10.0.0.0/8"}}],
                "ports": [{"port": 5555, "protocol": "TCP"}],
            },
        },
    }
    policy = only(render_values(tmp_path, values), "NetworkPolicy")
    validate_object(policy)
    dns, fleet = policy["spec"]["egress"]
    assert dns["ports"][0]["port"] == 53
    assert fleet["to"] == [{"ipBlock": {"cidr": "10.0.0.0/8"}}]
    assert fleet["ports"] == [
        {"port": 5555, "protocol": "TCP"},  # given
        {"port": 2046, "protocol": "TCP"},  # a and d (once)
        {"port": 2049, "protocol": "UDP"},  # b: Kamailio's default ctl port
        {"port": 2047, "protocol": "TCP"},  # the allow rule
        {"port": 8080, "protocol": "TCP"},  # a's xhttp_prom_url
        {"port": 9901, "protocol": "TCP"},  # a's rtpengine_metrics_url
        {"port": 443, "protocol": "TCP"},  # b's https URL
    ]
    # The chart's ci file: only the allow rule's port, already listed.
    ci = only(render_ci(CHART / "ci" / "networkpolicy-values.yaml"), "NetworkPolicy")
    assert ci["spec"]["egress"][1]["ports"] == [
        {"port": 2046, "protocol": "TCP"},
        {"port": 2046, "protocol": "UDP"},
    ]


def test_default_spreads_replicas_over_nodes_and_sizes_resources() -> None:
    deployment = only(render(), "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    (constraint,) = pod["topologySpreadConstraints"]
    assert constraint == {
        "maxSkew": 1,
        "topologyKey": "kubernetes.io/hostname",
        "whenUnsatisfiable": "ScheduleAnyway",
        "labelSelector": {"matchLabels": deployment["spec"]["selector"]["matchLabels"]},
    }
    (container,) = pod["containers"]
    assert container["resources"] == {
        "requests": {"cpu": "100m", "memory": "96Mi"},
        "limits": {"memory": "192Mi"},
    }
    # The figures the sizing rests on are those of BENCHMARKS.md, as the chart quotes them.
    benchmarks = (ROOT / "BENCHMARKS.md").read_text()
    comment = re.sub(r"\s*\n\s*#\s*", " ", (CHART / "values.yaml").read_text())
    rss = re.search(
        r"\| RSS after the fleet run \(5,000 targets pooled\) \| ([\d.]+) MiB \|", benchmarks
    )
    assert rss is not None
    assert f"{float(rss[1]):.0f} MiB with 5,000" in comment
    paced = {
        targets: float(cpu)
        for targets, cpu in re.findall(
            r"^\| ([\d,]+) \| 15 s \| [^|]+ \| [^|]+ \| [^|]+ \| ([\d.]+) \|", benchmarks, re.M
        )
    }
    assert f"{paced['100']:.1f} ms per full-set probe at 100 targets" in comment
    assert f"{paced['1,000']:.1f} ms at 1,000" in comment


ADDRESSES_OK = [
    "tcp:10.0.0.5:2046",
    "tcp:[2001:db8::5]:2046",
    "tcp:[fe80::1%eth0]:2046",
    "udp:kamailio-1.voip.svc:2046",
    "TCP:sbc",
    "unix:/run/kamailio/kamailio_ctl",
    "unixs:/run/kamailio/kamailio_ctl",
    "unixd:/run/kamailio/kamailio_ctl_dgram",
]
ADDRESSES_BAD = [
    "tcp://10.0.0.5:2046",  # the older exporter's URL form
    "10.0.0.5:2046",  # no protocol: Kamailio would read UDP
    "/run/kamailio/kamailio_ctl",
    "unix:run/kamailio_ctl",
    "tcp:",
    "http://10.0.0.5:2046",
    "tcp:10.0.0.5:port",
]


@pytest.mark.parametrize("address", ADDRESSES_OK + ADDRESSES_BAD)
def test_schema_checks_target_addresses(address: str) -> None:
    schema = _values_schema()
    target = {"name": "a", "address": address}
    errors = list(
        jsonschema.Draft7Validator(schema).iter_errors({"targets": {"targets": [target]}})
    )
    assert (not errors) == (address in ADDRESSES_OK), errors
    if address in ADDRESSES_OK:
        # Whatever the schema lets through, the exporter parses.
        parse_address(address)


def test_helm_refuses_a_bad_target_address() -> None:
    result = helm(
        "template",
        RELEASE,
        str(CHART),
        "--set-json",
        'targets.targets=[{"name":"a","address":"tcp://10.0.0.5:2046"}]',
        "--set-json",
        'targets.allow=[{"address":"10.0.0.0/8:2046"}]',
        check=False,
    )
    assert result.returncode != 0
    assert "at '/targets/targets/0/address'" in result.stderr, result.stderr
    assert "at '/targets/allow/0/address'" in result.stderr, result.stderr

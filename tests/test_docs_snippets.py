"""The README's and docs/' snippets: Prometheus configurations pass promtool, targets.toml
snippets pass the exporter's own parser, Kubernetes objects validate, and relative links lead
to files that exist."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from test_deploy_helm import only, render_values, validate_object
from test_deploy_monitoring import tool

from probe_exporter.config import parse_config

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def blocks(language: str) -> list[tuple[str, str]]:
    """(file name, text) of every fenced block of that language in the README and docs/."""
    found = []
    for doc in DOCS:
        for text in re.findall(
            rf"^ *```{language}\n(.*?)^ *```", doc.read_text(), re.MULTILINE | re.DOTALL
        ):
            found.append((doc.name, text))
    return found


def ids(items: list[tuple[str, str]]) -> list[str]:
    return [f"{name}-{i}" for i, (name, _) in enumerate(items)]


SCRAPE_CONFIGS = [b for b in blocks("yaml") if b[1].startswith("scrape_configs:")]
TARGETS = [b for b in blocks("toml") if "[[targets]]" in b[1]]


def test_the_docs_have_the_snippets_tested_here() -> None:
    assert len(SCRAPE_CONFIGS) >= 2
    assert len(TARGETS) >= 4


@pytest.mark.real
@pytest.mark.parametrize(("doc", "text"), SCRAPE_CONFIGS, ids=ids(SCRAPE_CONFIGS))
def test_prometheus_snippets_pass_promtool(doc: str, text: str, tmp_path: Path) -> None:
    config = tmp_path / "prometheus.yml"
    config.write_text(text)
    result = subprocess.run(
        [tool("promtool"), "check", "config", "--syntax-only", str(config)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(("doc", "text"), TARGETS, ids=ids(TARGETS))
def test_targets_snippets_pass_the_config_parser(doc: str, text: str) -> None:
    config = parse_config(text, doc)
    assert config.targets


def test_kamailio_networkpolicy_validates() -> None:
    (policy,) = [
        yaml.safe_load(text)
        for _, text in blocks("yaml")
        if "kind: NetworkPolicy" in text and "kamailio-ctl-from-exporter" in text
    ]
    for version in ("1.25", "1.37"):
        kubernetes_validate.validate(policy, version, strict=True)
    (ctl_rule,) = [rule for rule in policy["spec"]["ingress"] if "from" in rule]
    assert ctl_rule["ports"] == [{"port": 2046, "protocol": "TCP"}]


def test_relative_links_resolve() -> None:
    for doc in [*DOCS, ROOT / "helm" / "kamailio-probe-exporter" / "README.md"]:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", doc.read_text()):
            if re.match(r"[a-z]+:", target):
                continue
            assert (doc.parent / target).exists(), f"{doc.name}: {target}"


def test_readme_links_the_operator_docs() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "(docs/kamailio.md)" in readme
    assert "(docs/migrating.md)" in readme


@pytest.mark.real
def test_kamailio_hostpath_values_render_in_the_chart(tmp_path: Path) -> None:
    """docs/kamailio.md's chart values for a unix socket on the node."""
    (text,) = [text for _, text in blocks("yaml") if "supplementalGroups" in text]
    values = yaml.safe_load(text)
    values["targets"] = {
        "targets": [{"name": "local", "address": "unix:/run/kamailio/kamailio_ctl"}]
    }
    deployment = only(render_values(tmp_path, values), "Deployment")
    validate_object(deployment)
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["supplementalGroups"] == [105]
    assert pod["securityContext"]["runAsNonRoot"] is True  # merged with the chart's defaults
    (container,) = pod["containers"]
    assert {"name": "kamailio-run", "mountPath": "/run/kamailio", "readOnly": True} in container[
        "volumeMounts"
    ]

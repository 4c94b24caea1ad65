# The reference stack's Python programs (targets/), one image for all of them:
#   docker run drill-targets:latest python -m targets.<program>
# BASE_IMAGE: python:3.12-slim by default; scripts/docker-setup passes the offline
# drill-base:bookworm (debootstrap) because no registry is reachable there. Both have python3
# with venv, so the dependencies go into /opt/venv either way.
ARG BASE_IMAGE=python:3.12-slim
FROM ${BASE_IMAGE}

# pip-ca.crt: the CA bundle the building host's pip trusts (scripts/docker-setup stages it; empty
# means the image's own). Needed behind TLS-inspecting proxies; harmless elsewhere.
COPY requirements.txt pip-ca.crt /opt/drill/
RUN python3 -m venv /opt/venv \
 && if [ -s /opt/drill/pip-ca.crt ]; then export PIP_CERT=/opt/drill/pip-ca.crt; fi \
 && /opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check -q -r /opt/drill/requirements.txt

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /app
COPY targets /app/targets
LABEL org.opencontainers.image.title="drill-targets" \
      org.opencontainers.image.description="drill reference AI serving stack (gateway, model servers, cloud-api, autoscaler)"
# Each compose service names its program; this default only answers `docker run` without one.
CMD ["python", "-m", "targets.gateway"]

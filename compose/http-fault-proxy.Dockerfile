# The HTTP fault proxy for the compose stack: mitmproxy's mitmdump (pinned in
# http-fault-proxy-requirements.txt, the version scripts/mitmproxy-setup installs locally) with
# drill's addon (harness/httpfaults/addon.py, copied in by scripts/docker-setup). Its own
# virtualenv, as locally: mitmproxy pins h11 and cryptography versions of its own.
# BASE_IMAGE: scripts/docker-setup passes the offline drill-base:bookworm (python3.11 + venv).
ARG BASE_IMAGE=python:3.12-slim
FROM ${BASE_IMAGE}

# pip-ca.crt: the CA bundle the building host's pip trusts (empty: the image's own), as for drill-targets.
COPY requirements.txt pip-ca.crt /opt/drill/
RUN python3 -m venv /opt/mitm \
 && if [ -s /opt/drill/pip-ca.crt ]; then export PIP_CERT=/opt/drill/pip-ca.crt; fi \
 && /opt/mitm/bin/pip install --no-cache-dir --disable-pip-version-check -q -r /opt/drill/requirements.txt

ENV PATH=/opt/mitm/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
COPY addon.py /opt/drill/addon.py
LABEL org.opencontainers.image.title="drill-http-fault-proxy" \
      org.opencontainers.image.description="mitmdump with drill's provider-fault addon (docs/http-faults.md)"
# The routes (--mode reverse:UPSTREAM@0.0.0.0:PORT) and their names (drill_proxies) come from the
# compose file's `command:`; the control API answers under /__drill/ on every route.
ENTRYPOINT ["mitmdump", "--quiet", "--set", "connection_strategy=lazy", "-s", "/opt/drill/addon.py"]

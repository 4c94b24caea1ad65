# Toxiproxy from the pinned binaries scripts/bootstrap builds into .venv/bin (no Go image is
# available offline); scripts/docker-setup copies them into the build context.
ARG BASE_IMAGE=python:3.12-slim
FROM ${BASE_IMAGE}

COPY toxiproxy-server toxiproxy-cli /usr/local/bin/
LABEL org.opencontainers.image.title="drill-toxiproxy"
EXPOSE 8474
# The proxies come from one file (compose/toxiproxy.json), mounted by the compose file.
ENTRYPOINT ["toxiproxy-server", "-host", "0.0.0.0", "-port", "8474"]
CMD ["-config", "/etc/toxiproxy/toxiproxy.json"]

# Prometheus for the compose stack, from the Debian package's binary on the building host
# (scripts/prometheus-setup installs it; no registry is reachable offline, and the binary only
# needs libc, which the bookworm base has). scripts/docker-setup copies it into the context.
ARG BASE_IMAGE=python:3.12-slim
FROM ${BASE_IMAGE}

COPY prometheus /usr/local/bin/prometheus
LABEL org.opencontainers.image.title="drill-prometheus" \
      org.opencontainers.image.description="Prometheus (Debian's build) scraping the drill reference stack"
EXPOSE 9090
# The configuration is mounted by the compose file (compose/prometheus.yml); the TSDB lives in
# the container and goes with it (`drill stack down`).
ENTRYPOINT ["prometheus", "--web.listen-address=0.0.0.0:9090", "--storage.tsdb.path=/prometheus", \
            "--storage.tsdb.retention.time=1d"]
CMD ["--config.file=/etc/prometheus/prometheus.yml"]

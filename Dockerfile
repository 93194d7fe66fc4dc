# The tracker worker as a container image. Kafka is not in this image: use
# docker-compose.yml, or point TRACKER_KAFKA_BOOTSTRAP at an existing cluster.
# The page's charting library, from the npm registry, checked against
# tracker/page/library.json (the same script as `make venv`).
FROM node:20-bookworm-slim AS page-library
WORKDIR /build
COPY deploy/page/vendor.mjs tracker/page/library.json ./
RUN node vendor.mjs library.json vendor

FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# A fixed uid/gid so that mounted volumes can be granted to it.
RUN groupadd --system --gid 10001 tracker \
    && useradd --system --uid 10001 --gid tracker --home-dir /var/lib/tracker --create-home \
       --shell /usr/sbin/nologin tracker

WORKDIR /src
# pyproject.toml names README.md as the package's readme, so the build needs it.
# constraints.txt pins every transitive version: the image runs what the tests ran.
COPY pyproject.toml constraints.txt README.md ./
COPY tracker ./tracker
COPY --from=page-library /build/vendor ./tracker/page/static/vendor
RUN pip install -c constraints.txt . \
    && rm -rf /src
# The default rules file lives in the source tree, not in the installed package:
# ship it and point the worker at it (publishers must use the same file).
COPY deploy/rules/default.yaml /etc/tracker/rules.yaml

# In a container the worker must bind every interface to be reachable; Faust's
# working files go under the data directory, which the tracker user owns.
ENV TRACKER_HTTP_HOST=0.0.0.0 \
    TRACKER_HTTP_PORT=6066 \
    TRACKER_DATA_DIR=/var/lib/tracker \
    TRACKER_RULES_PATH=/etc/tracker/rules.yaml

USER tracker
WORKDIR /var/lib/tracker
EXPOSE 6066

# /healthz answers once the worker's web server is up; start-up waits for the
# topics to be created and the consumer group to form, hence the start period.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('TRACKER_HTTP_PORT', '6066'), timeout=4)"]

CMD ["tracker", "worker"]

# chatstream: the server (release build) behind nginx, in one Debian 12 container.
#
#   docker build -t chatstream .
#   docker run --rm -p 8080:8080 chatstream
#   curl -N -X POST http://127.0.0.1:8080/chat/stream -H 'Content-Type: application/json' -d '{"message":"hello"}'
#
# Any server flag can be set as an environment variable: CHATSTREAM_<FLAG_IN_UPPER_SNAKE>, e.g.
#   docker run -e CHATSTREAM_WORKERS=4 -e CHATSTREAM_HEARTBEAT=10s ...
# or appended as arguments: docker run chatstream --workers 4
# `docker stop` gives 10 s by default; running streams get CHATSTREAM_DRAIN_TIMEOUT (8s here) to finish.
# Use `docker stop -t 35` together with CHATSTREAM_DRAIN_TIMEOUT=30s for longer answers.

# ---- build ------------------------------------------------------------------------------------------
FROM debian:12 AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential cmake pkg-config \
      libuv1-dev node-llhttp libpq-dev libmimalloc-dev libsimdjson-dev \
      libcurl4-openssl-dev libssl-dev \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /src
# Only what the release binary needs: tests and benchmarks are off (they are built by `make test`).
COPY CMakeLists.txt ./
COPY worker/ worker/
RUN cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DCHATSTREAM_TESTS=OFF -DCHATSTREAM_BENCH=OFF \
 && cmake --build build -j"$(nproc)" \
 && strip build/chatstream \
 && build/chatstream --help >/dev/null

# ---- static files -----------------------------------------------------------------------------------
# web/ is optional at this point of the project (a fresh clone may not have it): take it from the
# whole context in a throw-away stage instead of failing the COPY.
FROM debian:12-slim AS assets
COPY . /ctx
RUN mkdir -p /ctx/web

# ---- run --------------------------------------------------------------------------------------------
FROM debian:12-slim
# Runtime libraries of the build stage's -dev packages, nginx, and curl for the health check.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libuv1 libpq5 libmimalloc2.0 libsimdjson14 libcurl4 libssl3 ca-certificates \
      nginx curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin chatstream

COPY --from=build /src/build/chatstream /usr/local/bin/chatstream
# Fail the image build, not the first start, if a shared library is missing.
RUN if ldd /usr/local/bin/chatstream | grep 'not found'; then exit 1; fi

# nginx: the production include as it is in the repository (its defaults are this layout:
# listen 8080, upstream unix:/run/chatstream/chatstream.sock, web root /srv/chatstream/web).
# Debian's default site goes; logs go to the container's output; each stream holds two
# connections, so raise Debian's 768 worker_connections.
COPY nginx/chatstream.conf /etc/nginx/conf.d/chatstream.conf
RUN rm -f /etc/nginx/sites-enabled/default \
 && sed -i -e 's/worker_connections [0-9]*;/worker_connections 8192;/' \
           -e 's/^worker_processes .*;/worker_processes auto;\nworker_rlimit_nofile 16384;/' /etc/nginx/nginx.conf \
 && ln -sf /dev/stdout /var/log/nginx/access.log \
 && ln -sf /dev/stderr /var/log/nginx/error.log \
 && nginx -t

COPY --from=assets /ctx/web/ /srv/chatstream/web/
COPY scripts/demo-answer.txt /usr/share/chatstream/demo-answer.txt
COPY scripts/docker-entrypoint.sh /usr/local/bin/docker-entrypoint.sh

ENV CHATSTREAM_DRAIN_TIMEOUT=8s \
    CHATSTREAM_LOG_LEVEL=info
EXPOSE 8080
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
  CMD curl -fsS -o /dev/null http://127.0.0.1:8080/healthz || exit 1
ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]

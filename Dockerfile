# chatstream: the server (release build) behind nginx, in one Debian 12 image that runs as a
# non-root user.
#
#   make image                  # podman here (base image made by debootstrap), docker elsewhere
#   docker build -t chatstream .  # the same file, unchanged, against Docker Hub's debian:12-slim
#   docker run --rm -p 8080:8080 chatstream
#   curl -N -X POST http://127.0.0.1:8080/chat/stream -H 'Content-Type: application/json' -d '{"message":"hello"}'
#
# compose.yaml runs it with PostgreSQL (docs/operations.md). Any server flag can be set as an
# environment variable: CHATSTREAM_<FLAG_IN_UPPER_SNAKE>, e.g. `-e CHATSTREAM_WORKERS=4`, or appended
# as arguments: `docker run chatstream --workers 4`.
# `docker stop` sends SIGTERM and waits 10 s by default; running streams get CHATSTREAM_DRAIN_TIMEOUT
# (8s here) to finish. Use `docker stop -t 35` with CHATSTREAM_DRAIN_TIMEOUT=30s for longer answers.

# ---- build ------------------------------------------------------------------------------------------
FROM debian:12-slim AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential cmake pkg-config ccache \
      libuv1-dev node-llhttp libpq-dev libmimalloc-dev libsimdjson-dev \
      libcurl4-openssl-dev libssl-dev libstemmer-dev \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /src
# Only what the release binary needs: tests and benchmarks are off (`make test` builds them).
COPY CMakeLists.txt ./
COPY sql/ sql/
COPY worker/ worker/
ARG CHATSTREAM_VERSION=""
# The ccache directory is a build cache (BuildKit and buildah both keep it between builds), so an
# image rebuilt after a small change compiles only that change.
RUN --mount=type=cache,target=/root/.cache/ccache \
    cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DCHATSTREAM_TESTS=OFF -DCHATSTREAM_BENCH=OFF \
          -DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache \
          -DCHATSTREAM_VERSION="${CHATSTREAM_VERSION}" \
 && cmake --build build -j"$(nproc)" \
 && strip build/chatstream \
 && build/chatstream --version

# ---- the sample knowledge base ------------------------------------------------------------------------
# The PostgreSQL manual as HTML (Debian's postgresql-doc-15), the same documents `make run` loads.
# debian:12-slim tells dpkg to drop /usr/share/doc/*; a later rule lets this one package's pages in.
FROM debian:12-slim AS knowledge-base
RUN echo 'path-include /usr/share/doc/postgresql-doc-15/*' >/etc/dpkg/dpkg.cfg.d/zz-knowledge-base \
 && apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql-doc-15 \
 && test -f /usr/share/doc/postgresql-doc-15/html/index.html \
 && rm -rf /var/lib/apt/lists/*

# ---- run --------------------------------------------------------------------------------------------
FROM debian:12-slim
# Runtime libraries of the build stage's -dev packages, nginx, and curl for the health check.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libuv1 libpq5 libmimalloc2.0 libsimdjson14 libcurl4 libssl3 libstemmer0d ca-certificates \
      nginx curl \
 && rm -rf /var/lib/apt/lists/* /etc/nginx/sites-enabled/default \
 && useradd --system --create-home --home-dir /var/lib/chatstream --shell /usr/sbin/nologin chatstream

COPY --from=build /src/build/chatstream /usr/local/bin/chatstream
# Fail the image build, not the first start, if a shared library is missing.
RUN if ldd /usr/local/bin/chatstream | grep 'not found'; then exit 1; fi \
 && /usr/local/bin/chatstream --version

# nginx runs as the same unprivileged user as chatstream: scripts/render-nginx.sh turns
# nginx/chatstream.conf into a self-contained nginx.conf whose pid file and temp paths live in
# /var/lib/chatstream/nginx. It listens on 0.0.0.0:8080 (unprivileged) and reaches the workers over
# the unix socket next to it. /var/lib/chatstream/sock is where compose.yaml shares the socket
# between the chatstream and nginx containers (a volume). Errors go to the container's stderr; chatstream logs every request
# itself (JSON lines), so nginx's access log is off.
COPY nginx/chatstream.conf /usr/share/chatstream/nginx/chatstream.conf
COPY scripts/render-nginx.sh /usr/share/chatstream/scripts/render-nginx.sh
COPY web/ /srv/chatstream/web/
COPY scripts/demo-answer.txt /usr/share/chatstream/demo-answer.txt
COPY --from=knowledge-base /usr/share/doc/postgresql-doc-15/html/ /usr/share/chatstream/knowledge-base/postgresql-manual/
RUN bash /usr/share/chatstream/scripts/render-nginx.sh --out /var/lib/chatstream/nginx --port 8080 \
      --listen 0.0.0.0 --web-root /srv/chatstream/web \
      --upstream unix:/var/lib/chatstream/chatstream.sock >/dev/null \
 && sed -i -e '/^user root root;$/d' -e 's/^worker_processes 2;/worker_processes auto;/' \
      -e 's|^error_log .*;|error_log stderr warn;|' -e 's|^\(\s*\)access_log .*;|\1access_log off;|' \
      /var/lib/chatstream/nginx/nginx.conf \
 && install -d -m 0750 /var/lib/chatstream/sock \
 && chown -R chatstream:chatstream /var/lib/chatstream \
 && setpriv --reuid=chatstream --regid=chatstream --clear-groups \
      nginx -t -q -e stderr -p /var/lib/chatstream/nginx/ -c /var/lib/chatstream/nginx/nginx.conf
COPY scripts/docker-entrypoint.sh /usr/local/bin/docker-entrypoint.sh

USER chatstream
WORKDIR /var/lib/chatstream
ENV CHATSTREAM_DRAIN_TIMEOUT=8s \
    CHATSTREAM_LOG_LEVEL=info
EXPOSE 8080
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
  CMD curl -fsS -o /dev/null --max-time 2 http://127.0.0.1:8080/healthz || exit 1
ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]

#!/usr/bin/env bash
# A TLS + HTTP/2 front for an OpenAI-compatible upstream on loopback, with a CA of its own: what
# hosted models speak, for chatstream's tests and benchmarks (tests/e2e/test_upstream_tls.py,
# `bash bench/run.sh relay-h2`). nginx terminates TLS, speaks HTTP/2 to chatstream and HTTP/1.1 to
# the upstream behind it (bench/fake-llm), without buffering.
#
#   scripts/tls-upstream.sh --out DIR --port PORT --upstream HOST:PORT
#                           [--max-streams N] [--keepalive-requests N] [--workers N] [--check]
#
# Writes, all inside DIR (nothing in /etc, /var or /run, so it runs as root or not):
#   ca.pem            the CA certificate: what chatstream's --llm-ca-file (LLM_CA_FILE) takes
#   ca.key            its key (kept only so a test can sign more; never needed by chatstream)
#   server.pem/.key   the front's certificate, for 127.0.0.1 and localhost, signed by that CA
#   nginx.conf        listen 127.0.0.1:PORT ssl http2; proxy to --upstream
#   access.log        one line per request: connection serial, client port, the connection's request
#                     number, protocol, status, duration, bytes (a test counts connections and reset
#                     streams from it)
# Start it with:  nginx -p DIR/ -c DIR/nginx.conf -e DIR/error.log   (it stays in the foreground)
#
# --max-streams N         http2_max_concurrent_streams (default 128, nginx's): streams per connection
#                         before the client opens another
# --keepalive-requests N  requests per connection before nginx sends GOAWAY (default 1000, nginx's)
# --workers N             nginx worker processes (default 1)
# --check                 run `nginx -t` on the result
# The CA and certificate are made once per DIR (kept when DIR already has them). Prints DIR/nginx.conf.
set -euo pipefail

out="" port="" upstream="" max_streams=128 keepalive_requests=1000 workers=1 check=0
die() { echo "tls-upstream.sh: $*" >&2; exit 2; }

while [[ $# -gt 0 ]]; do
  case "$1" in
    --out) out="${2:?}"; shift 2 ;;
    --port) port="${2:?}"; shift 2 ;;
    --upstream) upstream="${2:?}"; shift 2 ;;
    --max-streams) max_streams="${2:?}"; shift 2 ;;
    --keepalive-requests) keepalive_requests="${2:?}"; shift 2 ;;
    --workers) workers="${2:?}"; shift 2 ;;
    --check) check=1; shift ;;
    -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
    *) die "unknown argument: $1" ;;
  esac
done

[[ -n $out ]] || die "--out DIR is required"
for n in port max_streams keepalive_requests workers; do
  [[ ${!n} =~ ^[0-9]+$ ]] && (( ${!n} > 0 )) || die "--${n//_/-} must be a positive integer, got '${!n}'"
done
(( port <= 65535 )) || die "bad --port: $port"
[[ $upstream =~ ^[A-Za-z0-9.-]+:[0-9]+$ ]] || die "--upstream must be HOST:PORT, got '$upstream'"
[[ $out != *[[:space:]\;\#\'\"\{\}\|\&\\]* ]] || die "unsupported character in --out: $out"
command -v openssl >/dev/null || die "openssl not found"

mkdir -p "$out/tmp"
out="$(cd "$out" && pwd)"

if [[ ! -s $out/ca.pem || ! -s $out/server.pem ]]; then
  # P-256 keys: quick to make, and what most hosted APIs present.
  openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -days 30 \
    -subj "/CN=chatstream test CA" -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -keyout "$out/ca.key" -out "$out/ca.pem" 2>/dev/null
  openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -subj "/CN=localhost" \
    -keyout "$out/server.key" -out "$out/server.csr" 2>/dev/null
  printf '%s\n' "subjectAltName=IP:127.0.0.1,DNS:localhost" "basicConstraints=CA:FALSE" \
    "keyUsage=critical,digitalSignature" "extendedKeyUsage=serverAuth" >"$out/server.ext"
  openssl x509 -req -in "$out/server.csr" -CA "$out/ca.pem" -CAkey "$out/ca.key" -CAcreateserial \
    -days 30 -extfile "$out/server.ext" -out "$out/server.pem" 2>/dev/null
  rm -f "$out/server.csr" "$out/server.ext" "$out/ca.srl"
fi

cat >"$out/nginx.conf" <<EOF
# Rendered by scripts/tls-upstream.sh: a TLS + HTTP/2 front for $upstream.
daemon off;
master_process on;
worker_processes $workers;
worker_rlimit_nofile 16384;
pid $out/nginx.pid;
error_log $out/error.log warn;
events { worker_connections 8192; }
http {
  client_body_temp_path $out/tmp/body;
  proxy_temp_path $out/tmp/proxy;
  fastcgi_temp_path $out/tmp/fastcgi;
  uwsgi_temp_path $out/tmp/uwsgi;
  scgi_temp_path $out/tmp/scgi;
  log_format streams '\$connection \$remote_port \$connection_requests \$server_protocol \$status \$request_time \$bytes_sent';
  access_log $out/access.log streams;

  upstream model { server $upstream; keepalive 512; }

  server {
    listen 127.0.0.1:$port ssl http2;
    ssl_certificate $out/server.pem;
    ssl_certificate_key $out/server.key;
    ssl_protocols TLSv1.2 TLSv1.3;
    http2_max_concurrent_streams $max_streams;
    keepalive_requests $keepalive_requests;
    keepalive_timeout 300s;
    client_max_body_size 8m;

    location / {
      proxy_pass http://model;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
      proxy_request_buffering off;
      proxy_read_timeout 1h;
      proxy_send_timeout 1h;
    }
  }
}
EOF

if (( check )); then
  nginx -t -q -p "$out/" -c "$out/nginx.conf" -e "$out/error.log" || die "nginx -t failed"
fi
echo "$out/nginx.conf"

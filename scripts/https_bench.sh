#!/usr/bin/env bash
# Hit throughput over HTTPS, HTTP/1.1 and HTTP/2, imgate against nginx, in one run on loopback,
# both serving the same certificate (a CA and a certificate for img.test made here by openssl).
# The method of ../shared/bench/peers.sh's hit row, over TLS:
#   nginx: a static origin of the photos, image_filter resizing from it, and a proxy_cache
#          front with `listen ... ssl http2` (nginx 1.22; 2 workers);
#   imgate: the perf build, its origin that same nginx origin, tls.listen with the certificate
#          (2 threads, the machine's cores).
# Each server is warmed with width 300 of four photos, then h2load (nghttp2) asks for those
# four URLs round-robin for DURATION seconds: HTTP/1.1 over H1_CONNS connections, HTTP/2 over
# H2_CONNS connections with H2_STREAMS streams each, and, for reference, plain HTTP/1.1 to the
# same caches (what TLS costs each). ROUNDS rounds, servers alternating.
# nginx logs nothing (`access_log off`) and neither does imgate, unless ACCESS_LOG=on (its JSON
# lines to a file in the work directory), to measure what the log costs.
# Figures are only comparable inside one run: quote ratios. PROFILE=h1 (or h2, plain) records
# imgate's run of that kind with `perf record -g` into target/https-<kind>.perf.
#
#   cargo build --profile perf --bins
#   bash scripts/https_bench.sh        (needs nginx, libnginx-mod-http-image-filter, h2load)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
source "$root/scripts/lib.sh"
PHOTO_DIR=${PHOTO_DIR:-$root/../shared/corpus/photos}
DURATION=${DURATION:-10}
H1_CONNS=${H1_CONNS:-64}
H2_CONNS=${H2_CONNS:-8}
H2_STREAMS=${H2_STREAMS:-16}
ROUNDS=${ROUNDS:-2}
IMGATE=${IMGATE:-$root/target/perf/imgate}
[[ -x $IMGATE ]] || { echo "no $IMGATE: cargo build --profile perf --bins" >&2; exit 1; }
for tool in nginx h2load openssl; do
  command -v $tool >/dev/null || { echo "needs $tool (apt-get install nginx libnginx-mod-http-image-filter nghttp2-client)" >&2; exit 1; }
done

work=$(mktemp -d /tmp/https-bench.XXXXXX); chmod 755 "$work"
cleanup() {
  [[ -f $work/nginx.pid ]] && kill "$(cat "$work/nginx.pid")" 2>/dev/null || true
  [[ -n "${imgate_pid:-}" ]] && kill "$imgate_pid" 2>/dev/null || true
  [[ -n "${KEEP:-}" ]] || rm -rf "$work"
}
trap cleanup EXIT

# One certificate for img.test, from a CA made here; both servers serve it.
(cd "$work" &&
  openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=bench-ca 2>/dev/null &&
  openssl req -newkey rsa:2048 -nodes -keyout img.key -out img.csr -subj /CN=img.test 2>/dev/null &&
  echo "subjectAltName=DNS:img.test" >img.ext &&
  openssl x509 -req -in img.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out img.pem -days 2 \
    -extfile img.ext 2>/dev/null)
chmod 644 "$work"/*.key

origin=$(free_port); filter=$(free_port); nginx_tls=$(free_port); nginx_plain=$(free_port)
imgate_plain=$(free_port); imgate_tls=$(free_port); imgate_admin=$(free_port)
cat >"$work/nginx.conf" <<NGINX
worker_processes 2;
error_log $work/error.log warn;
pid $work/nginx.pid;
load_module /usr/lib/nginx/modules/ngx_http_image_filter_module.so;
events { worker_connections 4096; }
http {
  access_log off;
  sendfile on;
  # nginx ends a connection after 1000 requests by default; h2load's timed runs do not
  # reconnect over HTTP/2, and imgate sets no such limit.
  keepalive_requests 100000000;
  proxy_cache_path $work/cache levels=1:2 keys_zone=img:64m max_size=2g inactive=1h use_temp_path=off;
  server { listen 127.0.0.1:$origin; root $PHOTO_DIR; }
  server {
    listen 127.0.0.1:$filter;
    location ~ ^/resize/(\d+)/(.*)\$ {
      proxy_pass http://127.0.0.1:$origin/\$2;
      image_filter resize \$1 -;
      image_filter_jpeg_quality 80;
      image_filter_buffer 30M;
    }
  }
  server {
    listen 127.0.0.1:$nginx_tls ssl http2;
    listen 127.0.0.1:$nginx_plain;
    ssl_protocols TLSv1.2 TLSv1.3;   # imgate's; nginx 1.22's default stops at 1.2
    ssl_certificate $work/img.pem;
    ssl_certificate_key $work/img.key;
    location / { proxy_pass http://127.0.0.1:$filter; proxy_cache img; proxy_cache_valid 200 1h; proxy_cache_lock on; }
  }
}
NGINX
nginx -c "$work/nginx.conf"

cat >"$work/imgate.yaml" <<YAML
listen: 127.0.0.1:$imgate_plain
admin_listen: 127.0.0.1:$imgate_admin
transform_socket: $work/transform.sock
tls:
  listen: 127.0.0.1:$imgate_tls
  certificates:
    - {hosts: [img.test], cert: $work/img.pem, key: $work/img.key}
access_log: {enabled: $([[ ${ACCESS_LOG:-off} == on ]] && echo true || echo false)}
sites:
  - hosts: ['*']
    origin: http://127.0.0.1:$origin
YAML
RUST_LOG=error "$IMGATE" --config "$work/imgate.yaml" >"$work/imgate.log" 2>"$work/imgate.err" &
imgate_pid=$!
wait_ready "127.0.0.1:$imgate_admin"

photos=$(cd "$PHOTO_DIR" && ls *.jpg | while read -r f; do [[ $(stat -c %s "$f") -lt 5000000 ]] && echo "$f"; done | awk 'NR<=4')
urls() { # port template
  for f in $photos; do echo "https://img.test:$1$(sed "s/{f}/$f/" <<<"$2")"; done
}
nginx_urls=$(urls "$nginx_tls" '/resize/300/{f}')
imgate_urls=$(urls "$imgate_tls" '/cdn-cgi/image/width=300,quality=80,format=jpeg/{f}')
for u in $nginx_urls $imgate_urls; do
  port=$(sed -E 's#https://img.test:([0-9]+)/.*#\1#' <<<"$u")
  echo "$(curl -sf -o /dev/null -w '%{size_download}' --cacert "$work/ca.pem" \
    --resolve "img.test:$port:127.0.0.1" "$u") bytes: $u"
  curl -sf -o /dev/null --cacert "$work/ca.pem" --resolve "img.test:$port:127.0.0.1" "$u" ||
    { echo "warm-up of $u failed" >&2; cat "$work/error.log" "$work/imgate.err" >&2; exit 1; }
done

# h2load connects by the URLs' host: point img.test at loopback for it.
run() { # name proto(plain|h1|h2) https-urls plain-port
  local port flags out
  if [[ $2 == h2 ]]; then flags=(-c "$H2_CONNS" -m "$H2_STREAMS"); else flags=(--h1 -c "$H1_CONNS" -m 1); fi
  # Plain HTTP/1.1, the same caches without TLS: what TLS itself costs each server.
  [[ $2 == plain ]] && set -- "$1" "$2" "$(sed -E "s#https://img.test:[0-9]+#http://img.test:$4#" <<<"$3")"
  port=$(sed -E 's#https?://img.test:([0-9]+)/.*#\1#' <<<"$3" | head -1)
  local prof=""
  if [[ $1 == imgate && $2 == "${PROFILE:-}" ]]; then
    perf record -g -p "$imgate_pid" -o "$root/target/https-$2.perf" -- sleep "$DURATION" >/dev/null 2>&1 &
    prof=$!
  fi
  out=$(h2load "${flags[@]}" -t 2 -D "$DURATION" --warm-up-time=1 \
        --connect-to="127.0.0.1:$port" $3 2>&1)
  [[ -n $prof ]] && wait "$prof"
  [[ -n "${VERBOSE:-}" ]] && echo "$out" >&2
  local rps ok failed mean max proto bytes tls
  rps=$(awk '/^finished in/ {print $4}' <<<"$out")
  ok=$(awk '/^requests:/ {print $8}' <<<"$out"); failed=$(awk '/^requests:/ {print $10}' <<<"$out")
  mean=$(awk '/^time for request:/ {print $6}' <<<"$out"); max=$(awk '/^time for request:/ {print $5}' <<<"$out")
  proto=$(awk '/Application protocol:/ {print $3}' <<<"$out")
  tls=$(awk '/^TLS Protocol:/ {print $3; exit}' <<<"$out")
  printf '%-7s %-5s %-9s %-8s %10s req/s  mean %-9s max %-9s ok %-8s failed %s\n' \
    "$1" "$2" "${proto:-?}" "${tls:-?}" "$rps" "$mean" "$max" "$ok" "$failed"
}

echo "imgate access log: ${ACCESS_LOG:-off}; photos: $(echo $photos | tr ' ' ,); h2load ${DURATION}s; h1 $H1_CONNS conns; h2 $H2_CONNS conns x $H2_STREAMS streams; $(nproc) cores"
for round in $(seq "$ROUNDS"); do
  echo "round $round"
  for proto in plain h1 h2; do
    run nginx "$proto" "$nginx_urls" "$nginx_plain"
    run imgate "$proto" "$imgate_urls" "$imgate_plain"
  done
done

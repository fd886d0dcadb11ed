# Shared helpers for the benchmark and conformance scripts (sourced, not run).

# free_port: a free TCP port on loopback (bound, then released for the caller to use).
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# wait_ready ADMIN: wait up to 10 s for imgate's admin listener (host:port) to answer /readyz.
wait_ready() {
  for _ in $(seq 100); do curl -sf -o /dev/null "http://$1/readyz" && return; sleep 0.1; done
}

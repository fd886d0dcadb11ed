#!/usr/bin/env python3
"""check_k8s.py IMGATE_BINARY [KUBERNETES_VERSION]: the manifests in deploy/k8s checked
offline, as `./dev test` runs it (with the virtualenv ./dev makes in deploy/k8s/.venv, which
has kubernetes-validate and PyYAML):

- every resource passes kubernetes-validate --strict against the Kubernetes schemas of that
  version (default 1.30, the oldest with the preStop `sleep` action on by default);
- kustomization.yaml lists exactly the manifest files there are;
- the ConfigMap's imgate.yaml passes the binary's own `--validate`;
- the pod's shutdown adds up: terminationGracePeriodSeconds covers the preStop sleep, Pingora's
  grace period and its shutdown timeout, and the preStop sleep covers at least two readiness
  periods (so endpoints drop the pod before SIGTERM arrives).

Exits non-zero on the first failure, naming it."""
import os
import pathlib
import subprocess
import sys
import tempfile

import yaml

HERE = pathlib.Path(__file__).resolve().parent.parent / "deploy" / "k8s"


def fail(msg):
    sys.exit(f"deploy/k8s: {msg}")


def pod_env(container):
    """The container's `env` with a pod's values: a field reference is a pod address, a
    Secret a token-like string, `$(VAR)` expanded as Kubernetes expands it."""
    env = {}
    for item in container.get("env", []):
        source = item.get("valueFrom", {})
        if "fieldRef" in source:
            value = "10.1.2.3"
        elif "secretKeyRef" in source:
            value = "secret-from-kubernetes-0123456789"
        else:
            value = item["value"]
        for name, known in env.items():
            value = value.replace(f"$({name})", known)
        env[item["name"]] = value
    return env


def main(binary, version="1.30"):
    manifests = sorted(p for p in HERE.glob("*.yaml") if p.name != "kustomization.yaml")
    kustomization = yaml.safe_load((HERE / "kustomization.yaml").read_text())
    listed = sorted(kustomization.get("resources", []))
    if listed != [p.name for p in manifests]:
        fail(f"kustomization.yaml lists {listed}, the folder has {[p.name for p in manifests]}")
    validate = pathlib.Path(sys.executable).parent / "kubernetes-validate"
    run = subprocess.run(
        [str(validate), "-k", version, "--strict", "--quiet", *map(str, manifests)],
        capture_output=True, text=True)
    if run.returncode != 0:
        fail(f"kubernetes-validate {version}:\n{run.stdout}{run.stderr}")

    docs = {}
    for path in manifests:
        for doc in yaml.safe_load_all(path.read_text()):
            docs[(doc["kind"], doc["metadata"]["name"])] = doc
    config_text = docs[("ConfigMap", "imgate")]["data"]["imgate.yaml"]
    pod = docs[("StatefulSet", "imgate")]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    with tempfile.TemporaryDirectory() as tmp:
        config = pathlib.Path(tmp) / "imgate.yaml"
        config.write_text(config_text)
        # The container's environment as a pod would get it: the cluster settings are there.
        run = subprocess.run([binary, "--validate", str(config)], capture_output=True, text=True,
                             env={**os.environ, **pod_env(container)})
        if run.returncode != 0:
            fail(f"the ConfigMap's imgate.yaml with the pod's environment: {run.stdout}{run.stderr}")
    pingora = yaml.safe_load(config_text)["pingora"]
    cluster_port = next(p["containerPort"] for p in container["ports"] if p["name"] == "cluster")
    peers = docs[("Service", "imgate-peers")]["spec"]["ports"]
    if not any(p["port"] == cluster_port for p in peers):
        fail(f"the headless Service does not carry the cluster port {cluster_port}")
    sleep = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    needed = sleep + pingora["grace_period_seconds"] + pingora["graceful_shutdown_timeout_seconds"]
    if pod["terminationGracePeriodSeconds"] < needed:
        fail(f"terminationGracePeriodSeconds {pod['terminationGracePeriodSeconds']} < {needed}")
    period = container["readinessProbe"]["periodSeconds"]
    if sleep < 2 * period:
        fail(f"preStop sleeps {sleep} s, under two readiness periods ({period} s)")
    print(f"deploy/k8s: {len(manifests)} manifests valid against Kubernetes {version}; "
          f"config valid; shutdown {needed} s within {pod['terminationGracePeriodSeconds']} s")


if __name__ == "__main__":
    main(*sys.argv[1:])

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
import pathlib
import subprocess
import sys
import tempfile

import yaml

HERE = pathlib.Path(__file__).resolve().parent.parent / "deploy" / "k8s"


def fail(msg):
    sys.exit(f"deploy/k8s: {msg}")


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
            docs[doc["kind"]] = doc
    config_text = docs["ConfigMap"]["data"]["imgate.yaml"]
    with tempfile.TemporaryDirectory() as tmp:
        config = pathlib.Path(tmp) / "imgate.yaml"
        config.write_text(config_text)
        run = subprocess.run([binary, "--validate", str(config)], capture_output=True, text=True)
        if run.returncode != 0:
            fail(f"the ConfigMap's imgate.yaml: {run.stdout}{run.stderr}")

    pingora = yaml.safe_load(config_text)["pingora"]
    pod = docs["StatefulSet"]["spec"]["template"]["spec"]
    container = pod["containers"][0]
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

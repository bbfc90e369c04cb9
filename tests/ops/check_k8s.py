#!/usr/bin/env python3
"""deploy/kubernetes/ against what rnnd needs of it. Debian 12 has no
offline Kubernetes validator (kubectl, its kubernetes-client package
included, asks an API server even for --dry-run=client), so this parses
every manifest with python3-yaml and checks the fields by hand: each object
has apiVersion, kind and a name; the Deployment's probes hit /healthz and
/readyz on the port the container opens, it runs as non-root on a read-only
root file system, takes the token from the Secret and mounts the claim and
the config that exist; its grace period is longer than the config's
drain_timeout; the autoscaler targets it; the Service selects its pods; the
training Job runs mpirun rnnd train into the shared model folder.

    python3 tests/ops/check_k8s.py deploy/kubernetes
"""
import os
import sys

try:
    import yaml
except ImportError:
    print("ops: SKIP the Kubernetes manifests: no python3-yaml (apt-get install python3-yaml)")
    sys.exit(0)

folder = sys.argv[1]
fails = []


def check(ok, what):
    if not ok:
        fails.append(what)


objs = []
for f in sorted(os.listdir(folder)):
    if f.endswith(".yaml"):
        with open(os.path.join(folder, f)) as fh:
            for doc in yaml.safe_load_all(fh):
                if doc:
                    doc["_file"] = f
                    objs.append(doc)
by = {}
for o in objs:
    check(all(k in o for k in ("apiVersion", "kind", "metadata")) and o["metadata"].get("name"),
          "%s: an object without apiVersion, kind or metadata.name" % o["_file"])
    by.setdefault(o.get("kind"), {})[o["metadata"]["name"]] = o

for kind in ("Deployment", "Service", "HorizontalPodAutoscaler", "PersistentVolumeClaim", "ConfigMap", "Secret", "Job"):
    check(kind in by, "no %s" % kind)
if fails:
    sys.exit("ops: FAIL: " + "; ".join(fails))

dep = by["Deployment"]["rnnd"]
pod = dep["spec"]["template"]["spec"]
c = pod["containers"][0]
labels = dep["spec"]["template"]["metadata"]["labels"]
check(dep["spec"]["selector"]["matchLabels"].items() <= labels.items(), "the Deployment's selector misses its pods")
ports = {p["name"]: p["containerPort"] for p in c["ports"]}
for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
    h = c.get(probe, {}).get("httpGet", {})
    check(h.get("path") == path and (h.get("port") in ports or h.get("port") in ports.values()),
          "%s is not GET %s on the container's port" % (probe, path))
sc, psc = c.get("securityContext", {}), pod.get("securityContext", {})
check(psc.get("runAsNonRoot") is True and psc.get("runAsUser", 0) != 0, "the pod may run as root")
check(sc.get("readOnlyRootFilesystem") is True, "the root file system is writable")
check(sc.get("allowPrivilegeEscalation") is False and "ALL" in sc.get("capabilities", {}).get("drop", []),
      "the container keeps privileges")
check("requests" in c.get("resources", {}) and "limits" in c["resources"], "no resources")
env = {e["name"]: e for e in c.get("env", [])}
ref = env.get("RNND_AUTH_TOKEN", {}).get("valueFrom", {}).get("secretKeyRef", {})
check(ref.get("name") in by["Secret"] and ref.get("key") in by["Secret"][ref.get("name", "")].get("stringData", {}),
      "RNND_AUTH_TOKEN does not come from the Secret")
mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
vols = {v["name"]: v for v in pod["volumes"]}
check(mounts.get("models") == "/var/lib/rnnd" and
      vols["models"]["persistentVolumeClaim"]["claimName"] in by["PersistentVolumeClaim"],
      "the models are not on the claim")
check("ReadWriteMany" in by["PersistentVolumeClaim"]["rnnd-models"]["spec"]["accessModes"],
      "the claim cannot be mounted by several replicas")
cm = by["ConfigMap"].get(vols["config"]["configMap"]["name"])
check(cm is not None and mounts.get("config") == "/etc/rnnd" and "--config" in c["args"] and
      "/etc/rnnd/rnnd.conf" in c["args"], "the config is not mounted where serve reads it")
conf = dict(line.split("=", 1) for line in cm["data"]["rnnd.conf"].splitlines()
            if "=" in line and not line.lstrip().startswith("#"))
conf = {k.strip(): v.strip() for k, v in conf.items()}
check(conf.get("listen") == "0.0.0.0" and conf.get("port") == str(ports["http"]), "the daemon listens elsewhere")
check(pod["terminationGracePeriodSeconds"] > int(conf.get("drain_timeout", 30)),
      "terminationGracePeriodSeconds is not longer than drain_timeout")
check(int(conf.get("watch_s", 2)) > 0, "the replicas do not watch the shared folder")
hpa = by["HorizontalPodAutoscaler"]["rnnd"]["spec"]
check(hpa["scaleTargetRef"]["kind"] == "Deployment" and hpa["scaleTargetRef"]["name"] == "rnnd" and
      hpa["minReplicas"] >= 2, "the autoscaler does not scale the Deployment from 2")
svc = by["Service"]["rnnd"]["spec"]
check(svc["selector"].items() <= labels.items() and
      all(p["targetPort"] in ports or p["targetPort"] in ports.values() for p in svc["ports"]),
      "the Service does not reach the pods' port")
job = next(iter(by["Job"].values()))
jc = job["spec"]["template"]["spec"]["containers"][0]
cmd = jc["command"]
check(cmd[0] == "mpirun" and "rnnd" in cmd and cmd[cmd.index("rnnd") + 1] == "train" and
      any(a.startswith("/var/lib/rnnd/models/") for a in cmd), "the Job does not run mpirun rnnd train into the models")
check(job["spec"]["template"]["spec"]["securityContext"].get("runAsNonRoot") is True, "the Job may run as root")
if fails:
    sys.exit("ops: FAIL: " + "; ".join(fails))
print("ops: deploy/kubernetes: %d objects parse and fit (%s); no offline API validator in Debian 12: "
      "kubectl --dry-run needs a server" % (len(objs), ", ".join(sorted(by))))

#!/usr/bin/env python3
"""Policy checks on rendered manifests (stdin) that a schema cannot express.

- RBAC: no "*" in apiGroups, resources, verbs or resourceNames, and no escalation verbs.
- Every Deployment pod runs under the restricted Pod Security profile's rules. A DaemonSet that
  must run privileged on the host (the node agent: netlink, LVM) says why in the pod annotation
  `agility.dev/privileged-reason`; it is then exempt from the rules privileged host access
  breaks (non-root, host namespaces, privilege escalation, capabilities), not from the others.
Prints one line per violation and exits 1 when there is any.
"""

import sys

import yaml

FORBIDDEN_VERBS = {"escalate", "bind", "impersonate"}


def rbac_problems(doc):
    name = f"{doc['kind']}/{doc['metadata']['name']}"
    for i, rule in enumerate(doc.get("rules") or []):
        for field in ("apiGroups", "resources", "verbs", "resourceNames", "nonResourceURLs"):
            values = rule.get(field) or []
            if any("*" in v for v in values):
                yield f"{name}: rule {i} has a wildcard in {field}: {values}"
        bad = FORBIDDEN_VERBS.intersection(rule.get("verbs") or [])
        if bad:
            yield f"{name}: rule {i} grants {sorted(bad)}"


PRIVILEGED_REASON = "agility.dev/privileged-reason"


def pod_problems(doc):
    name = f"{doc['kind']}/{doc['metadata']['name']}"
    spec = doc["spec"]["template"]["spec"]
    annotations = doc["spec"]["template"].get("metadata", {}).get("annotations") or {}
    privileged_ok = doc["kind"] == "DaemonSet" and bool(annotations.get(PRIVILEGED_REASON, "").strip())
    pod_sc = spec.get("securityContext") or {}
    if privileged_ok:
        pass
    elif pod_sc.get("runAsNonRoot") is not True:
        yield f"{name}: pod securityContext.runAsNonRoot is not true"
    if (pod_sc.get("seccompProfile") or {}).get("type") != "RuntimeDefault":
        yield f"{name}: pod seccompProfile is not RuntimeDefault"
    if not privileged_ok and (spec.get("hostNetwork") or spec.get("hostPID") or spec.get("hostIPC")):
        yield f"{name}: pod uses host namespaces"
    for c in (spec.get("initContainers") or []) + spec["containers"]:
        sc = c.get("securityContext") or {}
        cname = f"{name} container {c['name']}"
        if sc.get("readOnlyRootFilesystem") is not True:
            yield f"{cname}: readOnlyRootFilesystem is not true"
        for probe in ("livenessProbe", "readinessProbe"):
            if probe not in c:
                yield f"{cname}: no {probe}"
        if "resources" not in c or "requests" not in c["resources"]:
            yield f"{cname}: no resource requests"
        if privileged_ok:
            continue
        if sc.get("allowPrivilegeEscalation") is not False:
            yield f"{cname}: allowPrivilegeEscalation is not false"
        if sc.get("privileged"):
            yield f"{cname}: privileged"
        if (sc.get("capabilities") or {}).get("drop") != ["ALL"]:
            yield f"{cname}: capabilities.drop is not [ALL]"
        if sc.get("capabilities", {}).get("add"):
            yield f"{cname}: adds capabilities"


def main():
    problems = []
    count = 0
    for doc in yaml.safe_load_all(sys.stdin):
        if not doc:
            continue
        count += 1
        kind = doc.get("kind")
        if kind in ("ClusterRole", "Role"):
            problems.extend(rbac_problems(doc))
        elif kind in ("Deployment", "DaemonSet", "StatefulSet"):
            problems.extend(pod_problems(doc))
    for p in problems:
        print(f"policy: {p}")
    print(f"policy: {count} objects checked, {len(problems)} problems", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

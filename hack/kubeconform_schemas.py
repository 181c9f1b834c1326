#!/usr/bin/env python3
"""Writes kubeconform JSON schemas offline, so chart validation never needs the network.

  builtin <swagger.json> <out-dir> <k8s-version>
      One strict standalone schema per built-in kind from the Kubernetes OpenAPI v2 document, laid
      out as kubeconform's default `<out-dir>/v<version>-standalone-strict/<kind><suffix>.json`.
  crds <swagger.json> <out-dir> <crd.yaml>...
      One strict schema per served version of each CRD, laid out as
      `<out-dir>/<group>/<kind>_<version>.json` (kubeconform template
      `{{ .Group }}/{{ .ResourceKind }}_{{ .ResourceAPIVersion }}.json`).

"Strict" mirrors what the API server does: an object with declared properties rejects unknown
fields, because the server would prune or reject them and a typo would silently do nothing.
Optional scalar fields may be null, since the API server treats null as "unset".
"""

import copy
import json
import os
import sys

import yaml

REF_PREFIX = "#/definitions/"
QUANTITY = "io.k8s.apimachinery.pkg.api.resource.Quantity"
INT_OR_STRING = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"
OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"


def kind_suffix(group, version):
    # Same derivation as kubeconform's schemaPath: first label of the group plus the version.
    if not group:
        return "-" + version.lower()
    return "-" + group.split(".")[0].lower() + "-" + version.lower()


def special_definition(name):
    # These two are strings in the OpenAPI document but accept numbers on the wire.
    if name == QUANTITY:
        return {"anyOf": [{"type": "string"}, {"type": "number"}]}
    if name == INT_OR_STRING:
        return {"anyOf": [{"type": "string"}, {"type": "integer"}]}
    return None


def strictify(node, preserve_unknown=False):
    """Rewrites one schema node in place: closed objects, nullable optionals, int-or-string."""
    if isinstance(node, list):
        for item in node:
            strictify(item)
        return
    if not isinstance(node, dict):
        return
    preserve = node.get("x-kubernetes-preserve-unknown-fields") is True
    if node.get("format") == "int-or-string" or node.get("x-kubernetes-int-or-string") is True:
        node.pop("type", None)
        node.pop("format", None)
        node["anyOf"] = [{"type": "string"}, {"type": "integer"}]
    if node.get("nullable") is True and isinstance(node.get("type"), str):
        node["type"] = [node["type"], "null"]
    props = node.get("properties")
    if isinstance(props, dict):
        required = set(node.get("required", []))
        for key, child in props.items():
            strictify(child)
            if key not in required:
                props[key] = allow_null(child)
        if "additionalProperties" not in node and not (preserve or preserve_unknown):
            node["additionalProperties"] = False
    for key in ("items", "additionalProperties", "not"):
        if isinstance(node.get(key), (dict, list)):
            strictify(node[key])
    for key in ("allOf", "anyOf", "oneOf"):
        if isinstance(node.get(key), list):
            for item in node[key]:
                strictify(item)


def allow_null(schema):
    if not isinstance(schema, dict):
        return schema
    t = schema.get("type")
    if isinstance(t, str):
        schema["type"] = [t, "null"]
        return schema
    if isinstance(t, list):
        if "null" not in t:
            t.append("null")
        return schema
    # References stay as they are: wrapping them in anyOf-with-null buries every real error under
    # "got object, want null" noise, and nothing we render writes null objects.
    return schema


def collect_refs(node, found):
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(REF_PREFIX):
            found.add(ref[len(REF_PREFIX):])
        for value in node.values():
            collect_refs(value, found)
    elif isinstance(node, list):
        for value in node:
            collect_refs(value, found)


class Definitions:
    """The swagger definitions, each made strict once, and closures of what a schema references."""

    def __init__(self, swagger):
        self.raw = swagger["definitions"]
        self.done = {}

    def get(self, name):
        if name not in self.done:
            special = special_definition(name)
            if special is not None:
                self.done[name] = special
            else:
                d = copy.deepcopy(self.raw[name])
                d.pop("x-kubernetes-group-version-kind", None)
                strictify(d)
                # Scalar definitions (Time, MicroTime, ...) are only ever used by reference; let
                # them be null like any optional scalar (kubectl writes `creationTimestamp: null`).
                if isinstance(d.get("type"), str) and d["type"] != "object":
                    d["type"] = [d["type"], "null"]
                self.done[name] = d
        return self.done[name]

    def closure(self, root):
        """Every definition reachable from `root`, so each file stands alone (recursion included)."""
        seen = set()
        todo = set()
        collect_refs(root, todo)
        while todo:
            name = todo.pop()
            if name in seen:
                continue
            seen.add(name)
            collect_refs(self.get(name), todo)
        return {name: self.get(name) for name in sorted(seen)}


def write_json(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1, sort_keys=True)
        f.write("\n")
    os.replace(tmp, path)


def pin_type_meta(schema, group, version, kind):
    # kubeconform picks the file by apiVersion/kind already; pinning them also rejects a schema
    # being reused for the wrong kind.
    api_version = f"{group}/{version}" if group else version
    props = schema.setdefault("properties", {})
    props["apiVersion"] = {"type": "string", "enum": [api_version]}
    props["kind"] = {"type": "string", "enum": [kind]}


def builtin(swagger_path, out_dir, k8s_version):
    with open(swagger_path, encoding="utf-8") as f:
        swagger = json.load(f)
    defs = Definitions(swagger)
    target = os.path.join(out_dir, f"v{k8s_version.lstrip('v')}-standalone-strict")
    count = 0
    for name, raw in sorted(swagger["definitions"].items()):
        for gvk in raw.get("x-kubernetes-group-version-kind", []):
            group, version, kind = gvk.get("group", ""), gvk["version"], gvk["kind"]
            # Only top-level objects carry a kind and metadata; list and option types are skipped.
            if "metadata" not in raw.get("properties", {}) or kind.endswith("List"):
                continue
            schema = copy.deepcopy(defs.get(name))
            pin_type_meta(schema, group, version, kind)
            schema["definitions"] = defs.closure(schema)
            filename = f"{kind.lower()}{kind_suffix(group, version)}.json"
            write_json(os.path.join(target, filename), schema)
            count += 1
    print(f"wrote {count} built-in schemas to {target}", file=sys.stderr)


def crds(swagger_path, out_dir, crd_paths):
    with open(swagger_path, encoding="utf-8") as f:
        swagger = json.load(f)
    defs = Definitions(swagger)
    count = 0
    for path in crd_paths:
        with open(path, encoding="utf-8") as f:
            docs = [d for d in yaml.safe_load_all(f) if d]
        for crd in docs:
            if crd.get("kind") != "CustomResourceDefinition":
                raise SystemExit(f"{path}: not a CustomResourceDefinition")
            spec = crd["spec"]
            group, kind = spec["group"], spec["names"]["kind"]
            for version in spec["versions"]:
                if not version.get("served", False):
                    continue
                schema = copy.deepcopy(version["schema"]["openAPIV3Schema"])
                strictify(schema)
                props = schema.setdefault("properties", {})
                # The CRD schema leaves metadata open; validate it as the API server does.
                props["metadata"] = {"$ref": REF_PREFIX + OBJECT_META}
                pin_type_meta(schema, group, version["name"], kind)
                schema["definitions"] = defs.closure(schema)
                filename = f"{kind.lower()}_{version['name']}.json"
                write_json(os.path.join(out_dir, group, filename), schema)
                count += 1
    print(f"wrote {count} CRD schemas to {out_dir}", file=sys.stderr)


def main(argv):
    if len(argv) >= 4 and argv[0] == "builtin":
        builtin(argv[1], argv[2], argv[3])
    elif len(argv) >= 3 and argv[0] == "crds":
        crds(argv[1], argv[2], argv[3:])
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

#!/usr/bin/env python3
"""Offline checks of the live-path configuration, run by .ci/lint.sh.

Subcommands (each prints one line per problem and exits 1 when there is any):

  extract-crd-schema CRD_YAML OUT_JSON
      Write spec.versions[name=v2].schema.openAPIV3Schema of a Cilium CRD to OUT_JSON, made strict:
      every object schema that lists its properties rejects other fields, as the API server does with
      fieldValidation=Strict (a misspelt or removed field is an error, not silently pruned).

  policies SCHEMA_DIR PATH...
      Validate every CiliumNetworkPolicy / CiliumClusterwideNetworkPolicy document in the YAML files
      under PATH against the strict CRD schemas from SCHEMA_DIR (ciliumnetworkpolicies.yaml,
      ciliumclusterwidenetworkpolicies.yaml). Documents of other kinds are listed as not checked.

  helm-values VALUES_YAML CHART_DEFAULTS_YAML
      Every key set in VALUES_YAML exists in the chart's default values (the chart's JSON schema does
      not reject unknown keys, so a typo would otherwise be ignored by Helm), and
      hubble.metrics.enabled is a plain list of metric names that includes dns, drop and tcp.

  kind-config CLUSTER_YAML VALUES_YAML STACK_YAML
      The kind config and the Helm values agree with each other and with fixtures/stack.yaml:
      control plane + at least two workers, node images pinned by digest, no default CNI, no
      kube-proxy, pod/service ranges that do not overlap each other or the outside hosts' Docker
      network, and a control-plane port mapping 127.0.0.1:4245 -> the Hubble Relay NodePort.

Needs PyYAML and jsonschema (both installed by .ci/setup-lint.sh into .tools/lint-venv).
"""

from __future__ import annotations

import copy
import ipaddress
import json
import re
import sys
from pathlib import Path
from typing import Any, Iterable

import yaml

CILIUM_POLICY_KINDS = {
    "CiliumNetworkPolicy": "ciliumnetworkpolicies.yaml",
    "CiliumClusterwideNetworkPolicy": "ciliumclusterwidenetworkpolicies.yaml",
}
REQUIRED_METRICS = ("dns", "drop", "tcp")
RELAY_HOST_PORT = 4245
RELAY_LISTEN_ADDRESS = "127.0.0.1"
DIGEST_IMAGE = re.compile(r"^kindest/node:v\d+\.\d+\.\d+@sha256:[0-9a-f]{64}$")


class Problems:
    """Collects problems; each is printed as `what: message`."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, where: str, message: str) -> None:
        self.items.append(f"{where}: {message}")

    def exit(self, ok_message: str) -> int:
        for item in self.items:
            print(item)
        if self.items:
            return 1
        print(ok_message)
        return 0


def load_yaml(path: Path) -> Any:
    with path.open(encoding="utf-8") as handle:
        return yaml.safe_load(handle)


# ---- CRD schema -----------------------------------------------------------------------------------


def crd_v2_schema(crd_path: Path) -> dict[str, Any]:
    crd = load_yaml(crd_path)
    try:
        versions = crd["spec"]["versions"]
    except (KeyError, TypeError) as exc:
        raise ValueError(f"{crd_path}: not a CustomResourceDefinition with spec.versions") from exc
    for version in versions:
        if version.get("name") == "v2":
            schema = version.get("schema", {}).get("openAPIV3Schema")
            if not isinstance(schema, dict):
                raise ValueError(f"{crd_path}: version v2 has no schema.openAPIV3Schema")
            return schema
    raise ValueError(f"{crd_path}: no version named v2")


def make_strict(schema: Any) -> Any:
    """Copy of an OpenAPI v3 schema where object schemas with `properties` forbid other fields.

    Schemas that already say something about additional properties, or that preserve unknown
    fields, are left as they are. anyOf/oneOf branches (which only restate `required`) are not
    objects and stay untouched.
    """
    schema = copy.deepcopy(schema)

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if (
                node.get("type") == "object"
                and isinstance(node.get("properties"), dict)
                and "additionalProperties" not in node
                and not node.get("x-kubernetes-preserve-unknown-fields", False)
            ):
                node["additionalProperties"] = False
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    return schema


def cmd_extract_crd_schema(crd: str, out: str) -> int:
    schema = make_strict(crd_v2_schema(Path(crd)))
    Path(out).write_text(json.dumps(schema, indent=1, sort_keys=True), encoding="utf-8")
    print(f"wrote the strict v2 schema of {crd} to {out}")
    return 0


# ---- policies ---------------------------------------------------------------------------------------


def format_checker():
    import jsonschema

    checker = jsonschema.FormatChecker(formats=())

    @checker.checks("cidr", raises=ValueError)
    def is_cidr(value: object) -> bool:
        # The API server parses `format: cidr` with Go's net.ParseCIDR: a prefix length is required.
        if not isinstance(value, str):
            return True
        if "/" not in value:
            raise ValueError(f"{value!r} has no prefix length")
        ipaddress.ip_network(value, strict=False)
        return True

    return checker


def yaml_files(paths: Iterable[str]) -> list[Path]:
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file()))
        elif path.is_file():
            found.append(path)
    return found


def json_path(error) -> str:
    parts = []
    for part in error.absolute_path:
        parts.append(f"[{part}]" if isinstance(part, int) else f".{part}")
    return "".join(parts) or "(document)"


def cmd_policies(schema_dir: str, paths: list[str]) -> int:
    import jsonschema

    problems = Problems()
    validators = {}
    for kind, file_name in CILIUM_POLICY_KINDS.items():
        crd_path = Path(schema_dir) / file_name
        if not crd_path.is_file():
            problems.add(str(crd_path), "missing: cannot validate " + kind)
            continue
        schema = make_strict(crd_v2_schema(crd_path))
        validators[kind] = jsonschema.Draft7Validator(schema, format_checker=format_checker())
    if problems.items:
        return problems.exit("")

    files = yaml_files(paths)
    if not files:
        problems.add(" ".join(paths), "no YAML files found")
    checked = 0
    for path in files:
        try:
            with path.open(encoding="utf-8") as handle:
                documents = list(yaml.safe_load_all(handle))
        except yaml.YAMLError as exc:
            problems.add(str(path), f"not valid YAML: {exc}")
            continue
        for index, doc in enumerate(documents, start=1):
            if doc is None:
                continue
            where = f"{path} (document {index})"
            if not isinstance(doc, dict):
                problems.add(where, "not a mapping")
                continue
            kind = doc.get("kind")
            name = (doc.get("metadata") or {}).get("name") if isinstance(doc.get("metadata"), dict) else None
            if name:
                where = f"{path} ({kind} {name})"
            if kind not in CILIUM_POLICY_KINDS:
                print(f"{where}: not checked (kind {kind!r} is not a Cilium policy)")
                continue
            if doc.get("apiVersion") != "cilium.io/v2":
                problems.add(where, f"apiVersion must be cilium.io/v2, not {doc.get('apiVersion')!r}")
            errors = sorted(validators[kind].iter_errors(doc), key=lambda e: list(e.absolute_path))
            for error in errors:
                problems.add(where, f"{json_path(error)}: {error.message}")
            checked += 1
    return problems.exit(f"{checked} Cilium policies in {len(files)} files match the CRD schemas (strict)")


# ---- Helm values ------------------------------------------------------------------------------------


def unknown_keys(values: Any, defaults: Any, prefix: str = "") -> list[str]:
    """Keys of `values` that the chart's defaults do not have, where the defaults are a mapping.

    Where the default is not a mapping (null, a scalar, a list, or an empty map meant for free-form
    entries such as annotations), anything below is accepted.
    """
    if not isinstance(values, dict) or not isinstance(defaults, dict) or not defaults:
        return []
    found = []
    for key, value in values.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if key not in defaults:
            found.append(path)
        else:
            found.extend(unknown_keys(value, defaults[key], path))
    return found


def cmd_helm_values(values_path: str, defaults_path: str) -> int:
    problems = Problems()
    values = load_yaml(Path(values_path))
    defaults = load_yaml(Path(defaults_path))
    if not isinstance(values, dict):
        problems.add(values_path, "not a mapping")
        return problems.exit("")
    for key in unknown_keys(values, defaults):
        problems.add(values_path, f"{key} is not a value of the chart (not in {defaults_path})")

    metrics = (((values.get("hubble") or {}).get("metrics") or {}).get("enabled"))
    if not isinstance(metrics, list) or not all(isinstance(m, str) and m for m in metrics):
        problems.add(values_path, "hubble.metrics.enabled must be a list of metric names (strings)")
    else:
        with_options = [m for m in metrics if ":" in m or ";" in m]
        if with_options:
            problems.add(
                values_path,
                "hubble.metrics.enabled must hold plain metric names (the policy model reads them); "
                f"these carry options: {', '.join(with_options)}",
            )
        missing = [m for m in REQUIRED_METRICS if m not in metrics]
        if missing:
            problems.add(values_path, f"hubble.metrics.enabled lacks {', '.join(missing)}")
        duplicates = sorted({m for m in metrics if metrics.count(m) > 1})
        if duplicates:
            problems.add(values_path, f"hubble.metrics.enabled repeats {', '.join(duplicates)}")
    return problems.exit(f"{values_path}: every key is a chart value; hubble metrics: {metrics}")


# ---- kind config ------------------------------------------------------------------------------------


def parse_network(text: Any, where: str, problems: Problems):
    try:
        return ipaddress.ip_network(str(text), strict=True)
    except ValueError as exc:
        problems.add(where, f"{text!r} is not a network address: {exc}")
        return None


def cmd_kind_config(cluster_path: str, values_path: str, stack_path: str) -> int:
    problems = Problems()
    cluster = load_yaml(Path(cluster_path))
    values = load_yaml(Path(values_path)) or {}
    stack = load_yaml(Path(stack_path)) or {}
    if not isinstance(cluster, dict):
        problems.add(cluster_path, "not a mapping")
        return problems.exit("")

    if cluster.get("kind") != "Cluster" or cluster.get("apiVersion") != "kind.x-k8s.io/v1alpha4":
        problems.add(cluster_path, "must be kind: Cluster, apiVersion: kind.x-k8s.io/v1alpha4")
    nodes = cluster.get("nodes") or []
    roles = [n.get("role") for n in nodes if isinstance(n, dict)]
    if roles.count("control-plane") < 1:
        problems.add(cluster_path, "needs a control-plane node")
    if roles.count("worker") < 2:
        problems.add(cluster_path, f"needs at least two workers (cross-node traffic), has {roles.count('worker')}")
    images = set()
    for index, node in enumerate(nodes):
        image = node.get("image") if isinstance(node, dict) else None
        if not isinstance(image, str) or not DIGEST_IMAGE.match(image):
            problems.add(cluster_path, f"nodes[{index}].image must be kindest/node:vX.Y.Z@sha256:<digest>, is {image!r}")
        else:
            images.add(image)
    if len(images) > 1:
        problems.add(cluster_path, f"nodes use different images: {sorted(images)}")

    net = cluster.get("networking") or {}
    if net.get("disableDefaultCNI") is not True:
        problems.add(cluster_path, "networking.disableDefaultCNI must be true (Cilium is the CNI)")
    if net.get("kubeProxyMode") != "none":
        problems.add(cluster_path, 'networking.kubeProxyMode must be "none" (Cilium replaces kube-proxy)')
    pods = parse_network(net.get("podSubnet"), f"{cluster_path}: networking.podSubnet", problems)
    services = parse_network(net.get("serviceSubnet"), f"{cluster_path}: networking.serviceSubnet", problems)
    if pods and services and pods.overlaps(services):
        problems.add(cluster_path, f"podSubnet {pods} overlaps serviceSubnet {services}")
    outside = ((stack.get("outside") or {}).get("network") or {}) if isinstance(stack, dict) else {}
    outside_net = parse_network(outside.get("subnet"), f"{stack_path}: outside.network.subnet", problems)
    if outside_net:
        for label, rng in (("podSubnet", pods), ("serviceSubnet", services)):
            if rng and rng.overlaps(outside_net):
                problems.add(cluster_path, f"{label} {rng} overlaps the outside hosts' network {outside_net} ({stack_path})")

    relay = ((values.get("hubble") or {}).get("relay") or {}) if isinstance(values, dict) else {}
    service = relay.get("service") or {}
    node_port = service.get("nodePort")
    if relay.get("enabled") is not True:
        problems.add(values_path, "hubble.relay.enabled must be true")
    if service.get("type") != "NodePort" or not isinstance(node_port, int):
        problems.add(values_path, "hubble.relay.service must be type NodePort with a nodePort")
    elif not 30000 <= node_port <= 32767:
        problems.add(values_path, f"hubble.relay.service.nodePort {node_port} is outside 30000-32767")
    else:
        mappings = [
            m
            for n in nodes
            if isinstance(n, dict) and n.get("role") == "control-plane"
            for m in (n.get("extraPortMappings") or [])
        ]
        match = [m for m in mappings if m.get("containerPort") == node_port]
        if not match:
            problems.add(cluster_path, f"no control-plane extraPortMappings entry for the Relay NodePort {node_port}")
        for m in match:
            if m.get("hostPort") != RELAY_HOST_PORT:
                problems.add(cluster_path, f"the Relay port mapping must use hostPort {RELAY_HOST_PORT}, uses {m.get('hostPort')}")
            if m.get("listenAddress") != RELAY_LISTEN_ADDRESS:
                problems.add(
                    cluster_path,
                    f"the Relay port mapping must listen on {RELAY_LISTEN_ADDRESS} only, not {m.get('listenAddress')!r}",
                )
            if m.get("protocol", "TCP") != "TCP":
                problems.add(cluster_path, "the Relay port mapping must be TCP")
    return problems.exit(
        f"{cluster_path}: {len(nodes)} nodes on {sorted(images)}; Relay at {RELAY_LISTEN_ADDRESS}:{RELAY_HOST_PORT} -> NodePort {node_port}"
    )


# ---- main -------------------------------------------------------------------------------------------

USAGE = __doc__ or ""


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else 2
    command, args = argv[0], argv[1:]
    try:
        if command == "extract-crd-schema" and len(args) == 2:
            return cmd_extract_crd_schema(*args)
        if command == "policies" and len(args) >= 2:
            return cmd_policies(args[0], args[1:])
        if command == "helm-values" and len(args) == 2:
            return cmd_helm_values(*args)
        if command == "kind-config" and len(args) == 3:
            return cmd_kind_config(*args)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        print(f"{command}: {exc}")
        return 1
    print(f"unknown command or wrong arguments: {' '.join(argv)}\n\n{USAGE}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

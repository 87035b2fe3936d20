"""Tests of lint_configs.py: each check must reject the mistake it exists for.

Run: HARNESS_SCHEMAS_DIR=../shared/schemas python -m unittest discover -s scripts/lint -p 'test_*.py'
(.ci/lint.sh runs them before trusting the checks.) The policy tests use the real Cilium 1.19 CRDs.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
import textwrap
import unittest
from pathlib import Path

import lint_configs

REPO = Path(__file__).resolve().parents[2]
SCHEMAS = Path(os.environ.get("HARNESS_SCHEMAS_DIR", REPO.parent / "shared" / "schemas")) / "cilium-1.19"

GOOD_CNP = """\
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: good, namespace: backend}
spec:
  endpointSelector: {matchLabels: {app: api}}
  ingress:
  - fromCIDR: ["10.0.0.0/24"]
    toPorts:
    - ports: [{port: "8080", protocol: TCP}]
      rules:
        http: [{method: GET, path: "/api/.*"}]
"""

GOOD_KIND = """\
kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
nodes:
- role: control-plane
  image: kindest/node:v1.34.11@sha256:{digest}
  extraPortMappings:
  - {{containerPort: 31245, hostPort: 4245, listenAddress: "127.0.0.1", protocol: TCP}}
- role: worker
  image: kindest/node:v1.34.11@sha256:{digest}
- role: worker
  image: kindest/node:v1.34.11@sha256:{digest}
networking:
  disableDefaultCNI: true
  kubeProxyMode: "none"
  podSubnet: "10.244.0.0/16"
  serviceSubnet: "10.96.0.0/16"
""".format(digest="a" * 64)

GOOD_VALUES = """\
kubeProxyReplacement: true
hubble:
  metrics:
    enabled: [dns, drop, tcp]
  relay:
    enabled: true
    service: {type: NodePort, nodePort: 31245}
"""

DEFAULTS = """\
kubeProxyReplacement: "false"
podAnnotations: {}
hubble:
  metrics:
    enabled: ~
  relay:
    enabled: false
    service: {type: ClusterIP, nodePort: 31234}
"""

STACK = """\
outside:
  network: {name: harness-kind, subnet: 10.0.0.0/11, ipRange: 10.31.0.0/16, gateway: 10.31.255.254}
"""


class CheckCase(unittest.TestCase):
    def setUp(self) -> None:
        self.dir = tempfile.TemporaryDirectory()
        self.root = Path(self.dir.name)

    def tearDown(self) -> None:
        self.dir.cleanup()

    def write(self, name: str, text: str) -> str:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return str(path)

    def run_main(self, *args: str) -> tuple[int, str]:
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            code = lint_configs.main(list(args))
        return code, out.getvalue()


class PolicyTests(CheckCase):
    def check(self, text: str) -> tuple[int, str]:
        self.write("policies/p.yaml", text)
        return self.run_main("policies", str(SCHEMAS), str(self.root / "policies"))

    def test_valid_policy_passes(self):
        code, out = self.check(GOOD_CNP)
        self.assertEqual(code, 0, out)
        self.assertIn("1 Cilium policies", out)

    def test_misspelt_field_is_rejected(self):
        code, out = self.check(GOOD_CNP.replace("toPorts:", "toPort:"))
        self.assertEqual(code, 1, out)
        self.assertIn("'toPort' was unexpected", out)

    def test_cidr_without_prefix_is_rejected(self):
        code, out = self.check(GOOD_CNP.replace('"10.0.0.0/24"', '"10.0.0.7"'))
        self.assertEqual(code, 1, out)
        self.assertIn("fromCIDR[0]", out)

    def test_policy_without_rules_is_rejected(self):
        text = "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: x}\nspec:\n  endpointSelector: {}\n"
        code, out = self.check(text)
        self.assertEqual(code, 1, out)

    def test_wrong_type_is_rejected(self):
        code, out = self.check(GOOD_CNP.replace('port: "8080"', "port: [8080]"))
        self.assertEqual(code, 1, out)
        self.assertIn("port", out)

    def test_every_document_of_a_file_is_checked(self):
        code, out = self.check(GOOD_CNP + "---\n" + GOOD_CNP.replace("name: good", "name: bad").replace("ingress:", "ingres:"))
        self.assertEqual(code, 1, out)
        self.assertIn("CiliumNetworkPolicy bad", out)
        self.assertNotIn("CiliumNetworkPolicy good", out)

    def test_clusterwide_policy_uses_its_own_schema(self):
        text = GOOD_CNP.replace("kind: CiliumNetworkPolicy", "kind: CiliumClusterwideNetworkPolicy").replace(
            "namespace: backend", ""
        )
        code, out = self.check(text)
        self.assertEqual(code, 0, out)

    def test_wrong_api_version_is_rejected(self):
        code, out = self.check(GOOD_CNP.replace("cilium.io/v2", "cilium.io/v2alpha1"))
        self.assertEqual(code, 1, out)
        self.assertIn("apiVersion", out)

    def test_empty_directory_is_an_error(self):
        (self.root / "policies").mkdir()
        code, out = self.run_main("policies", str(SCHEMAS), str(self.root / "policies"))
        self.assertEqual(code, 1, out)

    def test_strict_schema_keeps_unconstrained_objects_open(self):
        schema = lint_configs.make_strict({"type": "object", "properties": {"metadata": {"type": "object"}}})
        self.assertIs(schema["additionalProperties"], False)
        self.assertNotIn("additionalProperties", schema["properties"]["metadata"])


class HelmValuesTests(CheckCase):
    def check(self, values: str) -> tuple[int, str]:
        return self.run_main("helm-values", self.write("values.yaml", values), self.write("defaults.yaml", DEFAULTS))

    def test_valid_values_pass(self):
        code, out = self.check(GOOD_VALUES)
        self.assertEqual(code, 0, out)

    def test_unknown_key_is_rejected(self):
        code, out = self.check(GOOD_VALUES.replace("relay:", "relai:"))
        self.assertEqual(code, 1, out)
        self.assertIn("hubble.relai is not a value of the chart", out)

    def test_free_form_maps_accept_any_key(self):
        code, out = self.check(GOOD_VALUES + "podAnnotations: {team: net}\n")
        self.assertEqual(code, 0, out)

    def test_metric_with_options_is_rejected(self):
        code, out = self.check(GOOD_VALUES.replace("[dns, drop, tcp]", '["dns:query", drop, tcp]'))
        self.assertEqual(code, 1, out)
        self.assertIn("plain metric names", out)

    def test_missing_required_metric_is_rejected(self):
        code, out = self.check(GOOD_VALUES.replace("[dns, drop, tcp]", "[dns, drop]"))
        self.assertEqual(code, 1, out)
        self.assertIn("lacks tcp", out)

    def test_metrics_must_be_a_list(self):
        code, out = self.check(GOOD_VALUES.replace("[dns, drop, tcp]", '"{dns,drop,tcp}"'))
        self.assertEqual(code, 1, out)


class KindConfigTests(CheckCase):
    def check(self, kind: str = GOOD_KIND, values: str = GOOD_VALUES) -> tuple[int, str]:
        return self.run_main(
            "kind-config", self.write("cluster.yaml", kind), self.write("values.yaml", values), self.write("stack.yaml", STACK)
        )

    def test_valid_config_passes(self):
        code, out = self.check()
        self.assertEqual(code, 0, out)

    def test_image_without_digest_is_rejected(self):
        code, out = self.check(GOOD_KIND.replace("@sha256:" + "a" * 64, "", 1))
        self.assertEqual(code, 1, out)
        self.assertIn("nodes[0].image", out)

    def test_single_worker_is_rejected(self):
        kind = GOOD_KIND.replace("- role: worker\n  image: kindest/node:v1.34.11@sha256:" + "a" * 64 + "\n", "", 1)
        code, out = self.check(kind)
        self.assertEqual(code, 1, out)
        self.assertIn("two workers", out)

    def test_kube_proxy_is_rejected(self):
        code, out = self.check(GOOD_KIND.replace('kubeProxyMode: "none"', "kubeProxyMode: iptables"))
        self.assertEqual(code, 1, out)

    def test_default_cni_is_rejected(self):
        code, out = self.check(GOOD_KIND.replace("disableDefaultCNI: true", "disableDefaultCNI: false"))
        self.assertEqual(code, 1, out)

    def test_pod_range_inside_outside_network_is_rejected(self):
        code, out = self.check(GOOD_KIND.replace("10.244.0.0/16", "10.8.0.0/16"))
        self.assertEqual(code, 1, out)
        self.assertIn("overlaps the outside hosts' network", out)

    def test_relay_node_port_must_be_mapped(self):
        code, out = self.check(values=GOOD_VALUES.replace("31245", "31999"))
        self.assertEqual(code, 1, out)
        self.assertIn("NodePort 31999", out)

    def test_relay_mapping_must_stay_on_loopback(self):
        code, out = self.check(GOOD_KIND.replace('listenAddress: "127.0.0.1"', 'listenAddress: "0.0.0.0"'))
        self.assertEqual(code, 1, out)
        self.assertIn("127.0.0.1 only", out)

    def test_relay_must_be_a_node_port(self):
        code, out = self.check(values=GOOD_VALUES.replace("type: NodePort", "type: ClusterIP"))
        self.assertEqual(code, 1, out)


class RepositoryFilesTests(CheckCase):
    """The project's own files pass (the same checks .ci/lint.sh runs, here as tests)."""

    def test_project_kind_config_passes(self):
        code, out = self.run_main(
            "kind-config", str(REPO / "kind/cluster.yaml"), str(REPO / "kind/cilium-values.yaml"), str(REPO / "fixtures/stack.yaml")
        )
        self.assertEqual(code, 0, out)

    def test_project_helm_values_pass(self):
        code, out = self.run_main("helm-values", str(REPO / "kind/cilium-values.yaml"), str(SCHEMAS / "helm-values.yaml"))
        self.assertEqual(code, 0, out)


if __name__ == "__main__":
    unittest.main()

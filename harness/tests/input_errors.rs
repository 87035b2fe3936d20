//! What a person types and what a person reads: every bad input is refused with exit 2 and a message
//! naming the file, line and field and what to do; mistakes that are legal but suspicious are warnings;
//! `check` output is readable. Each test runs the built binary on the exact input.

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Run the harness in `cwd` with the repository as root and colour off.
fn harness_in(cwd: &Path, args: &[&str]) -> Out {
    let out = Command::new(env!("CARGO_BIN_EXE_harness"))
        .arg("--root")
        .arg(repo())
        .args(args)
        .current_dir(cwd)
        .env("NO_COLOR", "1")
        .output()
        .expect("the harness binary runs");
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

const HEAD: &str = "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata:\n  name: p\n  namespace: backend\nspec:\n  endpointSelector: {matchLabels: {role: backend-api}}\n";

/// A temporary directory with a posture `p/` holding one policy file `p.yaml` with `text`.
fn posture(text: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("p")).expect("mkdir");
    std::fs::write(dir.path().join("p/p.yaml"), text).expect("write");
    dir
}

fn check_posture(text: &str) -> Out {
    let dir = posture(text);
    harness_in(dir.path(), &["check", "--posture", "p"])
}

fn assert_input_error(out: &Out, words: &[&str]) {
    assert_eq!(out.code, 2, "exit code; stderr:\n{}", out.stderr);
    for w in words {
        assert!(out.stderr.contains(w), "`{w}` missing in:\n{}", out.stderr);
    }
}

// ---------------------------------------------------------------------------------------------------------
// 1. Silently accepted before: now errors or warnings

#[test]
fn empty_posture_directory_is_an_error_that_says_subdirectories_are_not_searched() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("p")).expect("mkdir");
    let out = harness_in(dir.path(), &["check", "--posture", "p"]);
    assert_input_error(
        &out,
        &[
            "p: no policies",
            "no *.yaml or *.yml file",
            "subdirectories are not searched",
        ],
    );
}

#[test]
fn comment_only_policy_files_are_an_error_naming_them() {
    let out = check_posture("# a policy will go here\n---\n# and here\n");
    assert_input_error(&out, &["p: no policies", "empty or only comments (p.yaml)"]);
}

#[test]
fn policies_only_in_a_subdirectory_are_an_error_naming_that_directory() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("p/team-a")).expect("mkdir");
    std::fs::write(
        dir.path().join("p/team-a/x.yaml"),
        format!("{HEAD}  ingress: [{{}}]\n"),
    )
    .expect("write");
    let out = harness_in(dir.path(), &["check", "--posture", "p"]);
    assert_input_error(
        &out,
        &[
            "subdirectories are not searched",
            "p/team-a holds YAML files: pass that directory instead",
        ],
    );
}

#[test]
fn a_filter_that_matches_no_scenario_is_an_error_not_an_empty_pass() {
    let out = harness_in(
        &repo(),
        &[
            "check",
            "--posture",
            "hardened",
            "--filter",
            "edge-lb-htps$",
        ],
    );
    assert_input_error(
        &out,
        &[
            "--filter `edge-lb-htps$` matches none of the",
            "ids look like `edge-lb-https`",
        ],
    );
}

#[test]
fn a_run_filter_that_matches_no_scenario_is_an_error_before_any_probe() {
    let out = harness_in(
        &repo(),
        &[
            "run",
            "--posture",
            "hardened",
            "--filter",
            "edge-lb-htps$",
            "--results",
            "/dev/null",
        ],
    );
    assert_input_error(
        &out,
        &[
            "--filter `edge-lb-htps$` matches none of the",
            "ids look like `edge-lb-https`",
        ],
    );
}

#[test]
fn a_filter_that_is_no_regex_says_why_in_one_line() {
    let out = harness_in(&repo(), &["check", "--filter", "api-("]);
    assert_input_error(
        &out,
        &["--filter `api-(`: not a regular expression: unclosed group"],
    );
    assert_eq!(out.stderr.trim().lines().count(), 1, "{}", out.stderr);
}

#[test]
fn cilium_versions_outside_the_model_are_refused_with_the_covered_list() {
    for v in ["1.15", "1.21", "2.0"] {
        let out = harness_in(&repo(), &["check", "--cilium-version", v]);
        assert_input_error(
            &out,
            &[
                &format!("Cilium {v} is not covered by the model"),
                "covered versions: 1.16, 1.17, 1.18, 1.19, 1.20",
            ],
        );
    }
    let out = harness_in(
        &repo(),
        &[
            "eval",
            "--policies",
            "policies/hardened",
            "--queries",
            "x.yaml",
            "--cilium-version",
            "1.15",
        ],
    );
    assert_input_error(&out, &["not covered by the model"]);
}

#[test]
fn a_version_without_its_crd_schema_in_the_repository_is_validated_against_the_nearest_and_says_so()
{
    let out = harness_in(
        &repo(),
        &["check", "--posture", "hardened", "--cilium-version", "1.20"],
    );
    assert!(
        out.stderr.contains("no CRD schema of Cilium 1.20")
            && out.stderr.contains("validated against 1.19's CRD schema"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_selector_label_typo_is_a_warning_with_the_nearest_value() {
    let out = check_posture(&format!(
        "{HEAD}  ingress:\n  - fromEndpoints:\n    - matchLabels: {{role: frontned}}\n"
    ));
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stdout
            .contains("ingress[0].fromEndpoints[0] {role: frontned} selects no workload")
            && out.stdout.contains("did you mean `role: frontend`?"),
        "{}",
        out.stdout
    );
}

#[test]
fn an_unknown_namespace_is_a_warning_listing_the_known_ones() {
    let out = check_posture(&format!(
        "{HEAD}  ingress:\n  - fromEndpoints:\n    - matchLabels: {{k8s:io.kubernetes.pod.namespace: frontned, role: frontend}}\n"
    ));
    let text = out.stdout.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        text.contains("namespace `frontned` does not exist in the stack; did you mean `frontend`? known: analytics, attacker, backend"),
        "{text}"
    );
    let out = check_posture(
        &HEAD
            .replace("namespace: backend", "namespace: backnd")
            .replace("spec:\n", "spec:\n  ingress: [{}]\n"),
    );
    let text = out.stdout.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        text.contains("metadata.namespace: namespace `backnd` does not exist in the stack; did you mean `backend`?"),
        "{text}"
    );
}

#[test]
fn a_selector_limited_to_the_policy_namespace_gets_the_near_miss_hint() {
    // The seed's mistake: the API's pods are in `backend`, the policy in `database`.
    let policy =
        format!("{HEAD}  ingress:\n  - fromEndpoints:\n    - matchLabels: {{role: backend-api}}\n")
            .replace("namespace: backend", "namespace: database")
            .replace(
                "{role: backend-api}}\n  ingress",
                "{app: postgres}}\n  ingress",
            );
    let out = check_posture(&policy);
    let text = out.stdout.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        text.contains("ingress[0].fromEndpoints[0] {role: backend-api} selects no workload of the stack: it would match backend/api, but a selector without a namespace matches only the policy's namespace `database`; add `k8s:io.kubernetes.pod.namespace: backend`"),
        "{text}"
    );
}

// ---------------------------------------------------------------------------------------------------------
// 2. The CRD schema of the target version

#[test]
fn an_unquoted_port_is_refused_as_the_api_server_would() {
    let out = check_posture(&format!(
        "{HEAD}  ingress:\n  - toPorts:\n    - ports:\n      - port: 8080\n"
    ));
    assert_input_error(
        &out,
        &[
            "p/p.yaml:11:15: spec.ingress[0].toPorts[0].ports[0].port",
            "the Cilium 1.19 CRD requires a string",
            "quote it: `\"8080\"`",
            "the API server would refuse this policy",
        ],
    );
    assert!(
        !out.stdout.contains("met"),
        "no verdict for a refused posture"
    );
}

#[test]
fn a_protocol_the_crd_does_not_list_is_refused_with_the_allowed_values() {
    let out = check_posture(&format!(
        "{HEAD}  ingress:\n  - toPorts:\n    - ports:\n      - port: \"53\"\n        protocol: udp\n"
    ));
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("p/p.yaml:12:"), "{}", out.stderr);
}

#[test]
fn a_rule_without_sections_is_refused_by_the_crd_schema() {
    let out = check_posture(HEAD);
    assert_input_error(
        &out,
        &[
            "p/p.yaml:7:",
            "requires at least one of `ingress`, `ingressDeny`, `egress` or `egressDeny`",
        ],
    );
}

#[test]
fn names_kubernetes_refuses_are_errors() {
    for (name, shown) in [("\"\"", "``"), ("My_Policy", "`My_Policy`"), ("-p", "`-p`")] {
        let out = check_posture(
            &format!("{HEAD}  ingress: [{{}}]\n").replace("name: p", &format!("name: {name}")),
        );
        assert_input_error(
            &out,
            &[
                "p/p.yaml:4:3: metadata.name:",
                shown,
                "lowercase letters, digits",
            ],
        );
    }
}

#[test]
fn a_label_kubernetes_refuses_is_an_error() {
    let out = check_posture(&format!("{HEAD}  ingress: [{{}}]\n").replace(
        "  namespace: backend\n",
        "  namespace: backend\n  labels: {team: a b}\n",
    ));
    assert_input_error(
        &out,
        &[
            "p/p.yaml:6:3: metadata.labels: `team: a b`",
            "not a valid label value",
        ],
    );
}

// ---------------------------------------------------------------------------------------------------------
// 3. Errors a user can act on

#[test]
fn a_bad_regex_is_one_readable_line_with_file_and_line() {
    let out = check_posture(&format!(
        "{HEAD}  ingress:\n  - toPorts:\n    - ports: [{{port: \"8080\"}}]\n      rules:\n        http:\n        - path: \"/api/(\"\n"
    ));
    assert_input_error(
        &out,
        &[
            "p/p.yaml:13:",
            "invalid regular expression `/api/(`: unclosed group",
        ],
    );
    assert!(!out.stderr.contains("\\n"), "{}", out.stderr);
    assert_eq!(out.stderr.trim().lines().count(), 1, "{}", out.stderr);
}

#[test]
fn a_duplicate_key_names_both_lines() {
    let out = check_posture(&format!(
        "{HEAD}  ingress:\n  - fromEndpoints: [{{}}]\n  ingress:\n  - fromEndpoints: [{{}}]\n"
    ));
    assert_input_error(
        &out,
        &[
            "p/p.yaml:10:",
            "key `ingress` appears twice in the same mapping (lines 8 and 10)",
        ],
    );
    assert!(!out.stderr.contains("DuplicateKeyPolicy"), "{}", out.stderr);
}

#[test]
fn an_unwritable_output_file_says_cannot_write() {
    let out = harness_in(&repo(), &["check", "--output", "/nonexistent/x.json"]);
    assert_input_error(&out, &["cannot write /nonexistent/x.json"]);
    assert!(!out.stderr.contains("cannot read"), "{}", out.stderr);
}

#[test]
fn port_range_errors_say_what_a_port_may_be() {
    let out = check_posture(&format!(
        "{HEAD}  ingress:\n  - toPorts:\n    - ports: [{{port: \"8080\", endPort: 70000}}]\n"
    ));
    assert_input_error(
        &out,
        &[
            "p/p.yaml:10:",
            "endPort: `70000` is not a port number 0-65535",
        ],
    );
    assert!(!out.stderr.contains("u16"), "{}", out.stderr);
    for port in ["99999", "http"] {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("q.yaml"),
            format!(
                "queries:\n- id: a\n  from: frontend/frontend\n  to: backend/api\n  port: {port}\n"
            ),
        )
        .expect("write");
        let policies = repo().join("policies/hardened");
        let out = harness_in(
            dir.path(),
            &[
                "eval",
                "--policies",
                policies.to_str().expect("utf-8"),
                "--queries",
                "q.yaml",
            ],
        );
        assert_input_error(
            &out,
            &[
                "q.yaml:5:",
                &format!("port: `{port}` is not a port number 1-65535"),
            ],
        );
    }
}

#[test]
fn a_file_that_is_not_utf8_says_where_and_how_to_fix_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("p")).expect("mkdir");
    std::fs::write(
        dir.path().join("p/p.yaml"),
        b"apiVersion: cilium.io/v2\n# caf\xe9\n",
    )
    .expect("write");
    let out = harness_in(dir.path(), &["check", "--posture", "p"]);
    assert_input_error(
        &out,
        &[
            "p/p.yaml:2: not UTF-8 text: byte 0xe9 at byte offset 30",
            "save the file as UTF-8",
        ],
    );
}

#[test]
fn report_of_a_file_that_is_not_a_results_document_says_what_it_expects() {
    let out = harness_in(&repo(), &["report", "fixtures/stack.yaml"]);
    assert_input_error(
        &out,
        &[
            "not a results document: the file is not JSON",
            "check --output FILE",
        ],
    );
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("x.json"), "{\"a\": 1}").expect("write");
    let out = harness_in(dir.path(), &["report", "x.json"]);
    assert_input_error(
        &out,
        &["x.json: not a results document: it has no `kind` and `scenarios`"],
    );
}

#[test]
fn a_query_file_that_is_a_list_says_what_is_expected() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("q.yaml"),
        "- id: a\n  from: frontend/frontend\n  to: backend/api\n  port: 8080\n",
    )
    .expect("write");
    let policies = repo().join("policies/hardened");
    let out = harness_in(
        dir.path(),
        &[
            "eval",
            "--policies",
            policies.to_str().expect("utf-8"),
            "--queries",
            "q.yaml",
        ],
    );
    assert_input_error(
        &out,
        &[
            "q.yaml:1: the query file is a list",
            "a mapping with `queries:`",
        ],
    );
}

#[test]
fn an_unknown_workload_in_a_query_lists_the_nearest_and_the_known_names() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("q.yaml"),
        "queries:\n- id: a\n  from: frontend/frontnd\n  to: backend/api\n  port: 8080\n",
    )
    .expect("write");
    let policies = repo().join("policies/hardened");
    let out = harness_in(
        dir.path(),
        &[
            "eval",
            "--policies",
            policies.to_str().expect("utf-8"),
            "--queries",
            "q.yaml",
        ],
    );
    assert_input_error(
        &out,
        &[
            "q.yaml:2: query `a`: from: `frontend/frontnd`",
            "did you mean `frontend/frontend`?",
            "known: frontend/frontend",
            "lb, outsider",
        ],
    );
}

#[test]
fn every_option_of_apply_run_upgrade_and_diff_has_help_text() {
    for (cmd, options) in [
        ("apply", &["--posture <POSTURE>"][..]),
        ("run", &["--posture <POSTURE>"][..]),
        (
            "upgrade",
            &["--from <FROM>", "--to <TO>", "--allow-widening"][..],
        ),
        ("diff", &["<BEFORE>", "<AFTER>"][..]),
    ] {
        let out = harness_in(&repo(), &[cmd, "--help"]);
        assert_eq!(out.code, 0, "{cmd} --help");
        for opt in options {
            let line = out
                .stdout
                .lines()
                .position(|l| l.trim_start().starts_with(opt))
                .unwrap_or_else(|| panic!("{cmd}: no {opt} in\n{}", out.stdout));
            // The help text is on the option's line or the next one.
            let lines: Vec<&str> = out.stdout.lines().collect();
            let same = lines[line].trim_start().trim_start_matches(opt).trim();
            let next = lines.get(line + 1).map(|l| l.trim()).unwrap_or_default();
            let next_is_text = !next.is_empty() && !next.starts_with('-') && !next.starts_with('<');
            assert!(
                !same.is_empty() || next_is_text,
                "{cmd} {opt} has no help text:\n{}",
                out.stdout
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// 4. Output a person reads

#[test]
fn check_output_groups_scenarios_of_one_cause_and_wraps_to_a_fixed_width_off_a_terminal() {
    let out = harness_in(&repo(), &["check", "--posture", "seed"]);
    assert_eq!(out.code, 1);
    assert!(out.stdout.contains("One cause, "), "{}", out.stdout);
    assert!(out.stdout.contains("distinct causes):"), "{}", out.stdout);
    let longest = out
        .stdout
        .lines()
        .map(|l| l.chars().count())
        .max()
        .unwrap_or(0);
    assert!(longest <= 120, "a line of {longest} characters");
    // The explanation of that cause is printed once, not once per scenario.
    let needle = "would match frontend/frontend but is limited to namespace backend";
    let text = out.stdout.split_whitespace().collect::<Vec<_>>().join(" ");
    assert_eq!(text.matches(needle).count(), 1, "{}", out.stdout);
}

#[test]
fn check_prints_paths_relative_to_the_working_directory() {
    let out = harness_in(&repo().join("harness"), &["check", "--posture", "seed"]);
    assert!(
        out.stdout
            .contains("(../policies/seed/postgres-egress-deny.yaml:1)"),
        "{}",
        out.stdout
    );
    assert!(!out.stdout.contains("harness/../"), "{}", out.stdout);
    let dir = posture(&format!(
        "{HEAD}  ingress:\n  - toPorts:\n    - ports:\n      - port: 8080\n"
    ));
    let out = harness_in(&dir.path().join("p"), &["check", "--posture", "."]);
    assert!(
        out.stderr.starts_with("error: p.yaml:11:15:"),
        "{}",
        out.stderr
    );
}

#[test]
fn one_policy_is_singular() {
    let out = check_posture(&format!("{HEAD}  ingress: [{{}}]\n"));
    assert!(
        out.stdout.contains("Policies: 1 policy, 1 in force"),
        "{}",
        out.stdout
    );
}

#[test]
fn every_cited_semantics_section_exists() {
    let doc = std::fs::read_to_string(repo().join("docs/semantics.md")).expect("docs/semantics.md");
    let anchors: Vec<String> = doc
        .lines()
        .filter_map(|l| l.strip_prefix("## "))
        .map(|h| {
            h.to_lowercase()
                .chars()
                .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-')
                .collect::<String>()
                .replace(' ', "-")
        })
        .collect();
    let mut cited = 0;
    let mut stack = vec![repo().join("harness/src")];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).expect("read_dir").flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            if p.extension().and_then(|x| x.to_str()) != Some("rs") {
                continue;
            }
            let text = std::fs::read_to_string(&p).expect("source");
            assert!(
                !text.contains("cilium-semantics.md §")
                    || text.lines().all(|l| {
                        !l.contains("cilium-semantics.md §") || l.trim_start().starts_with("//")
                    }),
                "{} cites cilium-semantics.md, a file outside the repository",
                p.display()
            );
            for (i, _) in text.match_indices("docs/semantics.md#") {
                let rest = &text[i + "docs/semantics.md#".len()..];
                let anchor: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                    .collect();
                if anchor.is_empty() {
                    // The prefix itself, in code that looks for citations.
                    continue;
                }
                assert!(
                    anchors.contains(&anchor),
                    "{} cites docs/semantics.md#{anchor}, which is no section (sections: {anchors:?})",
                    p.display()
                );
                cited += 1;
            }
        }
    }
    assert!(cited >= 10, "only {cited} citations found");
}

#[test]
fn every_explanation_of_a_check_points_to_a_section() {
    let out = harness_in(&repo(), &["check", "--posture", "seed", "--format", "json"]);
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).expect("json");
    for s in doc["scenarios"].as_array().expect("scenarios") {
        if s.get("check").is_some()
            || s["model"]["explanation"]
                .as_str()
                .is_some_and(|e| e.contains("hubble.metrics"))
        {
            continue;
        }
        let e = s["model"]["explanation"].as_str().unwrap_or_default();
        assert!(e.contains("docs/semantics.md#"), "{}: {e}", s["id"]);
    }
}

#[test]
fn diff_tells_fixes_from_widening_against_the_intent() {
    let dir = tempfile::tempdir().expect("tempdir");
    for p in ["seed", "hardened"] {
        let out = harness_in(
            dir.path(),
            &[
                "check",
                "--posture",
                p,
                "--output",
                &format!("{p}.json"),
                "--format",
                "json",
            ],
        );
        assert!(out.code <= 1, "{}", out.stderr);
    }
    // Towards the intent: fixes, exit 0.
    let out = harness_in(dir.path(), &["diff", "seed.json", "hardened.json"]);
    assert_eq!(out.code, 0, "{}", out.stdout);
    assert!(
        out.stdout
            .contains("Fixes: the verdict moved towards the intent ("),
        "{}",
        out.stdout
    );
    assert!(
        !out.stdout.contains("Widening against the intent"),
        "{}",
        out.stdout
    );
    let md = harness_in(
        dir.path(),
        &["diff", "seed.json", "hardened.json", "--markdown"],
    );
    assert!(
        md.stdout
            .contains("### Fixes: the verdict moved towards the intent"),
        "{}",
        md.stdout
    );
    // Away from it: widening, exit 1, unless --allow-widening.
    let out = harness_in(dir.path(), &["diff", "hardened.json", "seed.json"]);
    assert_eq!(out.code, 1, "{}", out.stdout);
    assert!(
        out.stdout.contains(
            "!! Widening against the intent: denied before, allowed after, the intent is deny"
        ),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("Narrowing against the intent"),
        "{}",
        out.stdout
    );
    let out = harness_in(
        dir.path(),
        &["diff", "hardened.json", "seed.json", "--allow-widening"],
    );
    assert_eq!(out.code, 0);
}

// ---------------------------------------------------------------------------------------------------------
// --scenarios: another directory of scenario files

#[test]
fn scenarios_directory_that_does_not_exist_is_an_input_error_naming_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = harness_in(dir.path(), &["check", "--scenarios", "no-such-dir"]);
    assert_input_error(&out, &["no-such-dir", "cannot read"]);
}

#[test]
fn scenarios_directory_without_scenarios_is_an_input_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("s")).expect("mkdir");
    let out = harness_in(dir.path(), &["check", "--scenarios", "s"]);
    assert_input_error(&out, &["no scenarios found"]);
}

#[test]
fn lab_facts_scenarios_are_met_by_the_lab_facts_posture() {
    // The capture of scripts/lab-capture-facts.sh runs these; each must state what the model predicts, or
    // the captured flows would document a gap instead of the fact they are kept for.
    let out = harness_in(
        &repo(),
        &[
            "check",
            "--posture",
            "fixtures/lab-facts/policies",
            "--scenarios",
            "fixtures/lab-facts/scenarios",
        ],
    );
    assert_eq!(
        out.code, 0,
        "stdout:\n{}\nstderr:\n{}",
        out.stdout, out.stderr
    );
    assert!(
        out.stdout.contains("8 scenarios: 8 met, 0 gaps"),
        "stdout:\n{}",
        out.stdout
    );
    assert!(
        !out.stdout.contains("edge-lb-https"),
        "only the facts scenarios run"
    );
}

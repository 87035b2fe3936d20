//! `harness report`: the table, Markdown and HTML forms of a results document, from a document written by
//! `harness check` and from a scripted live-run document (tests/data/run-hardened-1.19.json: 44 scenarios
//! with every status, failing cells, a model divergence and Hubble flows). The HTML is also loaded in
//! headless Chromium and its DOM checked.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use harness::check::{self, Inputs};
use harness::model::CiliumVersion;
use harness::report::{ReportFormat, render};
use harness::results::{Results, Status};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn check(posture: &str, version: &str) -> Results {
    let r = root();
    let inputs = Inputs {
        policies: vec![r.join("policies").join(posture)],
        posture: posture.into(),
        stack_file: r.join("fixtures/stack.yaml"),
        scenarios: r.join("fixtures/scenarios"),
        helm_values: Some(r.join("kind/cilium-values.yaml")),
        version: version.parse::<CiliumVersion>().expect("version"),
    };
    check::run(&inputs).expect("inputs load")
}

fn data(name: &str) -> Results {
    Results::read(
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data")
            .join(name),
    )
    .expect("test data reads")
}

fn run_doc() -> Results {
    data("run-hardened-1.19.json")
}

/// The line of the table that carries a scenario (the first line that starts with its id).
fn table_row<'a>(table: &'a str, id: &str) -> &'a str {
    table
        .lines()
        .find(|l| l.split_whitespace().next() == Some(id))
        .unwrap_or_else(|| panic!("no row for {id} in:\n{table}"))
}

// ---------------------------------------------------------------------------------------------------------
// The scripted run document itself

#[test]
fn the_scripted_run_document_has_every_status_a_divergence_and_40_plus_scenarios() {
    let r = run_doc();
    assert!(r.scenarios.len() >= 40, "{}", r.scenarios.len());
    for st in [
        Status::Pass,
        Status::Fail,
        Status::Inconclusive,
        Status::NotApplicable,
    ] {
        assert!(
            r.scenarios.iter().any(|s| s.status == st),
            "no {} scenario",
            st.as_str()
        );
    }
    assert!(r.scenarios.iter().any(|s| s.model_divergence));
    assert_eq!(
        r.summary,
        harness::results::Summary::of(&r.scenarios),
        "summary out of date"
    );
}

// ---------------------------------------------------------------------------------------------------------
// Table

#[test]
fn table_of_a_check_lists_each_scenario_once_grouped_by_phase_and_explains_every_gap() {
    let r = check("seed", "1.19");
    let t = render(&r, ReportFormat::Table, false);
    // Phases in document order, each a heading line.
    let mut last = 0;
    for phase in harness::report::phases(&r).iter().map(|(p, _)| *p) {
        let at = t
            .find(&format!("\n{phase} · "))
            .unwrap_or_else(|| panic!("no heading for phase {phase}:\n{t}"));
        assert!(at > last, "phase {phase} out of order");
        last = at;
    }
    let (matrix, attention) = t
        .split_once("Needs attention (")
        .expect("a Needs attention section");
    for s in &r.scenarios {
        let rows = matrix
            .lines()
            .filter(|l| l.split_whitespace().next() == Some(s.id.as_str()))
            .count();
        assert_eq!(rows, 1, "{} should have exactly one row", s.id);
        let row = table_row(matrix, &s.id);
        assert!(row.trim_end().ends_with(s.status.as_str()), "{row}");
    }
    for s in r.scenarios.iter().filter(|s| s.status == Status::Gap) {
        let head = format!("  {} · gap · {}", s.id, s.description);
        let block = attention
            .split(&head)
            .nth(1)
            .unwrap_or_else(|| panic!("{} not explained", s.id));
        let block: String = block
            .split("\n\n")
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        let explanation: String = s
            .model
            .explanation
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        // A cause shared by several scenarios is printed once, above them ("the cause above").
        let above: String = attention
            .split(&head)
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        assert!(
            block.contains(&explanation)
                || (block.contains("the cause above") && above.contains(&explanation)),
            "{}: explanation missing in\n{block}",
            s.id
        );
    }
    // The counts follow the scenario files; what matters is that the table ends with them.
    let counts = format!(
        "{} scenarios: {} met, {} gaps",
        r.summary.total, r.summary.met, r.summary.gaps
    );
    assert!(r.summary.gaps > 0, "the seed posture has gaps");
    assert!(t.contains(&counts), "{t}");
    assert!(
        t.contains(
            // Relative to the working directory (cargo runs tests in harness/).
            "rejected database/postgres-egress-deny (../policies/seed/postgres-egress-deny.yaml:1)"
        ),
        "{t}"
    );
}

#[test]
fn table_of_a_run_marks_the_cells_that_contradict_the_intent() {
    let t = render(&run_doc(), ReportFormat::Table, false);
    let admin = table_row(&t, "api-get-admin");
    assert!(
        admin.contains("✗ completed") && admin.contains("✗ l7-allowed"),
        "{admin}"
    );
    assert!(admin.trim_end().ends_with("fail *"), "{admin}");
    let egress = table_row(&t, "db-egress-to-api");
    assert!(
        egress.contains("✗ dropped-l4 ingress") && !egress.contains("✗ connect_timeout"),
        "{egress}"
    );
    let lost = table_row(&t, "kafka-api-consume-events");
    assert!(
        lost.contains("? inconclusive") && lost.trim_end().ends_with("inconclusive"),
        "{lost}"
    );
    let diverged = table_row(&t, "kafka-internal-consume");
    assert!(
        diverged.contains("✗ deny l4 ingress") && diverged.trim_end().ends_with("pass *"),
        "{diverged}"
    );
    let na = table_row(&t, "edge-outsider-https");
    assert!(
        na.trim_end().ends_with("not-applicable") && !na.contains('✗'),
        "{na}"
    );
    assert!(table_row(&t, "edge-lb-https").split_whitespace().eq([
        "edge-lb-https",
        "allow",
        "allow",
        "completed",
        "forwarded",
        "pass"
    ]));
}

#[test]
fn table_of_a_run_explains_failures_with_client_outcome_and_decisive_flows() {
    let t = render(&run_doc(), ReportFormat::Table, false);
    let (_, attention) = t
        .split_once("Needs attention (7):")
        .expect("7 scenarios need attention");
    let block = attention
        .split("  api-get-admin · fail, model divergence")
        .nth(1)
        .expect("api-get-admin explained");
    let block = block.split("\n\n").next().unwrap_or_default();
    assert!(
        block.contains("client  ✗ completed: HTTP 200 OK from the application"),
        "{block}"
    );
    assert!(
        block.contains("hubble  ✗ l7-allowed: the proxy forwarded"),
        "{block}"
    );
    assert!(
        block.contains("flow 18:00:10.138 FORWARDED ingress frontend/frontend-"),
        "{block}"
    );
    assert!(
        block.contains("model   deny l7 ingress: denied at L7 at backend/api's ingress"),
        "{block}"
    );
    assert!(
        t.contains(
            "44 scenarios: 38 pass, 3 fail, 2 inconclusive, 1 not applicable; 3 model divergences"
        ),
        "{t}"
    );
    // Passing scenarios without a divergence are not explained.
    assert!(!attention.contains("edge-lb-https"));
}

#[test]
fn table_uses_colour_only_when_asked() {
    let r = run_doc();
    let plain = render(&r, ReportFormat::Table, false);
    assert!(!plain.contains('\x1b'), "escape codes without colour");
    let coloured = render(&r, ReportFormat::Table, true);
    assert!(coloured.contains("\x1b[31;1mfail"), "failures are red");
    assert!(coloured.contains("\x1b[32mpass"), "passes are green");
    // Colour changes nothing but the escape codes.
    let stripped = regex::Regex::new("\x1b\\[[0-9;]*m")
        .expect("regex")
        .replace_all(&coloured, "");
    assert_eq!(stripped, plain);
}

// ---------------------------------------------------------------------------------------------------------
// Markdown

fn markdown_tables(md: &str) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut phase = String::new();
    for line in md.lines() {
        if let Some(h) = line.strip_prefix("### ") {
            phase = h.split(" — ").next().unwrap_or_default().to_string();
        } else if line.starts_with("| `") {
            out.entry(phase.clone()).or_default().push(line.to_string());
        }
    }
    out
}

#[test]
fn markdown_has_counts_a_table_per_phase_and_no_giant_lines() {
    for r in [check("seed", "1.19"), run_doc()] {
        let md = render(&r, ReportFormat::Markdown, false);
        let tables = markdown_tables(&md);
        for (phase, scenarios) in harness::report::phases(&r) {
            let rows = tables
                .get(phase)
                .unwrap_or_else(|| panic!("no table for {phase}:\n{md}"));
            assert_eq!(rows.len(), scenarios.len(), "{phase}");
            let columns = if r.kind == harness::results::ResultsKind::Run {
                6
            } else {
                4
            };
            for row in rows {
                assert_eq!(row.matches(" | ").count(), columns - 1, "{row}");
                assert!(row.len() < 200, "table row too long: {row}");
            }
        }
        assert!(
            md.contains(&format!("**{} scenarios: ", r.scenarios.len())),
            "{md}"
        );
        let longest = md.lines().map(str::len).max().unwrap_or(0);
        assert!(longest < 1200, "a {longest}-byte line");
    }
}

#[test]
fn markdown_explains_failing_cells() {
    let md = render(&run_doc(), ReportFormat::Markdown, false);
    let section = md
        .split("### Needs attention (7)")
        .nth(1)
        .expect("needs attention");
    let admin = section
        .split("#### ")
        .find(|b| b.contains("`api-get-admin`"))
        .expect("api-get-admin explained");
    assert!(
        admin.starts_with(
            "❌ fail `api-get-admin`: paths outside /api/v1/ are refused (model diverged)"
        ),
        "{admin}"
    );
    assert!(
        admin.contains("- **client** **completed** ✗: HTTP 200 OK from the application"),
        "{admin}"
    );
    assert!(
        admin.contains("- **hubble** **l7-allowed** ✗: the proxy forwarded"),
        "{admin}"
    );
    assert!(
        admin.contains("  - `18:00:10.138 FORWARDED ingress frontend/frontend-"),
        "{admin}"
    );
    assert!(md.contains("| `db-egress-to-api` | deny l4 egress | deny l4 egress | connect_timeout | **dropped-l4 ingress** ✗ | ❌ fail |"), "{md}");
}

#[test]
fn markdown_escapes_markup_in_explanations() {
    let mut r = run_doc();
    r.scenarios[0].model.explanation = "<script>alert(1)</script> | *x*".into();
    r.scenarios[0].status = Status::Fail;
    let md = render(&r, ReportFormat::Markdown, false);
    assert!(!md.contains("<script>"), "raw markup in Markdown");
    assert!(
        md.contains("&lt;script&gt;alert(1)&lt;/script&gt; \\| \\*x\\*"),
        "{md}"
    );
}

// ---------------------------------------------------------------------------------------------------------
// HTML, as text

#[test]
fn html_is_self_contained_without_script_or_external_assets() {
    for r in [check("seed", "1.19"), run_doc()] {
        let html = render(&r, ReportFormat::Html, false);
        assert!(
            html.starts_with("<!DOCTYPE html>") && html.contains("<style>"),
            "not a styled page"
        );
        let lower = html.to_lowercase();
        // (Flow lines may mention http:// URLs as text; no attribute may point anywhere.)
        for bad in [
            "<script", "<link", "<img", "<iframe", "<object", "<embed", "@import", "url(", "src=",
            "=\"http", "='http",
        ] {
            assert!(!lower.contains(bad), "the page contains {bad}");
        }
        // Every href is a fragment of the page itself.
        for (at, _) in html.match_indices("href=\"") {
            assert_eq!(
                &html[at + 6..at + 7],
                "#",
                "external link at {}",
                &html[at..at + 40]
            );
        }
    }
}

#[test]
fn html_escapes_markup_from_every_column() {
    let mut r = run_doc();
    let s = r
        .scenarios
        .iter_mut()
        .find(|s| s.id == "api-get-admin")
        .expect("scenario");
    s.model.explanation = "<script>alert('model')</script> & \"quoted\"".into();
    s.description = "<b>bold</b>".into();
    if let Some(c) = s.client.as_mut() {
        c.detail = "<img src=x onerror=alert(1)>".into();
    }
    if let Some(h) = s.hubble.as_mut() {
        h.flows = vec![serde_json::json!({"flow": {"verdict": "<svg/onload=alert(1)>"}})];
    }
    s.reason = "</td></tr></table><script>alert('reason')</script>".into();
    let html = render(&r, ReportFormat::Html, false);
    let lower = html.to_lowercase();
    for bad in ["<script", "<img", "<svg", "<b>bold"] {
        assert!(!lower.contains(bad), "unescaped {bad}");
    }
    assert!(
        html.contains(
            "&lt;script&gt;alert(&#39;model&#39;)&lt;/script&gt; &amp; &quot;quoted&quot;"
        ),
        "model explanation"
    );
    assert!(
        html.contains("&lt;img src=x onerror=alert(1)&gt;"),
        "client detail"
    );
    assert!(html.contains("&lt;svg/onload=alert(1)&gt;"), "flow");
    assert!(
        html.contains("&lt;/td&gt;&lt;/tr&gt;&lt;/table&gt;&lt;script&gt;"),
        "reason"
    );
}

// ---------------------------------------------------------------------------------------------------------
// HTML, in headless Chromium

/// Chromium: $CHROMIUM, or the first of chromium, chromium-browser, google-chrome on PATH. Panics (never
/// skips) when there is none.
fn chromium() -> PathBuf {
    if let Some(p) = std::env::var_os("CHROMIUM") {
        return PathBuf::from(p);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    panic!(
        "chromium not found ($CHROMIUM unset; no chromium, chromium-browser or google-chrome on PATH): \
         this test renders the HTML report in headless Chromium. Install it with .ci/setup-report.sh \
         (Debian: apt-get install -y chromium)"
    );
}

/// Collects, from the DOM as Chromium built and laid it out, what the assertions need, into
/// `<pre id="probe-result">` (JSON). Appended by the test only: the report has no script.
const PROBE: &str = r#"<pre id="probe-result"></pre><script>
(function () {
  // checkVisibility() is false inside a closed <details> (its content is not rendered).
  const visible = (el) => !!el && el.checkVisibility() && el.offsetHeight > 0;
  const sections = [...document.querySelectorAll('section.phase')].map((sec) => ({
    phase: sec.dataset.phase,
    heading: sec.querySelector('h2').textContent,
    headers: [...sec.querySelectorAll('thead th')].map((th) => th.textContent.trim()),
    rows: [...sec.querySelectorAll('tbody > tr')].map((tr) => ({
      id: tr.dataset.id,
      status: tr.dataset.status,
      cells: [...tr.children].map((td) => ({
        cls: td.className,
        value: (td.querySelector('.v') || td.querySelector('.badge') || td.querySelector('.id') || td).textContent.trim(),
        text: td.textContent,
        why_visible: [...td.querySelectorAll('.why')].some(visible),
        flows_visible: [...td.querySelectorAll('ul.flows li')].filter(visible).length,
      })),
    })),
  }));
  const external = [...document.querySelectorAll('[src], [href]')]
    .filter((el) => !(el.getAttribute('href') || '').startsWith('#')).length;
  document.getElementById('probe-result').textContent = JSON.stringify({
    title: document.title,
    scripts: document.scripts.length,
    external: external,
    overflow: document.documentElement.scrollWidth - window.innerWidth,
    counts: [...document.querySelectorAll('.counts .count')].map((c) => c.textContent.trim()),
    attention: [...document.querySelectorAll('section.attention li a')].map((a) => a.getAttribute('href')),
    sections: sections,
  });
})();
</script>"#;

/// Render `html` in headless Chromium at 1400×2000 and return what [`PROBE`] collected.
fn dom_of(html: &str) -> serde_json::Value {
    assert!(
        !html.to_lowercase().contains("<script"),
        "the report itself must not carry a script"
    );
    let page = html.replace("</body>", &format!("{PROBE}\n</body>"));
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("report.html");
    std::fs::write(&file, page).expect("write page");
    let profile = dir.path().join("profile");
    let bin = chromium();
    let mut child = Command::new(&bin)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--window-size=1400,2000",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("file://{}", file.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
    let mut stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut out = String::new();
        let r = stdout.read_to_string(&mut out);
        let _ = tx.send(r.map(|_| out));
    });
    let err_reader = std::thread::spawn(move || {
        let mut err = String::new();
        let _ = stderr.read_to_string(&mut err);
        err
    });
    let out = match rx.recv_timeout(Duration::from_secs(90)) {
        Ok(r) => r.expect("read chromium's output"),
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish within 90 s");
        }
    };
    let status = child.wait().expect("wait for chromium");
    let err = err_reader.join().unwrap_or_default();
    assert!(status.success(), "chromium failed ({status}):\n{err}");
    let start = out
        .find("<pre id=\"probe-result\">")
        .unwrap_or_else(|| panic!("no probe result in the DOM:\n{out}\n{err}"));
    let rest = &out[start + "<pre id=\"probe-result\">".len()..];
    let json = &rest[..rest.find("</pre>").expect("end of probe result")];
    let json = json
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&nbsp;", "\u{a0}")
        .replace("&amp;", "&");
    serde_json::from_str(&json).unwrap_or_else(|e| panic!("probe result is not JSON ({e}): {json}"))
}

fn cell<'a>(row: &'a serde_json::Value, class: &str) -> &'a serde_json::Value {
    row["cells"]
        .as_array()
        .and_then(|cs| {
            cs.iter().find(|c| {
                c["cls"]
                    .as_str()
                    .is_some_and(|k| k.split(' ').any(|w| w == class))
            })
        })
        .unwrap_or_else(|| panic!("no {class} cell in {row}"))
}

#[test]
fn html_report_of_a_44_scenario_run_renders_in_chromium_as_the_grouped_matrix() {
    let mut r = run_doc();
    let injected = "<script>alert('x')</script> leaked";
    r.scenarios
        .iter_mut()
        .find(|s| s.id == "db-from-attacker")
        .expect("scenario")
        .model
        .explanation = injected.into();
    let dom = dom_of(&render(&r, ReportFormat::Html, false));

    assert_eq!(
        dom["scripts"], 1,
        "only the test's probe script may run: {}",
        dom["scripts"]
    );
    assert_eq!(dom["external"], 0, "external references");
    assert!(
        dom["overflow"].as_i64().is_some_and(|o| o <= 0),
        "wider than a 1400 px window by {} px",
        dom["overflow"]
    );
    assert!(
        dom["title"]
            .as_str()
            .is_some_and(|t| t.contains("hardened") && t.contains("1.19.3")),
        "{}",
        dom["title"]
    );
    let counts: Vec<&str> = dom["counts"]
        .as_array()
        .expect("counts")
        .iter()
        .filter_map(|c| c.as_str())
        .collect();
    assert_eq!(
        counts,
        [
            "44scenarios",
            "38pass",
            "3fail",
            "2inconclusive",
            "1not applicable",
            "3model divergences"
        ]
    );
    assert_eq!(
        dom["attention"].as_array().map(Vec::len),
        Some(7),
        "needs-attention links"
    );

    // One section per phase in document order, one row per scenario, six cells per row.
    let sections = dom["sections"].as_array().expect("sections");
    let phases: Vec<&str> = sections
        .iter()
        .filter_map(|s| s["phase"].as_str())
        .collect();
    let expected: Vec<&str> = harness::report::phases(&r)
        .iter()
        .map(|(p, _)| *p)
        .collect();
    assert_eq!(phases, expected);
    let mut rows = BTreeMap::new();
    for sec in sections {
        assert_eq!(
            sec["headers"]
                .as_array()
                .expect("headers")
                .iter()
                .filter_map(|h| h.as_str())
                .collect::<Vec<_>>(),
            ["Scenario", "Intent", "Model", "Client", "Hubble", "Status"]
        );
        for row in sec["rows"].as_array().expect("rows") {
            assert_eq!(row["cells"].as_array().map(Vec::len), Some(6), "{row}");
            rows.insert(row["id"].as_str().expect("id").to_string(), row.clone());
        }
    }
    assert_eq!(rows.len(), r.scenarios.len());

    for s in &r.scenarios {
        let row = &rows[&s.id];
        assert_eq!(row["status"], s.status.as_str(), "{}", s.id);
        assert_eq!(cell(row, "status")["value"], s.status.as_str(), "{}", s.id);
        assert_eq!(
            cell(row, "intent")["value"],
            s.intent.to_string(),
            "{}",
            s.id
        );
        assert_eq!(
            cell(row, "model")["value"],
            harness::output::verdict_short(&s.model),
            "{}",
            s.id
        );
        if let Some(c) = &s.client {
            assert_eq!(cell(row, "client")["value"], c.outcome.as_str(), "{}", s.id);
        }
        // Every cell that contradicts the intent or says nothing certain (and the model cell of a
        // divergence) explains itself without a click; a Hubble cell that contradicts shows the flows that
        // decided.
        for class in ["model", "client", "hubble"] {
            let c = cell(row, class);
            let cls = c["cls"].as_str().unwrap_or_default();
            if cls.contains("contradicts") || cls.contains("unclear") || cls.contains("diverges") {
                assert_eq!(
                    c["why_visible"], true,
                    "{} {class}: explanation hidden",
                    s.id
                );
                if class == "hubble" && s.hubble.as_ref().is_some_and(|h| !h.flows.is_empty()) {
                    let n = s.hubble.as_ref().map(|h| h.flows.len()).unwrap_or_default();
                    assert_eq!(c["flows_visible"], n, "{} hubble flows", s.id);
                }
            } else {
                assert_eq!(
                    c["why_visible"], false,
                    "{} {class}: a passing cell should stay compact",
                    s.id
                );
            }
        }
    }

    // The failing cells of the scripted document are where the evidence says.
    let classes = |id: &str| -> Vec<String> {
        ["model", "client", "hubble"]
            .iter()
            .map(|c| {
                cell(&rows[id], c)["cls"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            })
            .collect()
    };
    assert_eq!(
        classes("api-get-admin"),
        [
            "cell model agrees diverges",
            "cell client contradicts",
            "cell hubble contradicts"
        ]
    );
    assert_eq!(
        classes("db-egress-to-api"),
        [
            "cell model agrees",
            "cell client agrees",
            "cell hubble contradicts"
        ]
    );
    assert_eq!(
        classes("kafka-api-consume-events"),
        [
            "cell model agrees",
            "cell client agrees",
            "cell hubble unclear"
        ]
    );
    assert_eq!(
        classes("edge-outsider-https"),
        [
            "cell model agrees",
            "cell client empty",
            "cell hubble empty"
        ]
    );

    // The injected markup is text in the model cell, not an element.
    let model = cell(&rows["db-from-attacker"], "model");
    assert!(
        model["text"].as_str().is_some_and(|t| t.contains(injected)),
        "{model}"
    );
}

#[test]
fn html_report_of_a_check_renders_in_chromium_with_model_columns_only() {
    let r = check("seed", "1.19");
    let dom = dom_of(&render(&r, ReportFormat::Html, false));
    assert_eq!(dom["scripts"], 1);
    assert!(
        dom["overflow"].as_i64().is_some_and(|o| o <= 0),
        "overflow {}",
        dom["overflow"]
    );
    let sections = dom["sections"].as_array().expect("sections");
    let total: usize = sections
        .iter()
        .map(|s| s["rows"].as_array().map_or(0, Vec::len))
        .sum();
    assert_eq!(total, r.scenarios.len());
    for sec in sections {
        assert_eq!(
            sec["headers"].as_array().map(Vec::len),
            Some(4),
            "{}",
            sec["phase"]
        );
        for row in sec["rows"].as_array().expect("rows") {
            let gap = row["status"] == "gap";
            assert_eq!(cell(row, "model")["why_visible"], gap, "{}", row["id"]);
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// The command line

fn harness_cmd() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_harness"));
    c.current_dir(root()).env("NO_COLOR", "1");
    c
}

#[test]
fn harness_report_renders_each_format_from_a_file_written_by_harness_check() {
    let dir = tempfile::tempdir().expect("tempdir");
    let results = dir.path().join("seed.json");
    let out = harness_cmd()
        .args(["check", "--posture", "seed", "--output"])
        .arg(&results)
        .output()
        .expect("run harness check");
    assert_eq!(out.status.code(), Some(1), "check with gaps exits 1");
    for (format, marker) in [
        ("table", " met, "),
        ("markdown", "### edge — "),
        ("html", "<table class=\"matrix\">"),
    ] {
        let out = harness_cmd()
            .args(["report", "--format", format])
            .arg(&results)
            .output()
            .expect("run harness report");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{format}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(text.contains(marker), "{format}: no {marker:?} in\n{text}");
    }
    let page = dir.path().join("report.html");
    let out = harness_cmd()
        .args(["report", "--format", "html", "--output"])
        .arg(&page)
        .arg(&results)
        .output()
        .expect("run");
    assert!(out.status.success());
    assert!(
        std::fs::read_to_string(&page)
            .expect("page written")
            .ends_with("</html>\n")
    );
}

#[test]
fn harness_report_refuses_a_malformed_file_with_exit_code_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "{\"version\": 1,\n \"kind\": \"run\",\n oops}").expect("write");
    let out = harness_cmd()
        .args(["report"])
        .arg(&bad)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("bad.json"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

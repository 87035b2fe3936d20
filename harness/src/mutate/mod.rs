//! `harness mutate`: would the scenarios notice a realistic mistake in the posture?
//!
//! Every policy of a posture is mutated once per applicable operator ([`operators`]); each mutant is read
//! back through the project's policy parser and must be in force on the chosen Cilium version, or it is
//! left out as invalid. Each valid mutant is then judged against the scenarios with the model:
//! - **killed**: some scenario's result (intent met or not) differs from the original posture's;
//! - **equivalent**: no flow the stack can produce gets a different verdict, proven by comparing the two
//!   models on every flow of the [`universe`];
//! - **survived**: otherwise. For a survivor the report says whether it widens (a deny became an allow) or
//!   narrows, and proposes a scenario in the `fixtures/scenarios` format, built from a flow on which the
//!   two disagree and checked to kill the mutant.

pub mod operators;
pub mod render;
pub mod universe;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value;

use crate::check::{self, Inputs};
use crate::load::{self, InputError};
use crate::model::kafka::KafkaAction;
use crate::model::{
    Decision, Direction, FastDecision, Flow, IdentityId, IdentityKind, Model, PolicyStatus, Verdict,
};
use crate::policy::{self, Policy, Protocol};
use crate::scenario::{DnsSpec, HttpSpec, KafkaSpec, PostgresSpec, Request, Scenario};
use crate::stack::Stack;
pub use operators::Operator;
use operators::{Mutation, Vocabulary};
use universe::Universe;

/// What one mutant did to the suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Killed,
    Survived,
    Equivalent,
}

/// Which way a surviving mutant changes verdicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Effect {
    /// Some deny became an allow.
    Widens,
    /// Some allow became a deny.
    Narrows,
    /// Both.
    WidensAndNarrows,
    /// Only the layer, direction, drop reason or client outcome of a deny changed.
    ChangesTheReason,
}

/// A scenario that kills a survivor.
#[derive(Debug, Clone, Serialize)]
pub struct Proposal {
    /// The scenario, as an entry of a `fixtures/scenarios` file.
    pub yaml: String,
    #[serde(skip)]
    pub scenario: Scenario,
}

/// One mutant and its fate.
#[derive(Debug, Clone, Serialize)]
pub struct MutantResult {
    pub id: usize,
    pub operator: Operator,
    pub file: String,
    pub policy: String,
    /// Where in the document the change is (`spec.ingress[0].toPorts`).
    pub rule_path: String,
    pub before: String,
    pub after: String,
    pub status: Status,
    /// Scenarios whose result changed (killed mutants).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub killed_by: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub effect: Option<Effect>,
    /// Flows compared for equivalence (survivors and equivalents).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flows_compared: Option<usize>,
    /// Flows with a different verdict (survivors).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flows_differing: Option<usize>,
    /// An example flow on which the mutant and the original disagree.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub example: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proposal: Option<Proposal>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// A mutant that is not a valid policy for the Cilium version.
#[derive(Debug, Clone, Serialize)]
pub struct Invalid {
    pub operator: Operator,
    pub file: String,
    pub rule_path: String,
    pub before: String,
    pub after: String,
    pub reason: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    pub mutants: usize,
    pub killed: usize,
    pub survived: usize,
    pub equivalent: usize,
    /// Mutants left out because the parser or the Cilium version rejects them.
    pub invalid: usize,
    /// killed / (mutants - equivalent), in percent; 100 when every mutant is equivalent.
    pub score: f64,
}

impl Summary {
    /// The summary line.
    pub fn line(&self) -> String {
        format!(
            "mutation score {:.1}%: {} of {} non-equivalent mutants killed ({} mutants, {} equivalent, {} survived; {} invalid left out)",
            self.score,
            self.killed,
            self.mutants - self.equivalent,
            self.mutants,
            self.equivalent,
            self.survived,
            self.invalid
        )
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub posture: String,
    pub cilium: String,
    pub operators: Vec<Operator>,
    pub mutants: Vec<MutantResult>,
    pub invalid: Vec<Invalid>,
    /// Policies not mutated because the Cilium version does not accept them as written.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub skipped_policies: Vec<String>,
    /// Flows (with request classes) in the universe equivalence is decided on.
    pub universe_flows: usize,
    pub summary: Summary,
}

/// A file name for people: relative to the current directory when it is below it.
fn shown(path: &Path) -> String {
    std::env::current_dir()
        .ok()
        .and_then(|d| path.strip_prefix(d).ok().map(Path::to_path_buf))
        .unwrap_or_else(|| path.to_path_buf())
        .display()
        .to_string()
}

/// One policy document as written.
struct Document {
    file: PathBuf,
    value: Value,
}

/// Read the posture's documents in the order `policy::load_policies` reads them.
fn documents(paths: &[PathBuf]) -> Result<Vec<Document>, InputError> {
    let mut out = Vec::new();
    for p in paths {
        for file in load::yaml_files(p)? {
            let text = load::read_text(&file)?;
            for doc in load::split_documents(&text) {
                let value: Value = load::parse_document(&file, &doc)?;
                out.push(Document {
                    file: file.clone(),
                    value,
                });
            }
        }
    }
    Ok(out)
}

/// Whether a mutated document passes the CRD schema check `check` and `apply` run (through a scratch
/// file, which is what that check reads).
fn crd_valid(text: &str, file: &Path, version: crate::model::CiliumVersion) -> Result<(), String> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    let scratch = std::env::temp_dir().join(format!(
        "harness-mutant-{}-{}.yaml",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::write(&scratch, text)
        .map_err(|e| format!("cannot write {}: {e}", scratch.display()))?;
    let r = crate::schema::validate_policy_files(std::slice::from_ref(&scratch), version);
    let _ = std::fs::remove_file(&scratch);
    r.map(|_| ()).map_err(|e| {
        format!(
            "the Cilium CRD schema rejects it: {}",
            e.to_string()
                .replace(&scratch.display().to_string(), &shown(file))
        )
    })
}

/// What the operators may switch values to.
fn vocabulary(stack: &Stack) -> Vocabulary {
    let mut v = Vocabulary::default();
    for w in &stack.workloads {
        v.namespaces.insert(w.namespace.clone());
        for (k, val) in &w.labels {
            v.label_values
                .entry(k.clone())
                .or_default()
                .insert(val.clone());
        }
        for p in &w.ports {
            v.ports_by_namespace
                .entry(w.namespace.clone())
                .or_default()
                .insert((p.port, p.name.clone()));
        }
    }
    v.namespaces.extend(stack.namespaces.keys().cloned());
    v
}

/// A verdict with no text, for judging.
fn verdict_of(d: &FastDecision) -> Verdict {
    Verdict {
        decision: d.decision,
        layer: d.layer,
        direction: d.direction,
        drop_reason: d.drop_reason,
        expected_outcome: d.outcome,
        proxied: d.proxied,
        policies: Vec::new(),
        explanation: String::new(),
        notes: Vec::new(),
        denied_kafka_key: d.denied_kafka_key.clone(),
        endpoint_policy_error: None,
    }
}

/// Whether each flow scenario's intent is met by a model (`None` for configuration checks).
fn statuses(model: &Model, scenarios: &[Scenario]) -> Vec<Option<bool>> {
    scenarios
        .iter()
        .map(|s| {
            if s.check.is_some() {
                return None;
            }
            let flow = check::flow_of(model, s)?;
            Some(check::judge(s, &verdict_of(&model.decide(&flow))).0)
        })
        .collect()
}

/// Whether a scenario's intent is met by a model.
pub fn meets(model: &Model, s: &Scenario) -> Option<bool> {
    let flow = check::flow_of(model, s)?;
    Some(check::judge(s, &verdict_of(&model.decide(&flow))).0)
}

/// Options of a run.
#[derive(Debug, Clone)]
pub struct Options {
    pub inputs: Inputs,
    pub operators: BTreeSet<Operator>,
}

/// Parse an `--operators` list (comma-separated names; empty or `all`: every operator).
///
/// # Errors
/// An unknown operator name.
pub fn parse_operators(list: Option<&str>) -> Result<BTreeSet<Operator>, InputError> {
    match list.map(str::trim) {
        None | Some("") | Some("all") => Ok(Operator::ALL.into_iter().collect()),
        Some(l) => l
            .split(',')
            .filter(|s| !s.trim().is_empty())
            .map(|s| {
                s.parse::<Operator>()
                    .map_err(|e| InputError::Invalid(format!("--operators: {e}")))
            })
            .collect(),
    }
}

/// A generated, valid mutant.
struct Candidate {
    doc: usize,
    mutation: Mutation,
    policies: Vec<Policy>,
}

/// Run the mutation analysis.
///
/// # Errors
/// Bad input files, or an unknown operator.
pub fn run(opts: &Options) -> Result<Report, InputError> {
    let inputs = &opts.inputs;
    let loaded = check::load(inputs)?;
    let docs = documents(&inputs.policies)?;
    if docs.len() != loaded.policies.len() {
        return Err(InputError::Invalid(format!(
            "the posture's files hold {} documents but {} policies",
            docs.len(),
            loaded.policies.len()
        )));
    }
    let original = &loaded.model;
    let vocab = vocabulary(&loaded.stack);
    let base_status = statuses(original, &loaded.scenarios);
    let mut invalid = Vec::new();
    let mut skipped = Vec::new();
    let mut candidates = Vec::new();
    for (di, doc) in docs.iter().enumerate() {
        let pol = &loaded.policies[di];
        if original.policies[di].status != PolicyStatus::InForce {
            skipped.push(format!(
                "{} ({}): not in force on Cilium {}",
                pol.qualified_name(),
                shown(&doc.file),
                inputs.version
            ));
            continue;
        }
        let mut seen: BTreeSet<String> = BTreeSet::new();
        for m in operators::mutations(&doc.value, &opts.operators, &vocab) {
            let reject = |reason: String, invalid: &mut Vec<Invalid>| {
                invalid.push(Invalid {
                    operator: m.operator,
                    file: shown(&doc.file),
                    rule_path: operators::show_path(&m.path),
                    before: m.before.clone(),
                    after: m.after.clone(),
                    reason,
                })
            };
            let mut policies = loaded.policies.clone();
            match operators::apply(&doc.value, &m) {
                None if m.path.is_empty() => {
                    policies.remove(di);
                }
                None => {
                    reject("the change could not be applied".into(), &mut invalid);
                    continue;
                }
                Some(new) => {
                    let text = serde_json::to_string(&new)
                        .map_err(|e| InputError::Invalid(e.to_string()))?;
                    if !seen.insert(text.clone()) {
                        continue;
                    }
                    if let Err(why) = crd_valid(&text, &doc.file, inputs.version) {
                        reject(why, &mut invalid);
                        continue;
                    }
                    match policy::parse_policies(&doc.file, &text) {
                        Ok(mut ps) if ps.len() == 1 => {
                            let mut p = ps.remove(0);
                            p.line = pol.line;
                            policies[di] = p;
                        }
                        Ok(_) => {
                            reject("not one policy".into(), &mut invalid);
                            continue;
                        }
                        Err(e) => {
                            reject(format!("the policy parser rejects it: {e}"), &mut invalid);
                            continue;
                        }
                    }
                }
            }
            candidates.push(Candidate {
                doc: di,
                mutation: m,
                policies,
            });
        }
    }
    // Build each mutant's model; drop those the version rejects.
    let ids = Model::identities_of(&loaded.stack);
    let mut built: Vec<(Candidate, Model)> = Vec::new();
    let rejected_before: BTreeSet<&str> = original
        .policies
        .iter()
        .filter(|p| p.status != PolicyStatus::InForce)
        .map(|p| p.name.as_str())
        .collect();
    for c in candidates {
        let model = Model::build(&c.policies, ids.clone(), inputs.version);
        let rejected = model.policies.iter().find_map(|p| match &p.status {
            PolicyStatus::Rejected { reason } if !rejected_before.contains(p.name.as_str()) => {
                Some(format!("{}: {reason}", p.name))
            }
            _ => None,
        });
        if let Some(reason) = rejected {
            invalid.push(Invalid {
                operator: c.mutation.operator,
                file: shown(&docs[c.doc].file),
                rule_path: operators::show_path(&c.mutation.path),
                before: c.mutation.before.clone(),
                after: c.mutation.after.clone(),
                reason: format!("Cilium {} rejects it: {reason}", inputs.version),
            });
            continue;
        }
        built.push((c, model));
    }
    let scenario_ports: Vec<u16> = loaded.scenarios.iter().filter_map(|s| s.port).collect();
    let universe = Universe::build(
        original,
        loaded
            .policies
            .iter()
            .chain(built.iter().flat_map(|(c, _)| c.policies.iter())),
        scenario_ports,
    );
    let ctx = Context {
        original,
        universe: &universe,
    };
    let mut mutants = Vec::new();
    for (i, (c, model)) in built.iter().enumerate() {
        let st = statuses(model, &loaded.scenarios);
        let killed_by: Vec<String> = loaded
            .scenarios
            .iter()
            .zip(base_status.iter().zip(&st))
            .filter(|(_, (a, b))| a != b)
            .map(|(s, _)| s.id.clone())
            .collect();
        let pol = &loaded.policies[c.doc];
        let mut r = MutantResult {
            id: i + 1,
            operator: c.mutation.operator,
            file: shown(&docs[c.doc].file),
            policy: pol.qualified_name(),
            rule_path: operators::show_path(&c.mutation.path),
            before: c.mutation.before.clone(),
            after: c.mutation.after.clone(),
            status: Status::Killed,
            killed_by,
            effect: None,
            flows_compared: None,
            flows_differing: None,
            example: None,
            proposal: None,
            note: None,
        };
        if r.killed_by.is_empty() {
            ctx.judge_survivor(&mut r, model);
        }
        mutants.push(r);
    }
    let count = |s: Status| mutants.iter().filter(|m| m.status == s).count();
    let (killed, survived, equivalent) = (
        count(Status::Killed),
        count(Status::Survived),
        count(Status::Equivalent),
    );
    let live = mutants.len() - equivalent;
    let summary = Summary {
        mutants: mutants.len(),
        killed,
        survived,
        equivalent,
        invalid: invalid.len(),
        score: if live == 0 {
            100.0
        } else {
            100.0 * killed as f64 / live as f64
        },
    };
    Ok(Report {
        posture: inputs.posture.clone(),
        cilium: inputs.version.to_string(),
        operators: opts.operators.iter().copied().collect(),
        mutants,
        invalid,
        skipped_policies: skipped,
        universe_flows: universe.size(),
        summary,
    })
}

struct Context<'a> {
    original: &'a Model,
    universe: &'a Universe,
}

impl Context<'_> {
    /// Classify a mutant no scenario noticed: equivalent, or survived with a proposed scenario.
    fn judge_survivor(&self, r: &mut MutantResult, mutant: &Model) {
        let cmp = universe::compare(self.universe, self.original, mutant);
        r.flows_compared = Some(cmp.flows);
        if cmp.differing == 0 {
            match &self.universe.unprovable {
                None => r.status = Status::Equivalent,
                Some(why) => {
                    r.status = Status::Survived;
                    r.note = Some(format!(
                        "no difference found, but equivalence cannot be proven: {why}"
                    ));
                }
            }
            return;
        }
        r.status = Status::Survived;
        r.flows_differing = Some(cmp.differing);
        r.effect = Some(match (cmp.widens, cmp.narrows) {
            (true, true) => Effect::WidensAndNarrows,
            (true, false) => Effect::Widens,
            (false, true) => Effect::Narrows,
            (false, false) => Effect::ChangesTheReason,
        });
        let first = cmp
            .examples
            .iter()
            .find(|d| universe::judgeably_different(&d.original, &d.mutant))
            .or(cmp.examples.first());
        if let Some(d) = first {
            r.example = Some(self.describe_difference(d));
        }
        r.proposal = self.propose(r, mutant, &cmp);
        if r.proposal.is_none() {
            r.note = Some(if cmp.judgeable.is_empty() {
                "the verdicts differ only in drop reason or client outcome, which no scenario field states".into()
            } else {
                "the flows that differ cannot be written as a scenario (their source or destination is the host, a remote node or the API server, or the request has no scenario form)".into()
            });
        }
    }

    fn describe_difference(&self, d: &universe::Difference) -> String {
        let ids = &self.original.identities;
        let show = |f: &FastDecision| {
            let mut s = match f.decision {
                Decision::Allow => "allow".to_string(),
                Decision::Deny => "deny".to_string(),
            };
            if let Some(l) = f.layer {
                s.push_str(&format!(
                    " at {}",
                    serde_json::to_string(&l)
                        .unwrap_or_default()
                        .trim_matches('"')
                ));
            }
            if let Some(dir) = f.direction {
                s.push_str(&format!(
                    " {}",
                    serde_json::to_string(&dir)
                        .unwrap_or_default()
                        .trim_matches('"')
                ));
            }
            s
        };
        let req = match &d.flow.l7 {
            None => String::new(),
            Some(l) => format!(" {}", serde_json::to_string(l).unwrap_or_default()),
        };
        format!(
            "{} -> {} {}/{}{req}: original {}, mutant {}",
            ids[d.flow.from].name,
            ids[d.flow.to].name,
            d.flow.port,
            d.flow.protocol,
            show(&d.original),
            show(&d.mutant)
        )
    }

    /// The request kind a destination's port is for, from its container port's name.
    fn natural(&self, to: IdentityId, port: u16, proto: Protocol) -> &'static str {
        let id = &self.original.identities[to];
        let name = id
            .ports
            .iter()
            .find(|p| p.port == port && p.protocol == proto)
            .and_then(|p| p.name.as_deref())
            .unwrap_or_default();
        match (name, proto) {
            (_, Protocol::Udp) => "dns",
            ("https", _) => "https",
            ("postgres", _) => "postgres",
            ("kafka", _) => "kafka",
            ("http" | "admin" | "metrics" | "web", _) => "http",
            _ => "tcp",
        }
    }

    /// Requests with a scenario form for a flow, the destination port's own kind first.
    fn scenario_requests(&self, to: IdentityId, port: u16, proto: Protocol) -> Vec<Request> {
        let u = self.universe;
        if proto == Protocol::Udp {
            let mut names: Vec<String> = u.dns.clone();
            if names.is_empty() {
                names.push("harness-other.example.com".into());
            }
            return names
                .into_iter()
                .map(|query| Request::Dns(DnsSpec { query }))
                .collect();
        }
        if proto != Protocol::Tcp {
            return Vec::new();
        }
        let mut http: Vec<Request> = u
            .http
            .iter()
            .filter(|h| h.path.starts_with('/'))
            .map(|h| {
                Request::Http(HttpSpec {
                    method: h.method.clone(),
                    path: h.path.clone(),
                    headers: h
                        .headers
                        .iter()
                        .map(|(k, v)| {
                            let name = if k.eq_ignore_ascii_case("authorization") {
                                "Authorization".to_string()
                            } else {
                                k.clone()
                            };
                            let value = if v == "harness-other-value" && name == "Authorization" {
                                "Bearer harness-token".to_string()
                            } else {
                                v.clone()
                            };
                            (name, value)
                        })
                        .collect(),
                    body: None,
                    host: h.host.clone(),
                })
            })
            .collect();
        if http.is_empty() {
            http.push(Request::Http(HttpSpec {
                method: "GET".into(),
                path: "/".into(),
                headers: BTreeMap::new(),
                body: None,
                host: None,
            }));
        }
        let mut kafka = Vec::new();
        for action in [KafkaAction::Produce, KafkaAction::Consume] {
            for topic in &u.topics {
                for client in &u.clients {
                    kafka.push(Request::Kafka(KafkaSpec {
                        action,
                        topic: topic.replace("harness-other-topic", "audit"),
                        client_id: client.replace("harness-other-client", "rogue-service"),
                    }));
                }
            }
        }
        let tcp = vec![Request::Tcp {}];
        let opaque = vec![Request::Postgres(PostgresSpec {
            query: "SELECT 1".into(),
            user: "postgres".into(),
            database: "postgres".into(),
        })];
        let https = vec![Request::Https(HttpSpec {
            method: "GET".into(),
            path: "/".into(),
            headers: BTreeMap::new(),
            body: None,
            host: None,
        })];
        let order: Vec<Vec<Request>> = match self.natural(to, port, proto) {
            "http" => vec![http, tcp, kafka],
            "https" => vec![https, tcp, http, kafka],
            "postgres" => vec![opaque, tcp, http, kafka],
            "kafka" => vec![kafka, tcp, http],
            _ => vec![tcp, http, kafka],
        };
        order.into_iter().flatten().collect()
    }

    /// A scenario, built from a flow on which the two models disagree, that the original meets and the
    /// mutant does not.
    fn propose(
        &self,
        r: &MutantResult,
        mutant: &Model,
        cmp: &universe::Comparison,
    ) -> Option<Proposal> {
        let ids = &self.original.identities;
        let nameable =
            |i: IdentityId| matches!(ids[i].kind, IdentityKind::Pod | IdentityKind::World);
        let mut tuples: Vec<_> = cmp
            .judgeable
            .iter()
            .filter(|(f, t, ..)| nameable(*f) && nameable(*t))
            .collect();
        // Widenings first, then ports the destination serves, then ports any scenario or policy names.
        tuples.sort_by_key(|(_, t, port, proto, widening)| {
            let serves = ids[*t]
                .ports
                .iter()
                .any(|p| p.port == *port && p.protocol == *proto);
            (
                !*widening,
                !serves,
                !self.universe.named_ports.contains(port),
                *proto != Protocol::Tcp,
                *port,
            )
        });
        for (from, to, port, proto, _) in tuples.into_iter().take(64) {
            for mut req in self.scenario_requests(*to, *port, *proto) {
                // The authority the probe sends (and a loaded scenario gets): the model decides `host:`
                // rules on it, so the mutant is judged on the request the scenario will make.
                if let Request::Http(h) | Request::Https(h) = &mut req
                    && h.host.is_none()
                {
                    h.host = Some(crate::scenario::default_authority(&ids[*to].name, *port));
                }
                let flow = Flow {
                    from: *from,
                    to: *to,
                    port: *port,
                    protocol: *proto,
                    l7: req.l7(),
                };
                let a = self.original.decide(&flow);
                let b = mutant.decide(&flow);
                if !universe::judgeably_different(&a, &b) {
                    continue;
                }
                let s = self.scenario(r, *from, *to, *port, *proto, req.clone(), &a);
                let kills = |s: &Scenario| {
                    meets(self.original, s) == Some(true) && meets(mutant, s) == Some(false)
                };
                if kills(&s) {
                    return Some(self.proposal(s));
                }
                let mut with_direction = s.clone();
                with_direction.direction = a.direction;
                if a.decision == Decision::Deny && kills(&with_direction) {
                    return Some(self.proposal(with_direction));
                }
            }
        }
        None
    }

    #[allow(clippy::too_many_arguments)]
    fn scenario(
        &self,
        r: &MutantResult,
        from: IdentityId,
        to: IdentityId,
        port: u16,
        proto: Protocol,
        request: Request,
        original: &FastDecision,
    ) -> Scenario {
        let ids = &self.original.identities;
        let (fname, tname) = (&ids[from].name, &ids[to].name);
        let slug = |s: &str| {
            s.chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
                .collect::<String>()
        };
        let what = request.summary();
        let description = match original.decision {
            Decision::Allow => format!("{fname} may {what} on {tname} port {port}/{proto}"),
            Decision::Deny => format!("{fname} cannot {what} on {tname} port {port}/{proto}"),
        };
        Scenario {
            id: format!("mutant-{}-{}-to-{}-{port}", r.id, slug(fname), slug(tname)),
            description,
            phase: String::new(),
            from: Some(fname.clone()),
            to: Some(tname.clone()),
            port: Some(port),
            protocol: (proto != request.protocol()).then_some(proto),
            request: Some(request),
            check: None,
            intent: original.decision,
            layer: original.layer,
            direction: original
                .direction
                .filter(|d| *d == Direction::Egress && original.decision == Decision::Deny),
            expect_outcome: None,
            note: Some(format!(
                "kills mutant {}: {} at {} {} ({} -> {})",
                r.id, r.operator, r.file, r.rule_path, r.before, r.after
            )),
            origin: String::new(),
        }
    }

    fn proposal(&self, s: Scenario) -> Proposal {
        Proposal {
            yaml: render::scenario_yaml(&s),
            scenario: s,
        }
    }
}

/// The inputs of `check` for a posture directory under a repository root.
pub fn inputs_for(
    root: &Path,
    posture: &str,
    dir: PathBuf,
    version: crate::model::CiliumVersion,
) -> Inputs {
    Inputs {
        policies: vec![dir],
        posture: posture.to_string(),
        stack_file: root.join("fixtures/stack.yaml"),
        scenarios: root.join("fixtures/scenarios"),
        helm_values: None,
        version,
    }
}

#[cfg(test)]
mod tests;

//! `harness eval`: decide ad-hoc flows against any policies.
//!
//! The query file is a public interface (documented in the README):
//!
//! ```yaml
//! workloads:                    # optional: workloads that are not in the stack's manifests
//! - namespace: tmp
//!   name: debug
//!   labels: {role: frontend}
//!   ports: [{name: http, port: 8080}]
//! queries:
//! - id: frontend-delete
//!   from: frontend/frontend     # a workload (namespace/name), an outside host, an IP address,
//!                               # or host / remote-node / kube-apiserver
//!   to: backend/api
//!   port: 8080
//!   protocol: TCP               # optional; default from the request (UDP for dns), else TCP
//!   request:                    # optional; same forms as in scenarios, plus
//!     http: {method: DELETE, path: /api/v1/orders/1}
//!     # kafkaRequests: [{apiKey: produce, apiVersion: 2, clientId: a, topics: [orders]}]
//! ```

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::load::{self, InputError};
use crate::model::labels::LabelSet;
use crate::model::{
    CLUSTER_NAME, CiliumVersion, Flow, Identity, IdentityKind, Model, PolicyInfo, Verdict,
};
use crate::policy::{Policy, Protocol};
use crate::scenario::Request;
use crate::stack::{NamedPort, Stack};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueryFile {
    #[serde(default)]
    pub workloads: Vec<QueryWorkload>,
    pub queries: Vec<Query>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct QueryWorkload {
    pub namespace: String,
    pub name: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub namespace_labels: BTreeMap<String, String>,
    #[serde(default)]
    pub ports: Vec<NamedPort>,
    pub service_account: Option<String>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Query {
    pub id: String,
    pub from: String,
    pub to: String,
    #[serde(deserialize_with = "crate::policy::port_number")]
    pub port: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<Protocol>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<Request>,
}

#[derive(Debug, Serialize)]
pub struct EvalOutput {
    pub cilium: String,
    pub policies: Vec<PolicyInfo>,
    pub results: Vec<EvalResult>,
}

#[derive(Debug, Serialize)]
pub struct EvalResult {
    #[serde(flatten)]
    pub query: Query,
    pub verdict: Verdict,
}

/// Decide every query of `queries_file`.
///
/// # Errors
/// Bad query file (path, line, field) or a query naming an unknown peer.
pub fn run(
    policies: &[Policy],
    stack: &Stack,
    queries_file: &Path,
    version: CiliumVersion,
) -> Result<EvalOutput, InputError> {
    let text = load::read_text(queries_file)?;
    let qf = parse_query_file(queries_file, &text)?;
    let ids = query_identities(stack, &qf, queries_file)?;
    let model = Model::build(policies, ids, version);
    let mut results = Vec::new();
    for q in qf.queries {
        let resolve = |field: &str, peer: &str| -> Result<usize, InputError> {
            if let Ok(ip) = peer.parse::<IpAddr>()
                && let Some(i) = model.identities.iter().position(|i| i.ip == Some(ip))
            {
                return Ok(i);
            }
            model.identity(peer).ok_or_else(|| {
                let names: Vec<&str> = model.identities.iter().map(|i| i.name.as_str()).collect();
                let close = load::nearest(peer, names.iter().copied());
                let hint = match close.first() {
                    Some(n) => format!("did you mean `{n}`? "),
                    None => String::new(),
                };
                InputError::at(
                    queries_file,
                    line_of(&text, &q.id),
                    format!(
                        "query `{}`: {field}: `{peer}` is not a workload (namespace/name), an outside host, an IP address, host, remote-node or kube-apiserver; {hint}known: {}",
                        q.id,
                        names.join(", ")
                    ),
                )
            })
        };
        let from = resolve("from", &q.from)?;
        let to = resolve("to", &q.to)?;
        let protocol = q
            .protocol
            .or_else(|| q.request.as_ref().map(Request::protocol))
            .unwrap_or(Protocol::Tcp);
        let flow = Flow {
            from,
            to,
            port: q.port,
            protocol,
            l7: q.request.as_ref().and_then(Request::l7),
        };
        let mut verdict = model.explain(&flow);
        if !verdict.explanation.contains("docs/semantics.md#") {
            let cite = crate::check::citation(&verdict, flow.l7.as_ref());
            verdict.explanation = format!("{} ({cite})", verdict.explanation);
        }
        results.push(EvalResult { query: q, verdict });
    }
    Ok(EvalOutput {
        cilium: version.to_string(),
        policies: model.policies.clone(),
        results,
    })
}

/// Parse a query file; a file that is a list instead of a mapping gets a message saying what is expected.
///
/// # Errors
/// Bad query file (path, line, field).
pub fn parse_query_file(path: &Path, text: &str) -> Result<QueryFile, InputError> {
    let first = text.lines().enumerate().find(|(_, l)| {
        !l.trim().is_empty() && !l.trim_start().starts_with('#') && l.trim() != "---"
    });
    if let Some((i, l)) = first
        && (l.trim_start().starts_with("- ") || l.trim() == "-" || l.trim_start().starts_with('['))
    {
        return Err(InputError::at(
            path,
            Some(i as u64 + 1),
            "the query file is a list; it must be a mapping with `queries:` (a list of queries) and optionally `workloads:` (see the README, \"Query format\")",
        ));
    }
    load::parse_one(path, text)
}

/// The identities a query file is decided against: the stack's, the file's own workloads, and a world
/// identity for every address a query names. `harness eval --dump-identities` exports them for the oracle.
///
/// # Errors
/// A workload of the file that already exists in the stack.
pub fn query_identities(
    stack: &Stack,
    qf: &QueryFile,
    queries_file: &Path,
) -> Result<Vec<Identity>, InputError> {
    let mut ids = Model::identities_of(stack);
    for w in &qf.workloads {
        let mut nsl = stack.namespace_labels(&w.namespace);
        nsl.extend(w.namespace_labels.clone());
        let name = format!("{}/{}", w.namespace, w.name);
        if ids.iter().any(|i| i.name == name) {
            return Err(InputError::at(
                queries_file,
                None,
                format!("workloads: `{name}` already exists in the stack"),
            ));
        }
        ids.push(Identity {
            name,
            kind: IdentityKind::Pod,
            labels: LabelSet::for_pod(
                &w.namespace,
                &w.labels,
                &nsl,
                w.service_account.as_deref().unwrap_or("default"),
                CLUSTER_NAME,
            ),
            ip: None,
            ports: w.ports.clone(),
        });
    }
    // Addresses named by queries become world identities (unless an outside host has that address).
    for q in &qf.queries {
        for peer in [&q.from, &q.to] {
            if let Ok(ip) = peer.parse::<IpAddr>()
                && !ids.iter().any(|i| i.ip == Some(ip))
            {
                ids.push(Identity::world(&ip.to_string(), ip));
            }
        }
    }
    Ok(ids)
}

/// Read a query file and give its identities (see [`query_identities`]).
///
/// # Errors
/// Bad query file (path, line, field).
pub fn read_query_identities(
    stack: &Stack,
    queries_file: &Path,
) -> Result<Vec<Identity>, InputError> {
    let text = load::read_text(queries_file)?;
    let qf = parse_query_file(queries_file, &text)?;
    query_identities(stack, &qf, queries_file)
}

fn line_of(text: &str, id: &str) -> Option<u64> {
    text.lines()
        .position(|l| {
            let t = l.trim_start().trim_start_matches("- ").trim_start();
            t.strip_prefix("id:")
                .is_some_and(|r| r.trim().trim_matches('"') == id)
        })
        .map(|i| i as u64 + 1)
}

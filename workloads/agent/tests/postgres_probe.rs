//! The PostgreSQL probe against a real server (local binaries, or the postgres image where Docker is).

mod common;

use common::{closed_port, probe, servers::Postgres};
use probe_wire::{Outcome, PostgresQuery, ProbeRequest, ProbeSpec};

fn pg(target: impl ToString, query: &str) -> ProbeSpec {
    let mut s = ProbeSpec::new(
        target.to_string(),
        ProbeRequest::Postgres(PostgresQuery {
            query: query.into(),
            ..PostgresQuery::default()
        }),
    );
    s.timeout_ms = 10_000;
    s
}

#[test]
fn a_query_as_postgres_without_password_completes_with_its_rows() {
    let server = Postgres::start();
    let r = probe(&pg(
        server.addr,
        "SELECT 41 + 1 AS answer, NULL::text AS nothing UNION ALL SELECT 7, 'x'",
    ));
    assert_eq!(r.outcome, Outcome::Completed, "{}", r.detail);
    let rows = r.postgres.expect("postgres details").rows;
    assert_eq!(
        rows,
        vec![
            vec![Some("42".to_owned()), None],
            vec![Some("7".to_owned()), Some("x".to_owned())]
        ]
    );
    assert!(r.timings.first_byte_ms.is_some() && r.local_addr.is_some());
}

#[test]
fn a_server_error_is_a_postgres_error_with_its_sqlstate() {
    let server = Postgres::start();
    let r = probe(&pg(server.addr, "SELECT * FROM no_such_table"));
    assert_eq!(r.outcome, Outcome::PostgresError, "{}", r.detail);
    let d = r.postgres.expect("postgres details");
    assert_eq!(d.sqlstate.as_deref(), Some("42P01"));
    assert!(d.message.expect("message").contains("no_such_table"));
    let mut spec = pg(server.addr, "SELECT 1");
    if let ProbeRequest::Postgres(q) = &mut spec.request {
        q.database = "no_such_db".into();
    }
    let r = probe(&spec);
    assert_eq!(r.outcome, Outcome::PostgresError, "{}", r.detail);
    assert_eq!(
        r.postgres.expect("details").sqlstate.as_deref(),
        Some("3D000")
    );
}

#[test]
fn postgres_on_a_closed_port_is_refused() {
    let r = probe(&pg(closed_port(), "SELECT 1"));
    assert_eq!(r.outcome, Outcome::Refused, "{}", r.detail);
}

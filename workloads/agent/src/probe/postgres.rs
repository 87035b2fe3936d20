//! `agent probe postgres`: connect without TLS, authenticate, run one query (simple query protocol).

use probe_wire::{Outcome, PostgresDetails, PostgresQuery};
use tokio::time::timeout_at;
use tokio_postgres::SimpleQueryMessage;

use super::{Report, Verdict};
use crate::classify::{self, Phase};
use crate::clock::Clock;
use crate::net::{self, Failure, Target};
use crate::timed::Timed;

/// At most this many rows are reported.
const MAX_ROWS: usize = 100;

pub(super) async fn probe(
    target: &Target,
    clock: &Clock,
    report: &mut Report,
    q: &PostgresQuery,
) -> Verdict {
    let c = match net::connect(target, clock).await {
        Ok(c) => c,
        Err(e) => return Err(report.connect_failed(e)),
    };
    report.connected(&c);
    let (stream, seen) = Timed::new(c.stream);
    report.first_byte = Some(seen);
    let mut config = tokio_postgres::Config::new();
    config.user(&q.user).dbname(&q.database);
    if let Some(p) = &q.password {
        config.password(p);
    }
    let session = async {
        let (client, connection) = config.connect_raw(stream, tokio_postgres::NoTls).await?;
        let driver = tokio::spawn(connection);
        let result = client.simple_query(&q.query).await;
        driver.abort();
        result
    };
    let messages = match timeout_at(clock.deadline(), session).await {
        Err(_) => {
            return Err(Failure::new(
                Outcome::Timeout,
                "connected, but the session or query did not finish before the deadline",
            ));
        }
        Ok(Err(e)) => return Err(pg_failure(&e, report)),
        Ok(Ok(m)) => m,
    };
    let mut rows = Vec::new();
    let mut total = 0usize;
    for m in messages {
        if let SimpleQueryMessage::Row(row) = m {
            total += 1;
            if rows.len() < MAX_ROWS {
                rows.push(
                    (0..row.len())
                        .map(|i| row.get(i).map(str::to_owned))
                        .collect(),
                );
            }
        }
    }
    report.postgres = Some(PostgresDetails {
        rows,
        sqlstate: None,
        message: None,
    });
    Ok(format!("query returned {total} row(s)"))
}

/// A server error (with its SQLSTATE) is a PostgreSQL error; otherwise the I/O error in the chain decides;
/// a connection closed without an error message is a protocol error.
fn pg_failure(e: &tokio_postgres::Error, report: &mut Report) -> Failure {
    if let Some(db) = e.as_db_error() {
        report.postgres = Some(PostgresDetails {
            rows: Vec::new(),
            sqlstate: Some(db.code().code().to_owned()),
            message: Some(db.message().to_owned()),
        });
        return Failure::new(
            Outcome::PostgresError,
            format!("server error {}: {}", db.code().code(), db.message()),
        );
    }
    if let Some(io) = classify::io_error_in_chain(e) {
        return Failure::io(io, Phase::Exchange, "PostgreSQL session failed");
    }
    Failure::new(
        Outcome::ProtocolError,
        format!("PostgreSQL session failed: {e}"),
    )
}

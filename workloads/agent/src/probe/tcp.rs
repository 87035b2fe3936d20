//! `agent probe tcp`: connect, then close. Nothing is sent.

use super::{Report, Verdict};
use crate::clock::Clock;
use crate::net::{self, Target};

pub(super) async fn probe(target: &Target, clock: &Clock, report: &mut Report) -> Verdict {
    let c = match net::connect(target, clock).await {
        Ok(c) => c,
        Err(e) => return Err(report.connect_failed(e)),
    };
    report.connected(&c);
    Ok(format!("connected to {}", c.peer))
}

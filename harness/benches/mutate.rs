//! Run time of `harness mutate` on the hardened posture (every operator, Cilium 1.19): generation,
//! validation, judging against the scenarios, and the exhaustive equivalence comparison of every mutant
//! no scenario kills.
//!
//! Run: `cargo bench -p harness --bench mutate` (a release build; prints the median of several runs).

use std::path::Path;
use std::time::{Duration, Instant};

use harness::model::CiliumVersion;
use harness::mutate::{self, Options};

const RUNS: usize = 5;

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let opts = Options {
        inputs: mutate::inputs_for(
            &root,
            "hardened",
            root.join("policies/hardened"),
            CiliumVersion::new(1, 19),
        ),
        operators: mutate::parse_operators(None).expect("operators"),
    };
    let mut times: Vec<Duration> = Vec::new();
    let mut last = None;
    for _ in 0..RUNS {
        let t = Instant::now();
        let r = mutate::run(&opts).expect("run");
        times.push(t.elapsed());
        last = Some(r);
    }
    times.sort();
    let r = last.expect("a run");
    let compared: usize = r.mutants.iter().filter_map(|m| m.flows_compared).sum();
    let median = times[RUNS / 2];
    println!("harness mutate --posture hardened (Cilium 1.19), {RUNS} runs, one thread");
    println!("  {}", r.summary.line());
    println!(
        "  universe: {} flows per comparison; {} flows compared in total",
        r.universe_flows, compared
    );
    println!(
        "  run time: median {:.0} ms (min {:.0} ms, max {:.0} ms)",
        median.as_secs_f64() * 1e3,
        times[0].as_secs_f64() * 1e3,
        times[RUNS - 1].as_secs_f64() * 1e3
    );
    let secs = median.as_secs_f64();
    if secs > 0.0 {
        println!(
            "  {:.1} million decisions per second in the comparisons",
            2.0 * compared as f64 / secs / 1e6
        );
    }
}

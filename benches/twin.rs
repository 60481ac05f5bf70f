//! Fitting a twin: an hour of traces of a 26-service application (the built-in
//! `social-network` topology, simulated at 10 requests/s: about the traffic of a small
//! production service) grouped into service visits and fitted into a topology, on one
//! thread. The target: under a minute for an hour of a 30-service application.
//!
//! `cargo bench --bench twin`: the simulation is not timed; hops and fit are timed three
//! times each, median reported.

use std::time::Instant;

use augur_connectors::simulator::Topology;
use augur_connectors::twin::{self, FitInput, Names, hops_of};

const SECONDS: f64 = 3600.0;

fn main() {
    let topology = Topology::builtin("social-network").expect("built-in topology");
    let rate = topology.spec().load.rate_per_s;
    let scale = 10.0 / rate;
    let started = Instant::now();
    let (spans, _) = twin::simulate::run(&topology, scale, 5.0, SECONDS, 7).expect("simulates");
    println!(
        "twin bench: social-network, {} services, {SECONDS} s at 10 requests/s: {} spans (simulated in {:.1} s, not timed)",
        topology.spec().services.len(),
        spans.len(),
        started.elapsed().as_secs_f64()
    );
    let mut hops_s = Vec::new();
    let mut fit_s = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        let mut names = Names::default();
        let hops = hops_of(&spans, &mut names);
        hops_s.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        let fitted = twin::fit(&FitInput {
            name: "bench",
            hops: &hops,
            names: &names,
            duration_s: SECONDS,
            sources: vec!["simulated social-network".to_string()],
            telemetry: Default::default(),
        })
        .expect("fits");
        fit_s.push(t.elapsed().as_secs_f64());
        std::hint::black_box(fitted);
    }
    hops_s.sort_by(f64::total_cmp);
    fit_s.sort_by(f64::total_cmp);
    println!(
        "grouping into visits: {:.2} s; fitting: {:.2} s; total {:.2} s (median of 3)",
        hops_s[1],
        fit_s[1],
        hops_s[1] + fit_s[1]
    );
}

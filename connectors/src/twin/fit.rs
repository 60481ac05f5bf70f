//! Fitting a simulator topology to observed hops: services and their replicas, operations
//! with their call stages and self-time distributions, network delay, the request mix and
//! rate, per-operation error rates, thread pools and cores.
//!
//! In: the hops of the fitting range ([`super::hops::hops_of`]) and that range's length.
//! Out: a [`Fitted`] topology spec with the notes the TOML writer puts beside each section
//! (what was measured, and what was not observable and took a default). Keeps no state.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::TwinError;
use super::hops::{Hop, Names, own_work_ns, self_times_ns};
use super::quantile::quantile;
use super::stages::{Instance, ObservedCall, infer};
use super::variants::{Root, variants};
use crate::simulator::{
    LoadSpec, OperationSpec, RequestSpec, ServiceSpec, SloSpec, TelemetrySpec, Topology,
    TopologySpec,
};

/// Standard normal quantiles used to turn a sample quantile into a lognormal sigma.
const Z99: f64 = 2.326_347_9;
const Z90: f64 = 1.281_551_6;
/// Fewer self-time samples than this: the CV default (0.6, the simulator's) is kept.
const MIN_SAMPLES_FOR_CV: usize = 10;
/// Fewer samples than this: the spread is fitted from p90 instead of p99.
const MIN_SAMPLES_FOR_P99: usize = 100;
/// Cores are sized so that the fitted self time keeps a replica's cores at most this busy,
/// and at least as many as calls the instance ran at once: the observed self times already
/// contain whatever waiting the service did, so the twin must not add much queueing of its
/// own.
const TARGET_CORE_UTILIZATION: f64 = 0.33;
/// Thread pools hold at least this many threads, and twice the observed peak concurrency.
const MIN_THREADS: u32 = 16;
/// The SLO written into the twin: its p99 threshold is this multiple of the observed p99 of
/// the entry's latency (a placeholder that `augur train` needs; edit it).
const SLO_MARGIN: f64 = 1.5;

/// A fitted topology with notes for the TOML writer.
#[derive(Clone, Debug)]
pub struct Fitted {
    pub spec: TopologySpec,
    /// Lines for the head of the file.
    pub header: Vec<String>,
    /// Per service name: lines above its `[[service]]`.
    pub service_notes: HashMap<String, Vec<String>>,
    /// Per (service, operation): lines above its `[[service.operation]]`.
    pub op_notes: HashMap<(String, String), Vec<String>>,
}

/// What to fit.
#[derive(Clone, Debug)]
pub struct FitInput<'a> {
    pub name: &'a str,
    pub hops: &'a [Hop],
    pub names: &'a Names,
    /// Length of the observed time range the hops come from, s.
    pub duration_s: f64,
    /// Where the hops came from, for the header.
    pub sources: Vec<String>,
    /// What the application's telemetry looks like ([`super::read::telemetry_of`]).
    pub telemetry: TelemetrySpec,
}

/// Per-operation accumulation.
#[derive(Default)]
struct OpAcc {
    self_ms: Vec<f64>,
    own_errors: u64,
    instances: Vec<Instance>,
}

/// Fits a topology; errors if there are no hops or the result does not validate.
pub fn fit(input: &FitInput<'_>) -> Result<Fitted, TwinError> {
    let hops = input.hops;
    let names = input.names;
    if hops.is_empty() {
        return Err(TwinError::NoSpans(input.sources.join(", ")));
    }
    let duration_s = input.duration_s.max(1e-3);
    let own = self_times_ns(hops);
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); hops.len()];
    for (i, h) in hops.iter().enumerate() {
        if let Some(p) = h.parent {
            children[p].push(i);
        }
    }
    // Entry operations split into request types where their call sets say so.
    let root_index: Vec<usize> = (0..hops.len())
        .filter(|&i| hops[i].parent.is_none())
        .collect();
    let root_sets: Vec<Root> = root_index
        .iter()
        .map(|&i| {
            let callees = children[i]
                .iter()
                .map(|&c| (hops[c].service, hops[c].op))
                .collect();
            ((hops[i].service, hops[i].op), callees)
        })
        .collect();
    let mut variant = vec![0u32; hops.len()];
    for (k, v) in variants(&root_sets).into_iter().enumerate() {
        variant[root_index[k]] = v;
    }
    // Services in order of first appearance (parents come before children).
    let mut service_order: Vec<u32> = Vec::new();
    let mut ops: HashMap<OpKey, OpAcc> = HashMap::new();
    let mut op_order: Vec<OpKey> = Vec::new();
    let mut instances: HashMap<u32, HashSet<u32>> = HashMap::new();
    let mut instrumented: HashMap<u32, bool> = HashMap::new();
    let mut roots: BTreeMap<OpKey, u64> = BTreeMap::new();
    let mut root_latency_ms: HashMap<u32, Vec<f64>> = HashMap::new();
    let mut legs_ms: Vec<f64> = Vec::new();
    let mut edge_legs: BTreeMap<(u32, u32), Vec<f64>> = BTreeMap::new();
    for (i, h) in hops.iter().enumerate() {
        if !instances.contains_key(&h.service) {
            service_order.push(h.service);
        }
        instances.entry(h.service).or_default().insert(h.instance);
        *instrumented.entry(h.service).or_insert(false) |= h.instrumented;
        let key = (h.service, h.op, variant[i]);
        let acc = ops.entry(key).or_insert_with(|| {
            op_order.push(key);
            OpAcc::default()
        });
        acc.self_ms.push(own[i] as f64 / 1e6);
        if h.error && !children[i].iter().any(|&c| hops[c].error) {
            acc.own_errors += 1;
        }
        let mut calls: Vec<ObservedCall> = children[i]
            .iter()
            .map(|&c| {
                let (start_ns, end_ns) = hops[c].waited();
                ObservedCall {
                    callee: (hops[c].service, hops[c].op),
                    start_ns,
                    end_ns,
                }
            })
            .collect();
        calls.sort_by_key(|c| (c.start_ns, c.end_ns));
        acc.instances.push(Instance {
            start_ns: h.start_ns,
            end_ns: h.end_ns,
            self_ns: own[i],
            calls,
        });
        match h.parent {
            None => {
                *roots.entry(key).or_default() += 1;
                root_latency_ms
                    .entry(h.service)
                    .or_default()
                    .push(h.duration_ns() as f64 / 1e6);
            }
            Some(p) => {
                if let (Some((c0, c1)), true) = (h.call, h.instrumented) {
                    let out = h.start_ns.saturating_sub(c0) as f64;
                    let back = c1.saturating_sub(h.end_ns) as f64;
                    let leg = (out + back) / 2.0 / 1e6;
                    legs_ms.push(leg);
                    edge_legs
                        .entry((hops[p].service, h.service))
                        .or_default()
                        .push(leg);
                }
            }
        }
    }
    if roots.is_empty() {
        return Err(TwinError::NoRoots(input.sources.join(", ")));
    }
    let root_count: u64 = roots.values().sum();
    let rate_per_s = root_count as f64 / duration_s;

    // Network: one leg = base + exponential jitter; base from the 5th percentile.
    let mut header = vec![
        format!(
            "Digital twin fitted by `augur twin` from {} traces ({} service hops) over {:.1} s of {}.",
            root_count,
            hops.len(),
            duration_s,
            input.sources.join(", ")
        ),
        "Measured: services, replicas (distinct service.instance.id), operations (entry span names),".into(),
        "call stages (children's client intervals overlapping = parallel), call probabilities (share".into(),
        "of an operation's spans making the k-th call to a callee), self-time lognormals (median and".into(),
        "p99, or p90 under 100 spans), own error rates (failed spans none of whose children failed),".into(),
        "the request mix (root operations' shares) and the mean arrival rate. An entry span name whose".into(),
        "call sets independent calls do not explain is split by call set into operations `name [k]`".into(),
        "(span_name = the real name), one request type each.".into(),
    ];
    let (network_base_ms, network_jitter_ms) = if legs_ms.len() >= 10 {
        legs_ms.sort_by(f64::total_cmp);
        let base = quantile(&legs_ms, 0.05);
        // An exponential's median is ln 2 times its mean; the median resists the tail.
        let jitter = (quantile(&legs_ms, 0.5) - base) / std::f64::consts::LN_2;
        header.push(format!(
            "Network: one leg = half the client span minus the server span, over {} calls; base = p5, jitter = (median - p5) / ln 2 (one value for all edges).",
            legs_ms.len()
        ));
        (round_sig(base.max(0.0)), round_sig(jitter.max(0.0)))
    } else {
        header.push(
            "Network: not observable (callers have no client span of their own for their calls); the simulator's defaults 0.1 ms + exp(0.05 ms) per leg, and the self times contain the network time.".into(),
        );
        (0.1, 0.05)
    };
    header.extend([
        "Not observable, defaults: request/response bytes (512/1024), memory (256 MB + 64 KiB per".into(),
        "request), error propagation (0.8), queue timeout (1000 ms), diurnal swing (none).".into(),
        format!(
            "Threads: max({MIN_THREADS}, 2 x peak concurrent spans per instance). Cores: the peak own work at once, and enough"
        ),
        format!(
            "to keep the fitted self time under {:.0} % busy (observed self times already include any waiting).",
            TARGET_CORE_UTILIZATION * 100.0
        ),
        "The SLO is a placeholder:".into(),
        format!("p99 of the entry's latency <= {SLO_MARGIN} x its observed p99."),
    ]);

    let mut service_notes: HashMap<String, Vec<String>> = HashMap::new();
    let mut op_notes: HashMap<(String, String), Vec<String>> = HashMap::new();
    let mut services = Vec::new();
    let concurrency = peak_concurrency(hops);
    let own_work = peak_own_work(hops);
    for &s in &service_order {
        let name = names.name(s).to_string();
        let mut insts: Vec<&str> = instances[&s].iter().map(|&i| names.name(i)).collect();
        insts.sort_unstable();
        let replicas = insts.len().max(1) as u32;
        let mut operations = Vec::new();
        let mut busy_s_per_s = 0.0;
        let mut spans = 0usize;
        for key in op_order.iter().filter(|k| k.0 == s) {
            let acc = &ops[key];
            let (op_name, span_name) = op_name(key, &op_order, names);
            let (service_time_ms, cv, fitted_from) = lognormal(&acc.self_ms);
            busy_s_per_s += acc.self_ms.len() as f64 / duration_s * service_time_ms / 1e3;
            spans += acc.self_ms.len();
            let shape = infer(&acc.instances);
            let stages: Vec<Vec<String>> = shape
                .stages
                .iter()
                .map(|stage| {
                    stage
                        .iter()
                        .map(|c| {
                            let target =
                                format!("{}:{}", names.name(c.callee.0), names.name(c.callee.1));
                            if c.probability < 1.0 {
                                format!("{target}@{}", c.probability)
                            } else {
                                target
                            }
                        })
                        .collect()
                })
                .collect();
            let n = acc.self_ms.len();
            let error_rate = round_sig(acc.own_errors as f64 / n.max(1) as f64);
            op_notes.insert(
                (name.clone(), op_name.clone()),
                vec![format!(
                    "{n} spans ({:.3}/s); self time {fitted_from}",
                    n as f64 / duration_s
                )],
            );
            operations.push(OperationSpec {
                name: op_name,
                span_name,
                service_time_ms,
                cv,
                pre_fraction: shape.pre_fraction.map(round_sig).unwrap_or(0.5),
                request_bytes: 512,
                response_bytes: 1024,
                disk_write_bytes: 0,
                error_rate,
                stages,
            });
        }
        // The busiest operations first, so a bare `service` call means the usual one.
        let counts: HashMap<String, usize> = op_order
            .iter()
            .filter(|k| k.0 == s)
            .map(|k| (op_name(k, &op_order, names).0, ops[k].self_ms.len()))
            .collect();
        operations.sort_by_key(|o| std::cmp::Reverse(counts[&o.name]));
        let per_replica = busy_s_per_s / f64::from(replicas);
        let peak = concurrency.get(&s).copied().unwrap_or(1);
        // As many cores as the instance did calls' own work at once: the observed self
        // times already hold the contention of that concurrency, so the twin must not queue
        // them again.
        let own_peak = own_work.get(&s).copied().unwrap_or(1);
        let cores = (per_replica / TARGET_CORE_UTILIZATION)
            .ceil()
            .max(f64::from(own_peak))
            .max(1.0);
        let threads = (2 * peak).max(MIN_THREADS);
        let mut notes = vec![format!(
            "{spans} spans ({:.3}/s); instances: {}; peak concurrency per instance {peak} ({own_peak} doing their own work)",
            spans as f64 / duration_s,
            insts.join(", ")
        )];
        if !instrumented[&s] {
            notes.push("emits no spans: seen only as a peer.service of its callers".into());
        }
        for ((from, to), legs) in &edge_legs {
            if *to == s {
                let mut legs = legs.clone();
                legs.sort_by(f64::total_cmp);
                notes.push(format!(
                    "network from {}: one leg median {:.3} ms over {} calls",
                    names.name(*from),
                    quantile(&legs, 0.5),
                    legs.len()
                ));
            }
        }
        service_notes.insert(name.clone(), notes);
        services.push(ServiceSpec {
            name,
            replicas,
            threads,
            cores,
            memory_mb: 256.0,
            memory_per_request_kb: 64.0,
            instrumented: instrumented[&s],
            operations,
        });
    }

    let mut requests = Vec::new();
    for (key, &count) in &roots {
        let (op, _) = op_name(key, &op_order, names);
        let entry = names.name(key.0);
        let name = if roots
            .keys()
            .filter(|k| k.1 == key.1 && k.0 != key.0)
            .count()
            > 0
        {
            format!("{entry} {op}")
        } else {
            op.clone()
        };
        requests.push(RequestSpec {
            name,
            weight: round_sig(count as f64 / root_count as f64),
            entry: entry.to_string(),
            operation: op,
        });
    }
    requests.sort_by(|a, b| b.weight.total_cmp(&a.weight));
    let mut slos = Vec::new();
    for entry in requests.iter().map(|r| r.entry.clone()) {
        if slos.iter().any(|s: &SloSpec| s.entry == entry) {
            continue;
        }
        let mut latency = names
            .get(&entry)
            .and_then(|id| root_latency_ms.get(&id).cloned())
            .unwrap_or_default();
        latency.sort_by(f64::total_cmp);
        let p99 = if latency.is_empty() {
            1000.0
        } else {
            quantile(&latency, 0.99)
        };
        slos.push(SloSpec {
            entry,
            operation: None,
            quantile: 0.99,
            threshold_ms: round_sig((SLO_MARGIN * p99).max(1e-3)),
        });
    }
    let spec = TopologySpec {
        name: input.name.to_string(),
        network_base_ms,
        network_jitter_ms,
        error_propagation: 0.8,
        queue_timeout_ms: 1000.0,
        load: LoadSpec {
            rate_per_s: round_sig(rate_per_s),
            diurnal_amplitude: 0.0,
            diurnal_period_s: 3600.0,
            spikes: Vec::new(),
        },
        slos,
        services,
        requests,
        telemetry: input.telemetry.clone(),
    };
    Topology::from_spec(spec.clone()).map_err(TwinError::Sim)?;
    Ok(Fitted {
        spec,
        header,
        service_notes,
        op_notes,
    })
}

/// An operation of the twin: (service, span name, variant; see [`variants`]).
type OpKey = (u32, u32, u32);

/// The twin's name of an operation, and its span name when that differs: the span name,
/// or with variants `"<span name> [k]"` (k = the variant number).
fn op_name(key: &OpKey, all: &[OpKey], names: &Names) -> (String, Option<String>) {
    let span = names.name(key.1).to_string();
    let split = all.iter().any(|k| k.0 == key.0 && k.1 == key.1 && k.2 != 0);
    if split && key.2 != 0 {
        (format!("{span} [{}]", key.2), Some(span))
    } else {
        (span, None)
    }
}

/// Mean and CV of a lognormal with the sample's median and p99 (p90 under
/// [`MIN_SAMPLES_FOR_P99`] samples; the default CV 0.6 under [`MIN_SAMPLES_FOR_CV`]), ms;
/// and a note on how. Self times below 1 µs count as 1 µs.
fn lognormal(samples_ms: &[f64]) -> (f64, f64, String) {
    let mut v: Vec<f64> = samples_ms.iter().map(|x| x.max(1e-3)).collect();
    v.sort_by(f64::total_cmp);
    let median = quantile(&v, 0.5);
    let (sigma, how) = if v.len() >= MIN_SAMPLES_FOR_P99 {
        let p99 = quantile(&v, 0.99);
        (
            (p99 / median).ln() / Z99,
            format!("median {median:.3} ms, p99 {p99:.3} ms"),
        )
    } else if v.len() >= MIN_SAMPLES_FOR_CV {
        let p90 = quantile(&v, 0.9);
        (
            (p90 / median).ln() / Z90,
            format!("median {median:.3} ms, p90 {p90:.3} ms"),
        )
    } else {
        let sigma2 = (1.0f64 + 0.36).ln();
        (
            sigma2.sqrt(),
            format!("median {median:.3} ms; too few spans for the spread: default CV 0.6"),
        )
    };
    let sigma = sigma.clamp(0.01, 2.0);
    let mean = median * (sigma * sigma / 2.0).exp();
    let cv = ((sigma * sigma).exp() - 1.0).sqrt();
    (round_sig(mean.max(1e-3)), round_sig(cv), how)
}

/// Per service: the most hops in flight at once on one instance.
fn peak_concurrency(hops: &[Hop]) -> HashMap<u32, u32> {
    let mut events: HashMap<(u32, u32), Vec<(u64, i32)>> = HashMap::new();
    for h in hops {
        let e = events.entry((h.service, h.instance)).or_default();
        e.push((h.start_ns, 1));
        e.push((h.end_ns, -1));
    }
    peaks(events)
}

/// Per service: the most hops doing their own work at once on one instance (a hop's own
/// work: its span less the intervals it waited on its calls).
fn peak_own_work(hops: &[Hop]) -> HashMap<u32, u32> {
    let mut events: HashMap<(u32, u32), Vec<(u64, i32)>> = HashMap::new();
    for (h, own) in hops.iter().zip(own_work_ns(hops)) {
        let e = events.entry((h.service, h.instance)).or_default();
        for (a, b) in own {
            e.push((a, 1));
            e.push((b, -1));
        }
    }
    peaks(events)
}

/// The highest count of overlapping intervals per service, over its instances (at least 1);
/// an interval ending where another starts does not overlap it.
fn peaks(events: HashMap<(u32, u32), Vec<(u64, i32)>>) -> HashMap<u32, u32> {
    let mut out: HashMap<u32, u32> = HashMap::new();
    for ((service, _), mut e) in events {
        e.sort_unstable();
        let (mut now, mut peak) = (0i32, 0i32);
        for (_, d) in e {
            now += d;
            peak = peak.max(now);
        }
        let best = out.entry(service).or_insert(0);
        *best = (*best).max(peak.max(1) as u32);
    }
    out
}

/// Rounds to 4 significant digits (so the written file is short and reads back equal).
pub fn round_sig(x: f64) -> f64 {
    if x == 0.0 || !x.is_finite() {
        return x;
    }
    format!("{x:.3e}").parse().unwrap_or(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hop(service: u32, start_ns: u64, end_ns: u64, parent: Option<usize>) -> Hop {
        Hop {
            trace: 0,
            service,
            instance: service,
            op: 0,
            start_ns,
            end_ns,
            error: false,
            parent,
            call: None,
            instrumented: true,
        }
    }

    /// Two requests of service 0 in flight at once, each waiting on a call to service 1
    /// for most of its time: two spans at once, but their own work never overlaps; two
    /// overlapping calls of service 1 are both their own work.
    #[test]
    fn own_work_at_once_leaves_out_the_waits_on_calls() {
        let hops = vec![
            hop(0, 0, 100, None),
            hop(1, 10, 90, Some(0)),
            hop(0, 50, 150, None),
            hop(1, 60, 145, Some(2)),
        ];
        assert_eq!(peak_concurrency(&hops)[&0], 2);
        assert_eq!(peak_own_work(&hops)[&0], 1);
        assert_eq!(peak_own_work(&hops)[&1], 2);
    }

    #[test]
    fn lognormal_recovers_mean_and_cv_from_median_and_p99() {
        // Quantiles of a lognormal with mean 4 ms and CV 0.5, on a fine grid.
        let (mean, cv) = (4.0f64, 0.5f64);
        let s2 = (1.0 + cv * cv).ln();
        let (mu, s) = (mean.ln() - s2 / 2.0, s2.sqrt());
        let n = 20_000;
        let samples: Vec<f64> = (0..n)
            .map(|i| {
                let p = (i as f64 + 0.5) / n as f64;
                (mu + s * inverse_normal(p)).exp()
            })
            .collect();
        let (m, c, _) = lognormal(&samples);
        assert!((m - mean).abs() / mean < 0.02, "mean {m}");
        assert!((c - cv).abs() / cv < 0.03, "cv {c}");
    }

    /// The standard normal quantile.
    fn inverse_normal(p: f64) -> f64 {
        use statrs::distribution::{ContinuousCDF, Normal};
        Normal::standard().inverse_cdf(p)
    }
}

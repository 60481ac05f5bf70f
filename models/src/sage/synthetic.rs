//! Synthetic window snapshots with a known answer, for tests and benches. A service
//! chain: `s0 → s1 → … → s{n-1}` (front end first), where a slowed tier shows the
//! symptoms the simulator gives a CPU hog — its CPU usage rises and its own processing
//! time grows — and the latency of every caller grows with it. And a front end calling
//! two services in parallel ([`parallel_window`]), whose latency follows the slower call.
//!
//! In: the chain length, a seed, and which tier is slowed in each window. Out:
//! [`WindowSnapshot`]s with services, edges, the QoS verdict of `s0` and the order.
//! State: none (a seeded generator per call).

use augur_operators::{EdgeFeatures, QosVerdict, ServiceFeatures, WindowSnapshot};

/// Per-tier own processing time at p50, ms.
const OWN_MS: f64 = 3.0;
/// Shape of the latency distribution: p50, p75, p90, p95, p99 relative to p50.
const SHAPE: [f64; 5] = [1.0, 1.3, 1.7, 2.0, 2.8];
/// One network leg, ms.
const GAP_MS: f64 = 0.3;

struct Rng(u64);

impl Rng {
    fn uniform(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Multiplicative noise around 1.
    fn noise(&mut self, spread: f64) -> f64 {
        1.0 + spread * (self.uniform() - 0.5) * 2.0
    }
}

/// One service's window features: its server latency, CPU at `cpu` (a share), memory and
/// network drawn around fixed levels (in that order from `rng`), no queue.
fn service_features(
    window_end: u64,
    name: &str,
    rate: f64,
    cpu: f64,
    server: [f64; 5],
    rng: &mut Rng,
) -> ServiceFeatures {
    let mut usage = [[0.0f64; 4]; 5];
    usage[0] = [cpu * 0.9, cpu, cpu * 1.05, cpu * 1.1];
    let mem = 256e6 * rng.noise(0.01);
    usage[1] = [mem, mem, mem, mem];
    let net = rate * 2000.0 * rng.noise(0.05);
    usage[2] = [net * 0.45, net * 0.5, net * 0.55, net * 0.55];
    ServiceFeatures {
        window_end,
        service: name.to_string(),
        requests: rate as u64,
        latency_ms: server,
        outstanding: rate * server[0] / 1000.0,
        replicas: 2,
        usage,
        ..Default::default()
    }
}

/// The entry point's verdict at p99 against `slo_ms`, from its server latency.
fn entry_verdict(
    window_end: u64,
    entry: &str,
    rate: f64,
    latency: [f64; 5],
    slo_ms: f64,
) -> QosVerdict {
    let measured_ms = latency[4];
    QosVerdict {
        window_end,
        entry: entry.to_string(),
        requests: rate as u64,
        errors: 0,
        latency_ms: latency,
        quantile: 0.99,
        slo_ms,
        measured_ms,
        violated: measured_ms > slo_ms,
    }
}

/// The chain's service names, front end first.
pub fn chain_services(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("s{i}")).collect()
}

/// One window in which tier `slow` (if any) runs `factor` times slower and hotter.
pub fn chain_window(
    n: usize,
    window_end: u64,
    slow: Option<usize>,
    factor: f64,
    seed: u64,
) -> WindowSnapshot {
    custom_chain_window(
        &chain_services(n),
        &vec![1.0; n],
        window_end,
        slow,
        factor,
        seed,
    )
}

/// A window of the chain `names` (front end first) whose tiers take `own[i]` times the
/// usual processing time in normal operation (a new version, a different service).
pub fn custom_chain_window(
    names: &[String],
    own: &[f64],
    window_end: u64,
    slow: Option<usize>,
    factor: f64,
    seed: u64,
) -> WindowSnapshot {
    chain_window_of(names, own, window_end, slow, factor, None, seed)
}

/// A window of the `n`-tier chain, nothing slowed but the channel into tier `into`, whose
/// every leg (request and response) takes `delay_ms` more: a network delay, which shows in
/// no metric, only in the call's latency.
pub fn chain_window_with_slow_channel(
    n: usize,
    window_end: u64,
    into: usize,
    delay_ms: f64,
    seed: u64,
) -> WindowSnapshot {
    let own = vec![1.0; n];
    let delay = Some((into, delay_ms));
    chain_window_of(&chain_services(n), &own, window_end, None, 1.0, delay, seed)
}

fn chain_window_of(
    names: &[String],
    own: &[f64],
    window_end: u64,
    slow: Option<usize>,
    factor: f64,
    channel_delay: Option<(usize, f64)>,
    seed: u64,
) -> WindowSnapshot {
    let n = names.len();
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    for _ in 0..4 {
        rng.uniform();
    }
    let rate = 400.0 * rng.noise(0.1);
    // Back end first: each tier's server latency = own time + its callee's client latency.
    let mut server = vec![[0.0f64; 5]; n];
    let mut client = vec![[0.0f64; 5]; n]; // client[i]: the call s{i-1} → s{i}
    let mut gap = vec![[0.0f64; 5]; n];
    let mut cpu = vec![0.0f64; n];
    for i in (0..n).rev() {
        let slowed = slow == Some(i);
        let base = own.get(i).copied().unwrap_or(1.0);
        let own = OWN_MS * base * rng.noise(0.15) * if slowed { factor } else { 1.0 };
        cpu[i] = (0.25 * base.sqrt() * rng.noise(0.2) * if slowed { 2.5 } else { 1.0 }).min(1.0);
        for q in 0..5 {
            let below = if i + 1 < n { client[i + 1][q] } else { 0.0 };
            server[i][q] = own * SHAPE[q] + below;
            let delayed = match channel_delay {
                Some((into, ms)) if into == i => 2.0 * ms,
                _ => 0.0,
            };
            gap[i][q] = 2.0 * GAP_MS * rng.noise(0.2) * (1.0 + 0.2 * q as f64) + delayed;
            client[i][q] = server[i][q] + gap[i][q];
        }
    }
    let services = (0..n)
        .map(|i| {
            let mut features =
                service_features(window_end, &names[i], rate, cpu[i], server[i], &mut rng);
            // A hog takes CPU; the queue grows only a little while the pool keeps up.
            let queue = if slow == Some(i) { 0.8 } else { 0.5 } * rng.noise(0.5);
            features.usage[4] = [queue * 0.5, queue, queue * 1.5, queue * 2.0];
            features
        })
        .collect();
    let edges = (1..n)
        .map(|i| EdgeFeatures {
            window_end,
            caller: names[i - 1].clone(),
            callee: names[i].clone(),
            calls: rate as u64,
            errors: 0,
            client_ms: client[i],
            server_ms: server[i],
            gap_ms: gap[i],
            parallel: Default::default(),
            client_total_ms: 0.0,
            gap_total_ms: 0.0,
            gap_calls: 0,
            gap_over: Default::default(),
        })
        .collect();
    let normal: f64 = own.iter().take(n).sum::<f64>() * OWN_MS + 2.0 * GAP_MS * (n as f64 - 1.0);
    let slo = 1.6 * SHAPE[4] * normal;
    WindowSnapshot {
        window_end,
        window_ms: 1000,
        services,
        edges,
        qos: vec![entry_verdict(window_end, &names[0], rate, server[0], slo)],
        order: names.iter().rev().cloned().collect(),
        topology_changed: window_end == 1000,
        logs: Vec::new(),
    }
}

/// The services of [`parallel_window`]: the front end `p`, which calls `a` and `b` in
/// parallel.
pub const PARALLEL_SERVICES: [&str; 3] = ["p", "a", "b"];
/// Own time of `a` relative to the others: `a` is the slower of the two parallel calls.
const PARALLEL_A_OWN: f64 = 4.0;

/// The SLO of `p` at p99: 1.6 × its normal p99.
pub fn parallel_slo_ms() -> f64 {
    1.6 * SHAPE[4] * (OWN_MS * (1.0 + PARALLEL_A_OWN) + 2.0 * GAP_MS)
}

/// One window of `p → {a, b}`, the two calls made in parallel: `p`'s latency is its own
/// time plus the *slower* call's. `slow` (a service of [`PARALLEL_SERVICES`]) runs `factor`
/// times slower and hotter, as in [`chain_window`]; `b_delay_ms` is added to each network
/// leg of the call into `b`.
pub fn parallel_window(
    window_end: u64,
    slow: Option<&str>,
    factor: f64,
    b_delay_ms: f64,
    seed: u64,
) -> WindowSnapshot {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    for _ in 0..4 {
        rng.uniform();
    }
    let rate = 400.0 * rng.noise(0.1);
    let mut own = [0.0f64; 3];
    let mut cpu = [0.0f64; 3];
    for (i, name) in PARALLEL_SERVICES.iter().enumerate() {
        let base = if *name == "a" { PARALLEL_A_OWN } else { 1.0 };
        let slowed = slow == Some(*name);
        own[i] = OWN_MS * base * rng.noise(0.15) * if slowed { factor } else { 1.0 };
        cpu[i] = (0.25 * base.sqrt() * rng.noise(0.2) * if slowed { 2.5 } else { 1.0 }).min(1.0);
    }
    let mut server = [[0.0f64; 5]; 3];
    let mut client = [[0.0f64; 5]; 3]; // client[i]: the call p → i (i = 1, 2)
    let mut gap = [[0.0f64; 5]; 3];
    for i in 1..3 {
        let delay = if i == 2 { 2.0 * b_delay_ms } else { 0.0 };
        for q in 0..5 {
            server[i][q] = own[i] * SHAPE[q];
            gap[i][q] = 2.0 * GAP_MS * rng.noise(0.2) * (1.0 + 0.2 * q as f64) + delay;
            client[i][q] = server[i][q] + gap[i][q];
        }
    }
    for q in 0..5 {
        server[0][q] = own[0] * SHAPE[q] + client[1][q].max(client[2][q]);
    }
    let services = (0..3)
        .map(|i| {
            service_features(
                window_end,
                PARALLEL_SERVICES[i],
                rate,
                cpu[i],
                server[i],
                &mut rng,
            )
        })
        .collect();
    let edges = (1..3)
        .map(|i| {
            let other = PARALLEL_SERVICES[3 - i].to_string();
            EdgeFeatures {
                window_end,
                caller: "p".into(),
                callee: PARALLEL_SERVICES[i].to_string(),
                calls: rate as u64,
                errors: 0,
                client_ms: client[i],
                server_ms: server[i],
                gap_ms: gap[i],
                parallel: [(other, rate as u64)].into_iter().collect(),
                client_total_ms: 0.0,
                gap_total_ms: 0.0,
                gap_calls: 0,
                gap_over: Default::default(),
            }
        })
        .collect();
    WindowSnapshot {
        window_end,
        window_ms: 1000,
        services,
        edges,
        qos: vec![entry_verdict(
            window_end,
            "p",
            rate,
            server[0],
            parallel_slo_ms(),
        )],
        order: vec!["b".into(), "a".into(), "p".into()],
        topology_changed: window_end == 1000,
        logs: Vec::new(),
    }
}

/// `count` windows of [`parallel_window`]: most normal, one in `fault_every` with a random
/// service slowed, unlabelled: `p` or `a` by a factor in [1.5, 5), `b` by one in [1.5, 3),
/// which leaves it the faster call — its latency moves, its caller's doesn't.
pub fn parallel_windows(count: usize, fault_every: usize, seed: u64) -> Vec<WindowSnapshot> {
    let mut rng = Rng(seed.wrapping_mul(0xD1B5_4A32_D192_ED03) | 1);
    (0..count)
        .map(|k| {
            let faulty = fault_every > 0 && rng.uniform() < 1.0 / fault_every as f64;
            let slow = faulty.then(|| PARALLEL_SERVICES[(rng.uniform() * 3.0) as usize % 3]);
            let most = if slow == Some("b") { 1.5 } else { 3.5 };
            let factor = 1.5 + most * rng.uniform();
            parallel_window(
                (k as u64 + 1) * 1000,
                slow,
                factor,
                0.0,
                seed ^ (k as u64 * 7919),
            )
        })
        .collect()
}

/// `count` windows of a custom chain, as [`chain_windows`].
pub fn custom_chain_windows(
    names: &[String],
    own: &[f64],
    count: usize,
    fault_every: usize,
    seed: u64,
) -> Vec<WindowSnapshot> {
    let n = names.len();
    let mut rng = Rng(seed.wrapping_mul(0xD1B5_4A32_D192_ED03) | 1);
    (0..count)
        .map(|k| {
            let faulty = fault_every > 0 && rng.uniform() < 1.0 / fault_every as f64;
            let slow = faulty.then(|| (rng.uniform() * n as f64) as usize % n);
            let factor = 1.5 + 3.5 * rng.uniform();
            custom_chain_window(
                names,
                own,
                (k as u64 + 1) * 1000,
                slow,
                factor,
                seed ^ (k as u64 * 7919),
            )
        })
        .collect()
}

/// `count` windows: most normal, one in `fault_every` with a random tier slowed by a
/// random factor in [1.5, 5) — unlabelled training data (the generator knows the answer,
/// the model is never told).
pub fn chain_windows(n: usize, count: usize, fault_every: usize, seed: u64) -> Vec<WindowSnapshot> {
    custom_chain_windows(&chain_services(n), &vec![1.0; n], count, fault_every, seed)
}

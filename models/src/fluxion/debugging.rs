//! Graph debugging (Fluxion §3.2.3): which assignment is at fault when the end-to-end
//! forecast error grows.
//!
//! In: an inference graph and a test set of recent samples. Out: the service whose vertex
//! to retrain, and the walk that led there. State: none.
//!
//! Per vertex, the absolute error of its composed prediction (at the quantile the graph is
//! judged on) in each sample; per edge, the Pearson correlation of the two vertices' error
//! series. From the output vertex: rank the vertices that feed the current one (its
//! callees) by r; if the best r exceeds `min_r`, step there and repeat; otherwise the
//! current vertex is at fault — its own assignment, not its inputs, explains its error.
//! The paper's threshold is 0; a small positive one keeps 1-s windows' noise from walking
//! on by chance. A callee whose own error is negligible (below [`MIN_ERROR_SHARE`] of the
//! current vertex's) is never stepped to: a correlation between tiny errors and large ones
//! says nothing about where the large ones come from.

use std::collections::BTreeMap;

use super::features::Sample;
use super::graph::InferenceGraph;

/// Per service, the absolute error of the composed prediction at `quantile` per sample
/// (samples where the service was idle give 0). The entry vertex is judged on the
/// end-to-end latency.
pub fn vertex_errors(
    graph: &InferenceGraph,
    samples: &[Sample],
    quantile: usize,
) -> BTreeMap<String, Vec<f64>> {
    let predictions = graph.predict_batch(samples);
    let mut out: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for (s, pred) in samples.iter().zip(&predictions) {
        for (service, spectrum) in pred {
            let observed = if *service == graph.entry {
                s.e2e(service)
                    .or_else(|| s.services.get(service).map(|o| o.latency))
            } else {
                s.services
                    .get(service)
                    .filter(|o| o.active)
                    .map(|o| o.latency)
            };
            let e = observed.map_or(0.0, |o| (spectrum[quantile] - o[quantile]).abs() as f64);
            out.entry(service.clone()).or_default().push(e);
        }
    }
    out
}

/// Pearson correlation; 0 when either series is constant.
pub fn pearson(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().min(b.len());
    if n < 2 {
        return 0.0;
    }
    let ma = a[..n].iter().sum::<f64>() / n as f64;
    let mb = b[..n].iter().sum::<f64>() / n as f64;
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for i in 0..n {
        let (x, y) = (a[i] - ma, b[i] - mb);
        sab += x * y;
        saa += x * x;
        sbb += y * y;
    }
    if saa <= 1e-12 || sbb <= 1e-12 {
        return 0.0;
    }
    sab / (saa * sbb).sqrt()
}

/// The debugging walk's result.
#[derive(Clone, Debug, PartialEq)]
pub struct Diagnosis {
    /// The vertex to retrain.
    pub service: String,
    /// Vertices visited from the output, with the r that led to each.
    pub path: Vec<(String, f64)>,
    /// Mean absolute error of each vertex on the test set.
    pub vertex_mae: BTreeMap<String, f64>,
    /// r of every edge looked at: (from, to, r).
    pub correlations: Vec<(String, String, f64)>,
}

/// The pair-wise Pearson-correlation walk from the output vertex.
/// A callee is a candidate only if its mean error is at least this share of the current
/// vertex's.
pub const MIN_ERROR_SHARE: f64 = 0.1;

pub fn find_fault(
    graph: &InferenceGraph,
    samples: &[Sample],
    quantile: usize,
    min_r: f64,
) -> Option<Diagnosis> {
    let errors = vertex_errors(graph, samples, quantile);
    let mut current = graph.entry.clone();
    errors.get(&current)?;
    let mut path = vec![(current.clone(), 1.0)];
    let mut correlations = Vec::new();
    let mean = |e: &[f64]| e.iter().sum::<f64>() / e.len().max(1) as f64;
    while let Some(v) = graph.vertex(&current) {
        let mine = &errors[&current];
        let floor = MIN_ERROR_SHARE * mean(mine);
        let best = v
            .callees
            .iter()
            .filter(|c| !path.iter().any(|(p, _)| p == *c))
            .filter(|c| errors.get(*c).is_some_and(|e| mean(e) >= floor))
            .filter_map(|c| errors.get(c).map(|e| (c.clone(), pearson(mine, e))))
            .inspect(|(c, r)| correlations.push((current.clone(), c.clone(), *r)))
            .max_by(|a, b| a.1.total_cmp(&b.1));
        match best {
            Some((next, r)) if r > min_r => {
                path.push((next.clone(), r));
                current = next;
            }
            _ => break,
        }
    }
    let vertex_mae = errors.iter().map(|(k, v)| (k.clone(), mean(v))).collect();
    Some(Diagnosis {
        service: current,
        path,
        vertex_mae,
        correlations,
    })
}

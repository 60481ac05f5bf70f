//! How far ahead of a QoS violation the inputs move: a diagnostic for Seer's lead time.
//!
//! `cargo run --release -p augur-models --example lead_scan -- FILE.arrow LABELS.json`
//!
//! In: a dataset written by `augur record` and the run's `labels.json`. For every
//! violation episode (a run of violating windows) that overlaps exactly one fault, prints
//! the fault's start relative to the onset (the end of the first violating
//! window), and for the fault's service the first window (counting back from the onset)
//! from which its `outstanding`, `queue_max` and (when recorded) `in_flight` features stay
//! above their run baseline (median + 3 × MAD over windows that are not positive) up to
//! the onset. Then a summary: how many windows before the onset the culprit's queue (any
//! of them, and `in_flight` alone) was already visibly up.
//! Out: text on stdout. State: none.

use std::path::Path;

use augur_models::seer::dataset::Dataset;
use augur_operators::quantile::{Rank, quantile_sorted};

fn median(mut xs: Vec<f32>) -> f32 {
    xs.sort_by(f32::total_cmp);
    quantile_sorted(&xs, 0.5, Rank::Floor).unwrap_or(0.0)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(data), Some(labels)) = (args.get(1), args.get(2)) else {
        return Err("usage: lead_scan FILE.arrow LABELS.json".into());
    };
    let ds = Dataset::read(Path::new(data))?;
    let labels: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(labels)?)?;
    let faults: Vec<(String, u64, u64)> = labels
        .get("faults")
        .and_then(|f| f.as_array())
        .map(|fs| {
            fs.iter()
                .filter_map(|f| {
                    Some((
                        f.get("service")?.as_str()?.to_string(),
                        f.get("start_ms")?.as_u64()?,
                        f.get("end_ms")?.as_u64()?,
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    let nf = ds.features.len();
    let col = |name: &str| ds.features.iter().position(|f| f == name);
    let (Some(out_col), Some(queue_col)) = (col("outstanding"), col("queue_max")) else {
        return Err("dataset lacks outstanding/queue_max".into());
    };
    let in_flight_col = col("in_flight");
    let w = ds.window_ms;
    println!(
        "{data}: {} windows of {w} ms, horizon {} ms, {} faults",
        ds.rows.len(),
        ds.horizon_ms,
        faults.len()
    );
    // Episodes: runs of violating windows (one passing window in between merges).
    let mut episodes: Vec<(usize, usize)> = Vec::new();
    for (i, r) in ds.rows.iter().enumerate() {
        if !r.violated {
            continue;
        }
        match episodes.last_mut() {
            Some((_, end)) if ds.rows[i].window_end <= ds.rows[*end].window_end + 2 * w => *end = i,
            _ => episodes.push((i, i)),
        }
    }
    let mut ahead = Vec::new();
    let mut in_flight_ahead = Vec::new();
    let mut fault_ahead = Vec::new();
    println!(
        "onset_ms  service                 onset-fault_start  outstanding_up  queue_up  in_flight_up  (windows before onset; -1 = not up at onset)"
    );
    for (first, last) in episodes {
        let onset = ds.rows[first].window_end;
        let start = onset.saturating_sub(w);
        let end = ds.rows[last].window_end;
        let over: Vec<&(String, u64, u64)> = faults
            .iter()
            .filter(|f| f.1 < end && f.2 + 5 * w > start)
            .collect();
        let [fault] = over.as_slice() else {
            continue;
        };
        let Some(s) = ds.services.iter().position(|n| *n == fault.0) else {
            continue;
        };
        // First window k before the onset from which the feature stays above baseline.
        let up = |c: usize| -> i64 {
            let base: Vec<f32> = ds
                .rows
                .iter()
                .filter(|r| !r.positive)
                .map(|r| r.x[s * nf + c])
                .collect();
            let med = median(base.clone());
            let mad = median(base.iter().map(|x| (x - med).abs()).collect()).max(1e-3);
            let mut k: i64 = -1;
            for back in 0..first.min(60) {
                if ds.rows[first - back].x[s * nf + c] > med + 3.0 * 1.4826 * mad {
                    k = back as i64;
                } else {
                    break;
                }
            }
            k
        };
        let (o, q) = (up(out_col), up(queue_col));
        let f = in_flight_col.map_or(-1, up);
        ahead.push(o.max(q).max(f));
        in_flight_ahead.push(f);
        fault_ahead.push(onset as i64 - fault.1 as i64);
        println!(
            "{onset:>8}  {:<22} {:>18}  {:>14}  {:>8}  {:>12}",
            fault.0,
            onset as i64 - fault.1 as i64,
            o,
            q,
            f
        );
    }
    let n = ahead.len();
    let at_least = |k: i64| ahead.iter().filter(|a| **a >= k).count();
    let in_flight_at_least = |k: i64| in_flight_ahead.iter().filter(|a| **a >= k).count();
    println!(
        "single-fault episodes {n}: culprit queue up at the onset {}, ≥1 window before {}, ≥2 {}, ≥4 {} (in_flight alone: {}, {}, {}, {}); median fault start → onset {} ms",
        at_least(0),
        at_least(1),
        at_least(2),
        at_least(4),
        in_flight_at_least(0),
        in_flight_at_least(1),
        in_flight_at_least(2),
        in_flight_at_least(4),
        {
            let mut f = fault_ahead.clone();
            f.sort();
            f.get(f.len() / 2).copied().unwrap_or(0)
        }
    );
    Ok(())
}

//! Where a departure under way at the moment asked about began.
//!
//! `augur diagnose --at TIME` compares the minutes before TIME with the minute after. A
//! person seldom knows when an incident began: asked half a minute or a minute into it, the
//! minutes before hold the incident's start, and its signals no longer stand out against
//! them. The `evidence` detector, run over the telemetry as a job would have (the same pass
//! that gathers the fault-free history), says whether the application was departing from
//! its normal up to TIME and since when. When that departure had lasted at least the
//! detector's recent range (shorter moves come and go: a burst of slow calls, or the
//! departure just starting at TIME), the diagnosis is made at its start: the point, among
//! the recent range before the first window in which the detector found the move, that
//! separates the normal from what followed most sharply (the largest |z| of any signal).
//!
//! **In:** the windows, the moment, and the detector's moves per window. **Out:** the
//! onset, or `None` to diagnose at the moment itself.

use augur_operators::{EventTime, WindowSnapshot};

use super::detector::{EvidenceDetectorConfig, Moves};
use super::{EvidenceParams, NormalProfile, diagnose_ranges, has_requests, pooled_ranges};

/// The start of the departure under way at `at`; `None` when none had lasted the
/// detector's recent range by `at`.
pub(super) fn onset(
    windows: &[WindowSnapshot],
    at: EventTime,
    params: &EvidenceParams,
    normal: Option<&NormalProfile>,
    moves: &Moves,
) -> Option<EventTime> {
    let recent_ms = EvidenceDetectorConfig::default().recent_ms;
    // A window or a few without a move inside a departure do not end it (the detector's
    // bar is crossed by the recent range as a whole, windows at a time).
    let gap_ms = recent_ms / 4;
    // Under way at `at`: moving up to the last data before it (a gap in the telemetry
    // ends nothing).
    let last_data = windows
        .iter()
        .filter(|w| w.window_end <= at && has_requests(w))
        .map(|w| w.window_end)
        .max()?;
    let (last, _) = moves
        .ends(windows)
        .rev()
        .filter(|(end, _)| *end <= at)
        .find(|(_, moving)| *moving)?;
    if last + gap_ms < last_data {
        return None;
    }
    let mut first = last;
    for (end, moving) in moves.ends(windows).rev().filter(|(end, _)| *end <= last) {
        if moving {
            first = end;
        } else if end + gap_ms < first {
            break;
        }
    }
    if first + recent_ms > at {
        return None;
    }
    // The move was found once the recent range held enough of it: it began within the
    // recent range before.
    let earliest = first.saturating_sub(recent_ms);
    let history = moves.history(windows, earliest).map(|(h, _)| h);
    let mut best: Option<(f64, EventTime)> = None;
    for t in windows
        .iter()
        .map(|w| w.window_end)
        .filter(|&t| t >= earliest && t <= first)
        .rev()
    {
        let (before, after, _) = pooled_ranges(windows, t, params, normal, history.as_ref());
        let z = diagnose_ranges(&before, &after, t, params)
            .culprits
            .iter()
            .flat_map(|c| c.evidence.iter())
            .map(|e| e.z.abs())
            .fold(0.0, f64::max);
        // Latest first: a tie keeps the later point.
        if best.is_none_or(|(z_best, _)| z > z_best) {
            best = Some((z, t));
        }
    }
    Some(best.map_or(first, |(_, t)| t))
}

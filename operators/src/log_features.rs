//! Per-service log features of each window: record counts by severity, and counts per log
//! template, mined online with Drain ([`logdrain`]).
//!
//! **In:** [`LogRecord`]s stamped with the window end of their time; exchanged by service,
//! so each service's template miner lives on one worker.
//!
//! **Out:** one [`LogFeatures`] per (window, service) with records, stamped with the window
//! end, emitted when the window closes.
//!
//! A window's records are mined when it closes, sorted by (service, time, body): Drain is
//! order-dependent, and this order makes template ids and texts the same for any arrival
//! order or number of workers. Before mining, bodies are masked: UUIDs, hex ids of 16 or
//! more digits, IPv4 addresses, clock times and numbers become placeholders, so a
//! template is the line's constant text (the logger and message), not its values.
//!
//! **State:** a window's records until it closes; per service, its miner (at most
//! [`MAX_CLUSTERS_PER_LEAF`] templates per prefix-tree leaf, least recently used evicted),
//! held in a [`LogMiners`] the caller may seed (from a learned normal, so template ids
//! match it) and read back (to learn one).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use logdrain::{Mask, Miner, MinerBuilder, builtin_masks};
use timely::dataflow::StreamVec;
use timely::dataflow::channels::pact::Exchange;

use crate::log_line::statement;
use crate::records::{
    END_OF_TRACE, LogFeatures, LogRecord, Severity, TemplateCount, TemplateTransition,
};
use crate::window::{route, window_fold};

/// Templates kept per leaf of a service's prefix tree.
pub const MAX_CLUSTERS_PER_LEAF: usize = 200;

/// A miner with augur's masks.
pub fn new_miner() -> Miner {
    let mut masks = vec![builtin_masks::uuid(), builtin_masks::ipv4()];
    // Patterns are constants: a failure is a bug caught by the tests, not by users, so
    // a pattern that doesn't compile is only skipped.
    for (pattern, placeholder) in [
        (r"\b[0-9a-fA-F]{16,}\b", "<hex>"),
        (r"\b\d{1,2}:\d{2}:\d{2}(?:[.,]\d+)?\b", "<time>"),
        (r"\b\d{4}-\d{2}-\d{2}\b", "<date>"),
    ] {
        if let Ok(m) = Mask::new(pattern, placeholder) {
            masks.push(m);
        }
    }
    MinerBuilder::new()
        .max_clusters_per_leaf(MAX_CLUSTERS_PER_LEAF)
        .masks(masks)
        .build()
        .unwrap_or_else(|_| Miner::from_options(Default::default()))
}

/// The template miners of a job, per service: shared by its workers (each service's records
/// go to one worker, so each miner is used by one; the map is locked only to find it).
/// Cloning shares the miners.
#[derive(Clone, Default)]
pub struct LogMiners(Arc<Mutex<HashMap<String, Arc<Miner>>>>);

impl std::fmt::Debug for LogMiners {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let services = self.0.lock().map(|m| m.len()).unwrap_or(0);
        write!(f, "LogMiners({services} services)")
    }
}

/// Miners are equal when shared (the same handle).
impl PartialEq for LogMiners {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl LogMiners {
    /// Miners restored from [`LogMiners::snapshots`]; a snapshot that doesn't decode is
    /// an error naming its service.
    pub fn restore(snapshots: &BTreeMap<String, Vec<u8>>) -> Result<LogMiners, String> {
        let mut miners = HashMap::new();
        for (service, bytes) in snapshots {
            let miner = new_miner();
            miner
                .restore(bytes)
                .map_err(|e| format!("template miner of {service}: {e}"))?;
            miners.insert(service.clone(), Arc::new(miner));
        }
        Ok(LogMiners(Arc::new(Mutex::new(miners))))
    }

    /// The miner of `service`, new if it has none yet.
    fn of(&self, service: &str) -> Arc<Miner> {
        let mut miners = self.0.lock().unwrap_or_else(|e| e.into_inner());
        Arc::clone(
            miners
                .entry(service.to_string())
                .or_insert_with(|| Arc::new(new_miner())),
        )
    }

    /// Each service's miner state, to restore later.
    pub fn snapshots(&self) -> BTreeMap<String, Vec<u8>> {
        let miners = self.0.lock().unwrap_or_else(|e| e.into_inner());
        miners
            .iter()
            .map(|(service, miner)| (service.clone(), miner.snapshot()))
            .collect()
    }
}

/// Counts per service of one window.
#[derive(Default)]
struct Counts {
    records: u64,
    errors: u64,
    warnings: u64,
    templates: BTreeMap<u64, u64>,
}

/// Log features per window and service; see the module docs.
pub fn log_features<'s>(
    logs: StreamVec<'s, u64, LogRecord>,
    miners: &LogMiners,
) -> StreamVec<'s, u64, LogFeatures> {
    let miners = miners.clone();
    window_fold(
        logs,
        Exchange::new(|r: &LogRecord| route(&r.service)),
        "LogFeatures",
        |acc: &mut Vec<LogRecord>, r: LogRecord| acc.push(r),
        move |t, mut records| {
            records.sort_by(|a, b| {
                (&a.service, a.time_ns, &a.body).cmp(&(&b.service, b.time_ns, &b.body))
            });
            // Sorted by service: each service's records are one run, mined by its miner.
            records
                .chunk_by(|a, b| a.service == b.service)
                .map(|run| {
                    let service = run[0].service.clone();
                    let miner = miners.of(&service);
                    let mut c = Counts::default();
                    // Per trace, the template of its latest record (the run is in time order).
                    let mut last: HashMap<u128, u64> = HashMap::new();
                    let mut transitions: BTreeMap<(u64, u64), u64> = BTreeMap::new();
                    for r in run {
                        c.records += 1;
                        c.errors += u64::from(r.severity.is_error());
                        c.warnings += u64::from(r.severity == Severity::Warn);
                        let id = miner.add(&statement(&r.body)).cluster_id;
                        *c.templates.entry(id).or_default() += 1;
                        if let Some(trace) = r.trace_id
                            && let Some(from) = last.insert(trace, id)
                        {
                            *transitions.entry((from, id)).or_default() += 1;
                        }
                    }
                    for from in last.into_values() {
                        *transitions.entry((from, END_OF_TRACE)).or_default() += 1;
                    }
                    let templates = c
                        .templates
                        .into_iter()
                        .map(|(id, count)| TemplateCount {
                            id,
                            template: miner
                                .cluster(id)
                                .map(|cl| cl.template().to_string())
                                .unwrap_or_default(),
                            count,
                        })
                        .collect();
                    LogFeatures {
                        window_end: t,
                        service,
                        records: c.records,
                        errors: c.errors,
                        warnings: c.warnings,
                        templates,
                        transitions: transitions
                            .into_iter()
                            .map(|((from, to), count)| TemplateTransition { from, to, count })
                            .collect(),
                    }
                })
                .collect()
        },
    )
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use timely::dataflow::operators::vec::Input;
    use timely::dataflow::operators::{Inspect, Probe};

    use super::*;

    const MS: u64 = 1_000_000;

    fn record(service: &str, at_ms: u64, severity: Severity, body: String) -> LogRecord {
        LogRecord {
            service: service.into(),
            instance: format!("{service}-0"),
            time_ns: at_ms * MS,
            severity,
            body,
            trace_id: None,
            span_id: None,
        }
    }

    /// Train Ticket-shaped lines: a clock time, level, logger#line, trace and span ids, the
    /// message. Window 1000 (ends): 4 `#31` lines; window 2000: 2 `#31`, 3 `#37` errors, and
    /// one line of another service.
    fn records() -> Vec<(u64, LogRecord)> {
        let line = |k: u64, level: &str, at: &str, msg: &str| {
            format!(
                "16:42:{:02}.{:03} {level}  c.s.ContactsServiceImpl#{at} TraceID: {:032x} SpanID: {:016x} [findContactsById]{msg}",
                k % 60,
                k * 7 % 1000,
                0xabc0_u128 + u128::from(k),
                0x77_u64 * (k + 1),
            )
        };
        let mut out = Vec::new();
        for k in 0..4 {
            out.push((
                1000,
                record(
                    "contacts",
                    100 + k,
                    Severity::Info,
                    line(k, "INFO", "31", "[ok]"),
                ),
            ));
        }
        for k in 4..6 {
            out.push((
                2000,
                record(
                    "contacts",
                    1100 + k,
                    Severity::Info,
                    line(k, "INFO", "31", "[ok]"),
                ),
            ));
        }
        for k in 6..9 {
            out.push((
                2000,
                record(
                    "contacts",
                    1100 + k,
                    Severity::Error,
                    line(k, "ERROR", "37", "[No contacts according to contactsId]"),
                ),
            ));
        }
        out.push((
            2000,
            record(
                "gateway",
                1500,
                Severity::Warn,
                "slow upstream 120 ms".into(),
            ),
        ));
        out
    }

    fn run(workers: usize) -> Vec<LogFeatures> {
        run_with(workers, &LogMiners::default())
    }

    fn run_with(workers: usize, miners: &LogMiners) -> Vec<LogFeatures> {
        run_feed(workers, miners, records())
    }

    fn run_feed(
        workers: usize,
        miners: &LogMiners,
        feed: Vec<(u64, LogRecord)>,
    ) -> Vec<LogFeatures> {
        let miners = miners.clone();
        let out: Arc<Mutex<Vec<LogFeatures>>> = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&out);
        timely::execute(timely::Config::process(workers), move |worker| {
            let index = worker.index();
            let peers = worker.peers();
            let sink = Arc::clone(&sink);
            let (mut input, probe) = worker.dataflow::<u64, _, _>(|scope| {
                let (input, logs) = scope.new_input::<LogRecord>();
                let (probe, _) = log_features(logs, &miners)
                    .inspect(move |f: &LogFeatures| {
                        sink.lock().expect("lock").push(f.clone());
                    })
                    .probe();
                (input, probe)
            });
            for (i, (t, r)) in feed.iter().enumerate() {
                if i % peers == index {
                    input.advance_to(*t);
                    input.send(r.clone());
                }
            }
            input.advance_to(3000);
            while probe.less_than(&3000) {
                worker.step();
            }
        })
        .expect("timely runs");
        let mut got = out.lock().expect("lock").clone();
        got.sort_by(|a, b| (a.window_end, &a.service).cmp(&(b.window_end, &b.service)));
        got
    }

    /// Lines of two loggers that share the time, level and ids in front stay two templates
    /// (with the prefix in, Drain's tree keys on it and merges them into one).
    #[test]
    fn statements_of_different_loggers_stay_apart() {
        let miner = new_miner();
        let lines = [
            "18:11:08.820 INFO  t.c.TravelController#122 TraceID: 22ebfc7f2f5d6b4c3c81e89f450383d2 SpanID: 37ac753b1fd26d49 [query][Query TripResponse]",
            "18:11:08.823 INFO  t.s.TravelServiceImpl#486 TraceID: 22ebfc7f2f5d6b4c3c81e89f450383d2 SpanID: 37ac753b1fd26d49 [today date]",
            "18:11:09.092 INFO  t.c.TravelController#122 TraceID: 6a64fdd57f89dcda0a0d242ed9f45d7a SpanID: 0998d0be4a2b6a1a [query][Query TripResponse]",
        ];
        let ids: Vec<_> = lines
            .iter()
            .map(|l| miner.add(&statement(l)).cluster_id)
            .collect();
        assert_ne!(ids[0], ids[1]);
        assert_eq!(ids[0], ids[2]);
        let merged = new_miner();
        let raw: Vec<_> = lines.iter().map(|l| merged.add(l).cluster_id).collect();
        assert_eq!(raw[0], raw[1], "the prefix merges them without the cut");
    }

    #[test]
    fn templates_are_the_constant_text_and_the_same_for_any_worker_count() {
        let one = run(1);
        assert_eq!(one, run(2));
        let windows: Vec<(u64, &str, u64, u64, u64)> = one
            .iter()
            .map(|f| {
                (
                    f.window_end,
                    f.service.as_str(),
                    f.records,
                    f.errors,
                    f.warnings,
                )
            })
            .collect();
        assert_eq!(
            windows,
            vec![
                (1000, "contacts", 4, 0, 0),
                (2000, "contacts", 5, 3, 0),
                (2000, "gateway", 1, 0, 1),
            ]
        );
        // One template for the INFO #31 lines whatever their times and ids, another for the
        // ERROR #37 lines; the first keeps its id across windows.
        assert_eq!(one[0].templates.len(), 1, "{:#?}", one[0]);
        let ok = &one[0].templates[0];
        assert_eq!(ok.count, 4);
        assert!(
            ok.template.contains("c.s.ContactsServiceImpl#31"),
            "{}",
            ok.template
        );
        assert!(!ok.template.contains("abc"), "ids masked: {}", ok.template);
        let second: BTreeMap<u64, (u64, &str)> = one[1]
            .templates
            .iter()
            .map(|t| (t.id, (t.count, t.template.as_str())))
            .collect();
        assert_eq!(second.len(), 2, "{second:#?}");
        assert_eq!(second.get(&ok.id).map(|t| t.0), Some(2));
        let (errors, text) = second
            .iter()
            .find(|(id, _)| **id != ok.id)
            .map(|(_, t)| *t)
            .expect("a second template");
        assert_eq!(errors, 3);
        assert!(text.contains("ContactsServiceImpl#37"), "{text}");
    }

    /// Miners restored from a snapshot give the lines the ids they had when it was taken,
    /// where fresh miners number templates anew.
    #[test]
    fn restored_miners_keep_template_ids() {
        let learned = LogMiners::default();
        let first = run_with(1, &learned);
        let snapshots = learned.snapshots();
        assert_eq!(
            snapshots.keys().map(String::as_str).collect::<Vec<_>>(),
            ["contacts", "gateway"]
        );
        // A miner that has seen one other line first numbers the same lines differently.
        let shifted = LogMiners::default();
        add_line(&shifted, "contacts", "an unrelated first line");
        let ids = |f: &[LogFeatures]| -> Vec<(u64, String, Vec<u64>)> {
            f.iter()
                .map(|w| {
                    (
                        w.window_end,
                        w.service.clone(),
                        w.templates.iter().map(|t| t.id).collect(),
                    )
                })
                .collect()
        };
        assert_ne!(ids(&run_with(1, &shifted)), ids(&first));
        let again = run_with(1, &LogMiners::restore(&snapshots).expect("restore"));
        assert_eq!(ids(&again), ids(&first));
        assert!(LogMiners::restore(&BTreeMap::from([("x".to_string(), vec![1, 2])])).is_err());
    }

    fn add_line(miners: &LogMiners, service: &str, line: &str) {
        miners.of(service).add(line);
    }

    /// Within each trace, which statement followed which: two traces write `start` then
    /// `done`, one only `start` (it threw); a line without a trace id is in no transition.
    #[test]
    fn transitions_follow_each_trace() {
        let line = |trace: u128, what: &str| LogRecord {
            trace_id: Some(trace),
            ..record(
                "svc",
                0,
                Severity::Info,
                format!("INFO c.s.Impl#{what} handling"),
            )
        };
        let mut feed = Vec::new();
        for (k, (trace, what)) in [
            (1, "10 start"),
            (2, "10 start"),
            (1, "20 done"),
            (3, "10 start"),
            (2, "20 done"),
        ]
        .into_iter()
        .enumerate()
        {
            let mut r = line(trace, what);
            r.time_ns = (100 + k as u64) * MS;
            feed.push((1000, r));
        }
        feed.push((
            1000,
            record("svc", 150, Severity::Info, "no trace here".into()),
        ));
        let out = run_feed(1, &LogMiners::default(), feed);
        assert_eq!(out.len(), 1);
        let id = |text: &str| {
            out[0]
                .templates
                .iter()
                .find(|t| t.template.contains(text))
                .map(|t| t.id)
                .unwrap_or_else(|| panic!("no template {text}: {:#?}", out[0]))
        };
        let (start, done) = (id("#10"), id("#20"));
        let mut expected = vec![
            TemplateTransition {
                from: start,
                to: done,
                count: 2,
            },
            TemplateTransition {
                from: start,
                to: END_OF_TRACE,
                count: 1,
            },
            TemplateTransition {
                from: done,
                to: END_OF_TRACE,
                count: 2,
            },
        ];
        expected.sort();
        assert_eq!(out[0].transitions, expected);
    }
}

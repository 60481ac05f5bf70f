//! Fluxion's inference graph as the actuation policy's what-if model.
//!
//! In: a trained graph and the latest window's sample; questions "p99 with one more replica
//! of S" and "p99 with S's CPU × f". Out: [`WhatIfAnswer`]s. State: the graph and the sample
//! ([`GraphWhatIf`]: replace the sample as windows close with [`GraphWhatIf::observe`]); or,
//! in a running job, whatever the `fluxion` detector last published on its [`GraphBoard`]
//! ([`BoardWhatIf`], which rebuilds the graph once per published version).
//!
//! Only CPU scale-ups are answered (the graph's own inputs hold CPU utilization, not memory
//! or network); for other resources the policy keeps its default order.

use std::sync::{Arc, Mutex};

use augur_models::DetectorKind;
use augur_models::fluxion::{GraphBoard, InferenceGraph, Sample, what_if, what_if_cpu};
use augur_operators::Resource;

use super::{WhatIfAnswer, WhatIfModel};
use crate::config::Config;

pub struct GraphWhatIf {
    pub graph: InferenceGraph,
    pub latest: Sample,
}

impl GraphWhatIf {
    pub fn new(graph: InferenceGraph, latest: Sample) -> Self {
        GraphWhatIf { graph, latest }
    }

    /// The newest window's sample.
    pub fn observe(&mut self, sample: Sample) {
        self.latest = sample;
    }
}

/// Both answers from `graph` on `sample`.
fn answer(
    graph: &InferenceGraph,
    sample: &Sample,
    service: &str,
    resource: Resource,
    factor: f64,
) -> Option<WhatIfAnswer> {
    if resource != Resource::Cpu {
        return None;
    }
    let out = what_if(graph, sample, service, 1)?;
    let (_, up) = what_if_cpu(graph, sample, service, factor as f32)?;
    Some(WhatIfAnswer {
        p99_now_ms: out.p99_now_ms,
        p99_scale_out_ms: out.p99_after_ms,
        p99_scale_up_ms: up,
    })
}

impl WhatIfModel for GraphWhatIf {
    fn ask(&self, service: &str, resource: Resource, factor: f64) -> Option<WhatIfAnswer> {
        answer(&self.graph, &self.latest, service, resource, factor)
    }
}

/// The what-if over the graph a running `fluxion` detector publishes.
pub struct BoardWhatIf {
    board: Arc<GraphBoard>,
    /// The graph of the version last read.
    cache: Mutex<Option<(u64, InferenceGraph)>>,
}

impl BoardWhatIf {
    pub fn new(board: Arc<GraphBoard>) -> Self {
        BoardWhatIf {
            board,
            cache: Mutex::new(None),
        }
    }
}

impl WhatIfModel for BoardWhatIf {
    fn ask(&self, service: &str, resource: Resource, factor: f64) -> Option<WhatIfAnswer> {
        let published = self.board.read()?;
        let mut cache = self.cache.lock().ok()?;
        if cache.as_ref().map(|(v, _)| *v) != Some(published.version) {
            let Some(graph) = InferenceGraph::from_state(&published.graph) else {
                tracing::warn!("what-if: the published fluxion graph is malformed");
                return None;
            };
            *cache = Some((published.version, graph));
        }
        let (_, graph) = cache.as_ref()?;
        answer(graph, &published.latest, service, resource, factor)
    }
}

/// With `[actuation] what_if`: the detectors with `fluxion` added (when absent) and the
/// board it publishes on, for [`JobWhatIf::model`]. Otherwise the detectors unchanged.
#[derive(Clone, Default)]
pub struct JobWhatIf {
    pub board: Option<Arc<GraphBoard>>,
}

impl JobWhatIf {
    /// Adds `fluxion` to `detectors` when the config asks for the what-if.
    pub fn for_job(config: &Config, detectors: &mut Vec<DetectorKind>) -> JobWhatIf {
        if !config.actuation.what_if || !config.actuation.enabled {
            return JobWhatIf::default();
        }
        if !detectors.contains(&DetectorKind::Fluxion) {
            detectors.push(DetectorKind::Fluxion);
        }
        JobWhatIf {
            board: Some(GraphBoard::new()),
        }
    }

    /// The policy's what-if model, if the job has one.
    pub fn model(&self) -> Option<Box<dyn WhatIfModel>> {
        self.board
            .as_ref()
            .map(|b| Box::new(BoardWhatIf::new(Arc::clone(b))) as Box<dyn WhatIfModel>)
    }
}

#[cfg(test)]
mod tests {
    //! One case where the what-if changes the choice: Sage names `db`'s CPU, but `db` is
    //! bound by its per-replica load (a thread pool), not by CPU: its CPU utilization moves
    //! with a noisy neighbour that doesn't touch its latency. Without the what-if the policy
    //! scales CPU up first; with it, it scales out.
    #![allow(clippy::unwrap_used)]

    use std::collections::BTreeMap;

    use augur_models::fluxion::{AssignmentSettings, SPECTRUM, ServiceSample};
    use augur_operators::decide::rfc3339;
    use augur_operators::{Alert, AlertKind, Culprit, ModelRef};

    /// A tiny deterministic generator (no extra dev-dependency).
    struct Lcg(u64);

    impl Lcg {
        fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            lo + (hi - lo) * ((self.0 >> 40) as f32 / (1u64 << 24) as f32)
        }
    }

    use super::*;
    use crate::actuation::{ActuationConfig, ActuationPolicy, SCALE_OUT, SCALE_UP};

    /// front → db; db's p99 = 2 + 20 (load per replica / 100)²; its CPU is noise.
    fn sample(rng: &mut Lcg, rate: f32, replicas: f32) -> Sample {
        let per = rate / replicas;
        let u = per / 100.0;
        let cpu = rng.uniform(0.1, 0.9);
        let db_base = 1.0 + 10.0 * u * u;
        let spread = [1.0f32, 1.2, 1.5, 1.8, 2.0];
        let mut db = [0.0f32; SPECTRUM];
        let mut front = [0.0f32; SPECTRUM];
        for q in 0..SPECTRUM {
            db[q] = db_base * spread[q];
            front[q] = 0.5 * spread[q] + db[q];
        }
        let mut services = BTreeMap::new();
        services.insert(
            "db".to_string(),
            ServiceSample {
                own: [rate, replicas, per, cpu, (cpu + 0.1).min(1.0)],
                latency: db,
                active: true,
                version: None,
            },
        );
        services.insert(
            "front".to_string(),
            ServiceSample {
                own: [rate, 2.0, rate / 2.0, 0.2, 0.3],
                latency: front,
                active: true,
                version: None,
            },
        );
        let mut callees = BTreeMap::new();
        callees.insert("front".to_string(), vec!["db".to_string()]);
        Sample {
            window_end: 0,
            services,
            callees,
            entry: Some(("front".to_string(), front)),
            slo: Some((0.99, 20.0)),
        }
    }

    fn alert() -> Alert {
        Alert {
            id: Alert::id_for(10_000, "front", AlertKind::RootCause, "sage"),
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
            starts_at: rfc3339(10_000),
            ends_at: None,
            kind: AlertKind::RootCause,
            service: "front".to_string(),
            probability: 0.95,
            horizon_ms: 1000,
            culprits: vec![Culprit {
                service: "db".to_string(),
                score: 1.0,
                resource: Some(Resource::Cpu),
                operation: None,
            }],
            window_end: 10_000,
            model: ModelRef {
                name: "sage".to_string(),
                version: "1".to_string(),
            },
        }
    }

    /// A graph fitted on 300 windows at random load and 1–3 db replicas, and the generator
    /// to draw further windows from.
    fn trained_graph(seed: u64) -> (InferenceGraph, Lcg) {
        augur_models::runtime::set_threads(1);
        augur_models::runtime::seed(3);
        let mut rng = Lcg(seed);
        let train: Vec<Sample> = (0..300)
            .map(|i| {
                let rate = rng.uniform(50.0, 300.0);
                sample(&mut rng, rate, [1.0, 2.0, 3.0][i % 3])
            })
            .collect();
        let graph = InferenceGraph::fit(&train, "front", AssignmentSettings::default());
        (graph, rng)
    }

    #[test]
    fn the_what_if_turns_a_cpu_scale_up_into_a_scale_out() {
        let (graph, mut rng) = trained_graph(5);
        // Now: heavy load on one replica.
        let now = sample(&mut rng, 250.0, 1.0);
        let model = GraphWhatIf::new(graph, now);
        let a = model.ask("db", Resource::Cpu, 2.0).unwrap();
        // Truth: one more replica takes db from 1 + 62.5 to 1 + 15.6 (×2.0 spread at p99);
        // a CPU scale-up changes nothing.
        assert!(
            a.p99_scale_out_ms < 0.6 * a.p99_now_ms,
            "scale-out predicted {a:?}"
        );
        assert!(
            (a.p99_scale_up_ms - a.p99_now_ms).abs() < 0.25 * a.p99_now_ms,
            "scale-up predicted {a:?}"
        );
        assert!(model.ask("db", Resource::Memory, 2.0).is_none());

        let without = ActuationPolicy::new(ActuationConfig::default())
            .decide(&alert())
            .unwrap();
        assert_eq!(without.kind, SCALE_UP);
        let with = ActuationPolicy::new(ActuationConfig::default())
            .with_what_if(Box::new(model))
            .decide(&alert())
            .unwrap();
        assert_eq!(with.kind, SCALE_OUT);
        assert_eq!(with.data.replicas_delta, 1);
        assert!(
            with.data.summary.contains("one more replica"),
            "{}",
            with.data.summary
        );
    }

    #[test]
    fn the_board_answers_from_the_newest_published_graph() {
        let (graph, mut rng) = trained_graph(7);
        let now = sample(&mut rng, 250.0, 1.0);
        let board = GraphBoard::new();
        let model = BoardWhatIf::new(Arc::clone(&board));
        // Nothing published: no answer, and the policy keeps its default order.
        assert!(model.ask("db", Resource::Cpu, 2.0).is_none());
        board.publish_sample(now.clone());
        assert!(model.ask("db", Resource::Cpu, 2.0).is_none());

        board.publish_graph(graph.state());
        let direct = GraphWhatIf::new(graph, now.clone());
        let expected = direct.ask("db", Resource::Cpu, 2.0).unwrap();
        let got = model.ask("db", Resource::Cpu, 2.0).unwrap();
        assert!(
            (got.p99_now_ms - expected.p99_now_ms).abs() < 1e-3,
            "{got:?}"
        );
        assert!((got.p99_scale_out_ms - expected.p99_scale_out_ms).abs() < 1e-3);
        assert!((got.p99_scale_up_ms - expected.p99_scale_up_ms).abs() < 1e-3);

        // A newer window moves the answer without a new graph.
        board.publish_sample(sample(&mut rng, 60.0, 3.0));
        let light = model.ask("db", Resource::Cpu, 2.0).unwrap();
        assert!(
            light.p99_now_ms < 0.5 * got.p99_now_ms,
            "{light:?} vs {got:?}"
        );

        // The job wiring: the config switch adds the detector and hands the policy a model.
        let mut config = Config::default();
        let mut detectors = vec![DetectorKind::Sage];
        assert!(
            JobWhatIf::for_job(&config, &mut detectors)
                .model()
                .is_none()
        );
        assert_eq!(detectors, [DetectorKind::Sage]);
        config.actuation.what_if = true;
        let job = JobWhatIf::for_job(&config, &mut detectors);
        assert_eq!(detectors, [DetectorKind::Sage, DetectorKind::Fluxion]);
        assert!(job.board.is_some() && job.model().is_some());
    }
}

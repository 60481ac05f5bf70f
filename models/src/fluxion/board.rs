//! The `fluxion` detector's newest graph and window, shared with readers in the same
//! process — the actuation policy's what-if query in a running job.
//!
//! In: from the detector (on its inference thread), the graph after every (re)fit and the
//! sample of every window. Out: to readers (the policy, on the output thread), the newest of
//! both and a version that changes whenever the graph does. State: that pair.
//!
//! The graph crosses as its plain-number state (the models are rebuilt by the reader once
//! per version), so neither side holds a lock while libtorch runs.

use std::sync::{Arc, Mutex};

use super::features::Sample;
use super::graph::GraphState;

/// What the detector published last.
#[derive(Clone, Debug)]
pub struct Published {
    /// Changes whenever `graph` does.
    pub version: u64,
    pub graph: Arc<GraphState>,
    /// The newest window's sample.
    pub latest: Sample,
}

#[derive(Debug, Default)]
pub struct GraphBoard {
    graph: Mutex<Option<(u64, Arc<GraphState>)>>,
    latest: Mutex<Option<Sample>>,
}

impl GraphBoard {
    pub fn new() -> Arc<Self> {
        Arc::new(GraphBoard::default())
    }

    /// A new graph (after a fit or refit).
    pub fn publish_graph(&self, state: GraphState) {
        if let Ok(mut g) = self.graph.lock() {
            let version = g.as_ref().map_or(1, |(v, _)| v + 1);
            *g = Some((version, Arc::new(state)));
        }
    }

    /// The newest window's sample.
    pub fn publish_sample(&self, sample: Sample) {
        if let Ok(mut l) = self.latest.lock() {
            *l = Some(sample);
        }
    }

    /// The newest graph and window; `None` until the detector has a graph and a window.
    pub fn read(&self) -> Option<Published> {
        let (version, graph) = self.graph.lock().ok()?.clone()?;
        let latest = self.latest.lock().ok()?.clone()?;
        Some(Published {
            version,
            graph,
            latest,
        })
    }
}

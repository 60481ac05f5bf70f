//! The calls in flight: one RPC (or the root request) each, in a pool whose slots are
//! reused once a call has replied.

use std::ops::{Index, IndexMut};

/// The stage of a call that goes straight to its reply: it failed or was rejected.
pub(super) const REPLY_STAGE: u32 = u32::MAX;

/// One RPC in flight (or the root request).
#[derive(Clone, Copy, Debug)]
pub(super) struct Call {
    pub(super) trace_id: u128,
    /// The callee's server span.
    pub(super) span_id: u64,
    /// The caller's client span (the server span's parent); 0 for the root request.
    pub(super) client_span_id: u64,
    /// The calling call; `None` for the root request.
    pub(super) parent: Option<u32>,
    pub(super) service: u32,
    pub(super) op: u32,
    pub(super) replica: u32,
    /// The stage of the operation's calls running now; [`REPLY_STAGE`] after a failure.
    pub(super) stage: u32,
    /// Children of the current stage that have not replied yet.
    pub(super) pending: u32,
    pub(super) send_ns: u64,
    pub(super) arrive_ns: u64,
    pub(super) pre_ns: u64,
    pub(super) post_ns: u64,
    pub(super) error: bool,
}

#[derive(Debug)]
pub(super) struct CallPool {
    calls: Vec<Call>,
    free: Vec<u32>,
}

impl Default for CallPool {
    fn default() -> Self {
        CallPool {
            calls: Vec::with_capacity(1 << 16),
            free: Vec::new(),
        }
    }
}

impl CallPool {
    /// Stores `call` in a free slot (the most recently freed) or a new one; its index.
    pub(super) fn alloc(&mut self, call: Call) -> u32 {
        match self.free.pop() {
            Some(i) => {
                self.calls[i as usize] = call;
                i
            }
            None => {
                self.calls.push(call);
                (self.calls.len() - 1) as u32
            }
        }
    }

    /// The call has replied: its slot may be reused.
    pub(super) fn free(&mut self, call: u32) {
        self.free.push(call);
    }
}

impl Index<usize> for CallPool {
    type Output = Call;

    fn index(&self, i: usize) -> &Call {
        &self.calls[i]
    }
}

impl IndexMut<usize> for CallPool {
    fn index_mut(&mut self, i: usize) -> &mut Call {
        &mut self.calls[i]
    }
}

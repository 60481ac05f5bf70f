//! A request's way through the cluster: arrival, queueing for a thread, local processing
//! on a core (with the faults that hit it), the child RPCs stage by stage over the network,
//! and the reply, with a server span and a client span per RPC.

use augur_operators::records::{Span, SpanKind};

use super::super::SpanShape;
use super::super::faults::FaultKind;
use super::super::model::{CallModel, OpModel};
use super::Simulator;
use super::call::{Call, REPLY_STAGE};
use super::event::{Event, EventKind};

/// Retransmission timeout a lost message waits (Linux's minimum RTO).
const RTO_NS: f64 = 200e6;
/// A failing request gives up after this share of its normal processing time.
const FAIL_FAST_SHARE: f64 = 0.2;
/// Processing time of rejecting a request that timed out in the queue.
const REJECT_NS: f64 = 20_000.0;
/// Headers and framing of one RPC message (HTTP/2 + gRPC or Thrift), bytes.
const MESSAGE_OVERHEAD_BYTES: u64 = 300;

impl Simulator {
    /// A new root request at one of the entry points, and the next arrival's time.
    pub(super) fn arrival(&mut self) {
        let t = self.now_ns;
        let x = self.uniform();
        let request = self
            .model
            .request_cdf
            .partition_point(|&c| c < x)
            .min(self.model.requests.len() - 1);
        let (service, op) = {
            let r = &self.model.requests[request];
            (r.service, r.op)
        };
        if let Some(replica) = self.cluster.pick_replica(service) {
            let trace_id = self.ids.next_trace_id();
            let span_id = self.ids.next_span_id();
            let call = self.calls.alloc(Call {
                trace_id,
                span_id,
                client_span_id: 0,
                parent: None,
                service,
                op,
                replica,
                stage: 0,
                pending: 0,
                send_ns: t,
                arrive_ns: t,
                pre_ns: 0,
                post_ns: 0,
                error: false,
            });
            self.arrive(call);
        }
        self.load.next_arrival_ns = t + self.exp_gap_ns(t);
    }

    fn op(&self, service: u32, op: u32) -> &OpModel {
        &self.model.services[service as usize].ops[op as usize]
    }

    pub(super) fn handle(&mut self, event: Event, spans: &mut Vec<Span>) {
        match event.kind {
            EventKind::Arrive => self.arrive(event.call),
            EventKind::PreDone => {
                self.release_core(event.call);
                self.run_stages(event.call);
            }
            EventKind::PostDone => {
                self.release_core(event.call);
                self.post_done(event.call, spans);
            }
            EventKind::Response => self.response(event.call, spans),
        }
    }

    fn arrive(&mut self, c: u32) {
        let call = &mut self.calls[c as usize];
        call.arrive_ns = self.now_ns;
        let (service, op, r) = (call.service, call.op, call.replica);
        let bytes = self.op(service, op).request_bytes;
        let capacity = self.capacity(r);
        let replica = &mut self.cluster.replicas[r as usize];
        replica.inflight += 1;
        replica.net_bytes += bytes + MESSAGE_OVERHEAD_BYTES;
        if replica.busy < capacity {
            self.start(c);
        } else {
            replica.queue.push_back(c);
        }
    }

    /// Worker threads of a replica now, after any thread-pool shrink.
    fn capacity(&self, r: u32) -> u32 {
        let service = self.cluster.replicas[r as usize].service;
        let mut threads = self.model.services[service as usize].threads;
        for &f in &self.injections.active_faults {
            let fault = &self.injections.faults[f as usize];
            if fault.kind == FaultKind::ThreadPoolShrink && fault.hits(service, r) {
                let magnitude = fault.magnitude_at(self.now_ns);
                threads = ((f64::from(threads) / magnitude).round() as u32).max(1);
            }
        }
        threads
    }

    /// A thread takes the call: draw its processing time (with faults) and run the part
    /// before the children.
    fn start(&mut self, c: u32) {
        let call = self.calls[c as usize];
        let (mu, sigma, pre_fraction, error_rate) = {
            let op = self.op(call.service, call.op);
            (op.mu, op.sigma, op.pre_fraction, op.error_rate)
        };
        let z = self.normal();
        let mut time = (mu + sigma * z).exp();
        // Drawn only for operations that fail on their own, so topologies without error
        // rates keep their random stream.
        let mut fail = error_rate > 0.0 && self.uniform() < error_rate;
        if self.now_ns - call.arrive_ns > self.model.queue_timeout_ns {
            // Deadline exceeded while queued: rejected at once, no children.
            let call = &mut self.calls[c as usize];
            call.error = true;
            call.pre_ns = 0;
            call.post_ns = REJECT_NS as u64;
            call.stage = REPLY_STAGE;
            self.cluster.replicas[call.replica as usize].busy += 1;
            self.request_core(c, true);
            return;
        }
        for i in 0..self.injections.active_faults.len() {
            let fault = &self.injections.faults[self.injections.active_faults[i] as usize];
            if !fault.hits(call.service, call.replica) {
                continue;
            }
            let (kind, magnitude, progress) = (
                fault.kind,
                fault.magnitude_at(self.now_ns),
                fault.progress(self.now_ns),
            );
            let allot = self.cluster.services[call.service as usize].allotment;
            match kind {
                FaultKind::CpuContention => time *= 1.0 + (magnitude - 1.0) / allot.cpu,
                FaultKind::MemoryContention => {
                    // Cache and bandwidth contention: slower and more variable (CV 0.5 noise).
                    let z = self.normal();
                    time *= (1.0 + (magnitude - 1.0) / allot.memory) * (-0.1116 + 0.4724 * z).exp();
                }
                FaultKind::MemoryLeak => {
                    time *= 1.0 + (magnitude - 1.0) * progress / allot.memory;
                }
                FaultKind::ErrorFault => fail |= self.uniform() < magnitude,
                FaultKind::NetworkDelay | FaultKind::NetworkLoss | FaultKind::ThreadPoolShrink => {}
            }
        }
        let call = &mut self.calls[c as usize];
        if fail {
            // Fails fast: a short burst of processing, no children.
            call.error = true;
            call.pre_ns = 0;
            call.post_ns = (time * FAIL_FAST_SHARE) as u64;
            call.stage = REPLY_STAGE;
        } else {
            let pre = time * pre_fraction;
            call.pre_ns = pre as u64;
            call.post_ns = (time - pre) as u64;
        }
        self.cluster.replicas[call.replica as usize].busy += 1;
        let post = call.stage == REPLY_STAGE;
        self.request_core(c, post);
    }

    /// Local processing needs a core; without a free one the call waits in the run queue.
    pub(super) fn request_core(&mut self, c: u32, post: bool) {
        let call = &self.calls[c as usize];
        let duration = if post { call.post_ns } else { call.pre_ns };
        let replica = &mut self.cluster.replicas[call.replica as usize];
        if replica.cpu_busy < replica.cpu_slots {
            replica.cpu_busy += 1;
            replica.cpu_busy_ns += duration as f64;
            let kind = if post {
                EventKind::PostDone
            } else {
                EventKind::PreDone
            };
            self.events.schedule(self.now_ns + duration, kind, c);
        } else {
            replica.run_queue.push_back((c, post));
        }
    }

    /// A processing phase ended: the core goes to the next call in the run queue.
    fn release_core(&mut self, c: u32) {
        let r = self.calls[c as usize].replica as usize;
        self.cluster.replicas[r].cpu_busy -= 1;
        if let Some((next, post)) = self.cluster.replicas[r].run_queue.pop_front() {
            self.request_core(next, post);
        }
    }

    /// Starts the call's current stage; empty stages (every call skipped by its probability)
    /// fall through; after the last stage, the post-processing.
    fn run_stages(&mut self, c: u32) {
        loop {
            let call = self.calls[c as usize];
            let stages = self.op(call.service, call.op).stages.len();
            if call.stage as usize >= stages {
                self.request_core(c, true);
                return;
            }
            let width = self.op(call.service, call.op).stages[call.stage as usize].len();
            let mut launched = 0;
            for i in 0..width {
                let target: CallModel =
                    self.op(call.service, call.op).stages[call.stage as usize][i];
                if target.probability < 1.0 && self.uniform() >= target.probability {
                    continue;
                }
                if self.launch(c, target) {
                    launched += 1;
                }
            }
            if launched > 0 {
                self.calls[c as usize].pending = launched;
                return;
            }
            self.calls[c as usize].stage += 1;
        }
    }

    /// Sends one child RPC; false if the callee has no replica left.
    fn launch(&mut self, parent: u32, target: CallModel) -> bool {
        let Some(replica) = self.cluster.pick_replica(target.service) else {
            return false;
        };
        let p = self.calls[parent as usize];
        let span_id = self.ids.next_span_id();
        let client_span_id = self.ids.next_span_id();
        let child = self.calls.alloc(Call {
            trace_id: p.trace_id,
            span_id,
            client_span_id,
            parent: Some(parent),
            service: target.service,
            op: target.op,
            replica,
            stage: 0,
            pending: 0,
            send_ns: self.now_ns,
            arrive_ns: self.now_ns,
            pre_ns: 0,
            post_ns: 0,
            error: false,
        });
        let bytes = self.op(target.service, target.op).request_bytes;
        self.cluster.replicas[p.replica as usize].net_bytes += bytes + MESSAGE_OVERHEAD_BYTES;
        let delay = self.network_delay_ns(p.service, replica);
        self.events
            .schedule(self.now_ns + delay, EventKind::Arrive, child);
        true
    }

    /// One leg of an RPC between `caller` and the replica `callee`, with network faults.
    fn network_delay_ns(&mut self, caller: u32, callee: u32) -> u64 {
        let u = self.uniform();
        let mut delay = self.model.network_base_ns - self.model.network_jitter_ns * (1.0 - u).ln();
        let service = self.cluster.replicas[callee as usize].service;
        let network = self.cluster.services[service as usize].allotment.network;
        for i in 0..self.injections.active_faults.len() {
            let fault = &self.injections.faults[self.injections.active_faults[i] as usize];
            if !fault.hits(service, callee) || fault.caller.is_some_and(|c| c != caller) {
                continue;
            }
            match fault.kind {
                FaultKind::NetworkDelay => delay += fault.magnitude_at(self.now_ns) * 1e6 / network,
                FaultKind::NetworkLoss => {
                    let magnitude = fault.magnitude_at(self.now_ns) / network;
                    if self.uniform() < magnitude {
                        delay += RTO_NS;
                    }
                }
                _ => {}
            }
        }
        delay as u64
    }

    /// The reply is sent: server span, thread freed, response on the wire.
    fn post_done(&mut self, c: u32, spans: &mut Vec<Span>) {
        let call = self.calls[c as usize];
        let service = &self.model.services[call.service as usize];
        let op = &service.ops[call.op as usize];
        let replica = &mut self.cluster.replicas[call.replica as usize];
        if service.instrumented && !self.dropped.spans[call.service as usize] {
            // A SERVER span under the caller's CLIENT span, or one span per hop (no kind)
            // under the caller's own span.
            let (kind, parent_span_id) = match self.model.span_shape {
                SpanShape::ClientServer => (
                    SpanKind::Server,
                    (call.client_span_id != 0).then_some(call.client_span_id),
                ),
                SpanShape::OnePerHop => (
                    SpanKind::Unspecified,
                    call.parent.map(|p| self.calls[p as usize].span_id),
                ),
            };
            spans.push(Span {
                trace_id: call.trace_id,
                span_id: call.span_id,
                parent_span_id,
                service: service.name.clone(),
                instance: replica.name.clone(),
                kind,
                name: op.name.clone(),
                start_ns: call.arrive_ns,
                end_ns: self.now_ns,
                error: call.error,
                peer_service: None,
                version: Some(service.version.clone()),
            });
        }
        replica.busy -= 1;
        replica.inflight -= 1;
        replica.net_bytes += op.response_bytes + MESSAGE_OVERHEAD_BYTES;
        if !call.error {
            replica.disk_bytes += op.disk_write_bytes;
        }
        self.dequeue(call.replica);
        match call.parent {
            None => self.calls.free(c),
            Some(parent) => {
                let caller = self.calls[parent as usize].service;
                let delay = self.network_delay_ns(caller, call.replica);
                self.events
                    .schedule(self.now_ns + delay, EventKind::Response, c);
            }
        }
    }

    pub(super) fn dequeue(&mut self, r: u32) {
        let capacity = self.capacity(r);
        while self.cluster.replicas[r as usize].busy < capacity {
            let Some(next) = self.cluster.replicas[r as usize].queue.pop_front() else {
                break;
            };
            self.start(next);
        }
    }

    /// The reply reaches the caller: client span; the caller's stage may be complete.
    fn response(&mut self, c: u32, spans: &mut Vec<Span>) {
        let call = self.calls[c as usize];
        // Only calls with a caller are answered over the network.
        let Some(p) = call.parent else {
            return;
        };
        let parent = self.calls[p as usize];
        let callee = &self.model.services[call.service as usize];
        let op = &callee.ops[call.op as usize];
        let caller = &self.model.services[parent.service as usize];
        let caller_replica = &mut self.cluster.replicas[parent.replica as usize];
        let callee_hidden = !callee.instrumented || self.dropped.spans[call.service as usize];
        if !self.dropped.spans[parent.service as usize]
            && self.model.span_shape == SpanShape::ClientServer
        {
            spans.push(Span {
                trace_id: call.trace_id,
                span_id: call.client_span_id,
                parent_span_id: Some(parent.span_id),
                service: caller.name.clone(),
                instance: caller_replica.name.clone(),
                kind: SpanKind::Client,
                name: op.name.clone(),
                start_ns: call.send_ns,
                end_ns: self.now_ns,
                error: call.error,
                peer_service: callee_hidden.then(|| callee.name.clone()),
                version: Some(caller.version.clone()),
            });
        }
        caller_replica.net_bytes += op.response_bytes + MESSAGE_OVERHEAD_BYTES;
        if call.error && self.uniform() < self.model.error_propagation {
            self.calls[p as usize].error = true;
        }
        self.calls.free(c);
        let parent = &mut self.calls[p as usize];
        parent.pending -= 1;
        if parent.pending == 0 {
            // A failed call aborts the rest of the caller's work: straight to its reply.
            parent.stage = if parent.error {
                REPLY_STAGE
            } else {
                parent.stage + 1
            };
            self.run_stages(p);
        }
    }
}

//! Borrowed views of what augur reads from OTLP — resource attributes and the fields of one
//! span — filled in by every decoder (protobuf wire walk, JSON, prost structs), and the
//! validation shared by all of them. In: a [`ResourceAttrs`] and a [`RawSpan`]; out: a
//! validated [`Span`] or a [`RecordError`] saying why not.

use augur_operators::records::{Span, SpanKind};

use super::error::{RECORD_CONTEXTS, RecordError};
use super::json_write::{push_str_truncated, push_u64_str};

pub(crate) const SERVICE_NAME: &str = "service.name";
pub(crate) const SERVICE_INSTANCE_ID: &str = "service.instance.id";
pub(crate) const K8S_POD_NAME: &str = "k8s.pod.name";
pub(crate) const HOST_NAME: &str = "host.name";
pub(crate) const PEER_SERVICE: &str = "peer.service";
/// The address a client span called (semantic conventions 1.21 on).
pub(crate) const SERVER_ADDRESS: &str = "server.address";
/// The same, before 1.21.
pub(crate) const NET_PEER_NAME: &str = "net.peer.name";
pub(crate) const SERVICE_VERSION: &str = "service.version";
pub(crate) const K8S_DEPLOYMENT_NAME: &str = "k8s.deployment.name";
pub(crate) const K8S_STATEFULSET_NAME: &str = "k8s.statefulset.name";
pub(crate) const K8S_DAEMONSET_NAME: &str = "k8s.daemonset.name";
/// The pod label of Kubernetes metrics scraped by Prometheus (cAdvisor, kube-state-metrics),
/// which the Collector's Prometheus receiver keeps as a data point attribute.
pub(crate) const PROMETHEUS_POD: &str = "pod";

/// The longest service name, instance and version augur accepts, in bytes (longer than any
/// Kubernetes or DNS name). Every record of a resource owns a copy of these, so without a
/// bound one long attribute repeated in every record of a message would cost its length
/// times the number of records (a 1 MB message could demand gigabytes).
pub const MAX_RESOURCE_VALUE_BYTES: usize = 256;

/// The longest service or instance name a rejected record's context repeats.
const CONTEXT_NAME_BYTES: usize = 64;

/// The resource attributes augur uses; empty strings count as missing.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct ResourceAttrs<'a> {
    pub service: Option<&'a str>,
    pub instance_id: Option<&'a str>,
    pub pod: Option<&'a str>,
    pub host: Option<&'a str>,
    pub version: Option<&'a str>,
    /// The Kubernetes workload (deployment, stateful set or daemon set) the pod belongs to.
    pub workload: Option<&'a str>,
}

impl<'a> ResourceAttrs<'a> {
    /// The keys augur reads, each with a slot here: decoders that skip attributes before
    /// decoding them (the protobuf wire walk, the JSON model) consult this list, so a new
    /// key is added in one place.
    pub const KEYS: [&'static str; 9] = [
        SERVICE_NAME,
        SERVICE_INSTANCE_ID,
        K8S_POD_NAME,
        HOST_NAME,
        SERVICE_VERSION,
        K8S_DEPLOYMENT_NAME,
        K8S_STATEFULSET_NAME,
        K8S_DAEMONSET_NAME,
        PROMETHEUS_POD,
    ];

    fn slot(&mut self, key: &str) -> Option<&mut Option<&'a str>> {
        Some(match key {
            SERVICE_NAME => &mut self.service,
            SERVICE_INSTANCE_ID => &mut self.instance_id,
            K8S_POD_NAME | PROMETHEUS_POD => &mut self.pod,
            HOST_NAME => &mut self.host,
            SERVICE_VERSION => &mut self.version,
            K8S_DEPLOYMENT_NAME | K8S_STATEFULSET_NAME | K8S_DAEMONSET_NAME => &mut self.workload,
            _ => return None,
        })
    }

    /// Records one string attribute if its key is one augur uses.
    #[inline]
    pub fn set(&mut self, key: &str, value: &'a str) {
        if value.is_empty() {
            return;
        }
        if let Some(slot) = self.slot(key) {
            *slot = Some(value);
        }
    }

    /// Whether these attributes name what they describe: a service, a workload or a pod.
    pub fn names_workload(&self) -> bool {
        self.service.is_some() || self.workload.is_some() || self.pod.is_some()
    }

    /// Each attribute from `self`, else from `other`.
    pub fn or(self, other: ResourceAttrs<'a>) -> ResourceAttrs<'a> {
        ResourceAttrs {
            service: self.service.or(other.service),
            instance_id: self.instance_id.or(other.instance_id),
            pod: self.pod.or(other.pod),
            host: self.host.or(other.host),
            version: self.version.or(other.version),
            workload: self.workload.or(other.workload),
        }
    }

    /// Why the resource's identity can't be used: a service name, instance or version
    /// longer than [`MAX_RESOURCE_VALUE_BYTES`].
    pub fn too_long(&self) -> Option<String> {
        let (service, instance) = self.identity()?;
        [
            (SERVICE_NAME, service),
            ("instance", instance),
            (SERVICE_VERSION, self.version.unwrap_or_default()),
        ]
        .into_iter()
        .find(|(_, v)| v.len() > MAX_RESOURCE_VALUE_BYTES)
        .map(|(key, v)| {
            format!(
                "{key} is {} bytes long (at most {MAX_RESOURCE_VALUE_BYTES})",
                v.len()
            )
        })
    }

    /// `(service, instance)`: instance is `k8s.pod.name`, else `service.instance.id`, else
    /// `host.name`, else the service name. `None` without a service name or a workload.
    ///
    /// The pod comes first because it is what every signal of a pod shares: pod metrics
    /// (kubeletstats, cAdvisor) and pod logs name the pod and no `service.instance.id`, while
    /// SDKs may set `service.instance.id` to a UUID of their own (OpenTelemetry .NET and
    /// Java do), which no metric names; spans that carry both (the Collector's
    /// `k8sattributes` processor adds the pod) then share their instance with the pod's
    /// metrics and logs.
    ///
    /// Without a service name (or with the SDKs' default `unknown_service…`), the service
    /// is the Kubernetes workload, as the OpenTelemetry conventions derive one: the
    /// resource's `k8s.deployment.name`, `k8s.statefulset.name` or `k8s.daemonset.name`,
    /// else the deployment a pod name `<deployment>-<replica set hash>-<pod hash>` names
    /// (metrics from the Collector's kubeletstats receiver carry no service name).
    pub fn identity(&self) -> Option<(&'a str, &'a str)> {
        let named = self.service.filter(|s| !s.starts_with("unknown_service"));
        let service = named
            .or(self.workload)
            .or(self.pod.and_then(deployment_of_pod))
            .or(self.service)?;
        let instance = self
            .pod
            .or(self.instance_id)
            .or(self.host)
            .unwrap_or(service);
        Some((service, instance))
    }
}

/// The deployment a pod of it is named after: `cart-7d4b9c8f6-x2x9k` → `cart` (the replica
/// set's hash and the pod's suffix are in Kubernetes' safe alphabet, which has no vowels).
fn deployment_of_pod(pod: &str) -> Option<&str> {
    let safe = |s: &str, lengths: std::ops::RangeInclusive<usize>| {
        lengths.contains(&s.len())
            && s.bytes()
                .all(|b| b"bcdfghjklmnpqrstvwxz2456789".contains(&b))
    };
    let (rest, pod_hash) = pod.rsplit_once('-')?;
    let (deployment, set_hash) = rest.rsplit_once('-')?;
    (safe(pod_hash, 5..=5) && safe(set_hash, 6..=10) && !deployment.is_empty())
        .then_some(deployment)
}

/// A resource resolved once per `ResourceSpans`, so spans only clone its strings.
#[derive(Debug)]
pub(crate) struct OwnedIdentity {
    /// `None` when `service.name` is missing: every span of the resource is rejected.
    pub service_instance: Option<(String, String)>,
    /// `service.version`, if set.
    pub version: Option<String>,
    /// Why every record of the resource is rejected although it has a service name.
    pub invalid: Option<String>,
}

impl OwnedIdentity {
    pub fn new(attrs: &ResourceAttrs<'_>) -> Self {
        // An identity too long to copy into every record keeps only a prefix, for the
        // rejections' context.
        let cut = |s: &str| cut_at_char(s, CONTEXT_NAME_BYTES).to_owned();
        match attrs.too_long() {
            None => OwnedIdentity {
                service_instance: attrs.identity().map(|(s, i)| (s.to_owned(), i.to_owned())),
                version: attrs.version.map(str::to_owned),
                invalid: None,
            },
            Some(reason) => OwnedIdentity {
                service_instance: attrs.identity().map(|(s, i)| (cut(s), cut(i))),
                version: None,
                invalid: Some(reason),
            },
        }
    }

    /// `(service, instance)` for a record, or why the record is rejected.
    pub fn get(&self) -> Result<(&String, &String), String> {
        if let Some(reason) = &self.invalid {
            return Err(reason.clone());
        }
        match &self.service_instance {
            Some((service, instance)) => Ok((service, instance)),
            None => Err("missing service.name".to_owned()),
        }
    }
}

/// `text` cut to at most `max` bytes, at a character boundary.
pub(crate) fn cut_at_char(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// An id as found on the wire: raw bytes (protobuf) or hex (JSON).
#[derive(Debug, Clone, Copy)]
pub(crate) enum IdRef<'a> {
    Bytes(&'a [u8]),
    Hex(&'a str),
}

impl Default for IdRef<'_> {
    fn default() -> Self {
        IdRef::Bytes(&[])
    }
}

impl IdRef<'_> {
    /// The id's `N` bytes; `Ok(None)` when empty.
    pub(crate) fn decode<const N: usize>(&self, what: &str) -> Result<Option<[u8; N]>, String> {
        let mut out = [0u8; N];
        match *self {
            IdRef::Bytes(b) => {
                if b.is_empty() {
                    return Ok(None);
                }
                if b.len() != N {
                    return Err(format!("{what} is {} bytes, expected {N}", b.len()));
                }
                out.copy_from_slice(b);
            }
            IdRef::Hex(s) => {
                if s.is_empty() {
                    return Ok(None);
                }
                if s.len() != 2 * N {
                    return Err(format!(
                        "{what} is {} hex digits, expected {}",
                        s.len(),
                        2 * N
                    ));
                }
                if hex::decode_to_slice(s, &mut out).is_err() {
                    return Err(format!("{what} {s:?} is not hex"));
                }
            }
        }
        Ok(Some(out))
    }

    /// Appends the id as a JSON hex string (cut short if absurdly long).
    fn push_json(&self, out: &mut String) {
        match *self {
            IdRef::Bytes(b) => {
                let b = &b[..b.len().min(32)];
                out.push('"');
                out.push_str(&hex::encode(b));
                out.push('"');
            }
            IdRef::Hex(s) => push_str_truncated(out, s, 64),
        }
    }
}

/// The fields of one span augur reads, borrowed from the message.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct RawSpan<'a> {
    pub trace_id: IdRef<'a>,
    pub span_id: IdRef<'a>,
    pub parent_span_id: IdRef<'a>,
    pub name: &'a str,
    pub kind: i32,
    pub start_ns: u64,
    pub end_ns: u64,
    pub status_code: i32,
    pub peer_service: Option<&'a str>,
    /// `server.address`, else `net.peer.name`: names the callee of a client span without
    /// `peer.service` (an uninstrumented database or cache).
    pub peer_address: Option<&'a str>,
}

/// OTLP span kind number to [`SpanKind`]; unknown numbers are `Unspecified`.
pub(crate) fn span_kind(k: i32) -> SpanKind {
    match k {
        1 => SpanKind::Internal,
        2 => SpanKind::Server,
        3 => SpanKind::Client,
        4 => SpanKind::Producer,
        5 => SpanKind::Consumer,
        _ => SpanKind::Unspecified,
    }
}

/// OTLP span kind CLIENT.
const SPAN_KIND_CLIENT: i32 = 3;

/// The service a client span's server address names: the first label of a host name
/// (`carts-db.sock-shop.svc.cluster.local` → `carts-db`, as Kubernetes names services);
/// none for an IP address or `localhost`, which name no service.
pub(crate) fn service_of_address(address: &str) -> Option<&str> {
    let host = address.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() || host == "localhost" || host.parse::<std::net::IpAddr>().is_ok() {
        return None;
    }
    host.split('.').next().filter(|label| !label.is_empty())
}

/// OTLP status code ERROR.
pub(crate) const STATUS_ERROR: i32 = 2;

impl RawSpan<'_> {
    /// Validates the span against its resource; a rejection has the span's context when
    /// `rejected` (the message's rejections so far) is below [`RECORD_CONTEXTS`].
    pub fn validate(&self, res: &OwnedIdentity, rejected: usize) -> Result<Span, RecordError> {
        self.check(res).map_err(|reason| RecordError {
            reason,
            record: if rejected < RECORD_CONTEXTS {
                self.context(res)
            } else {
                String::new()
            },
        })
    }

    fn check(&self, res: &OwnedIdentity) -> Result<Span, String> {
        let (service, instance) = res.get()?;
        let trace_id = match self.trace_id.decode::<16>("trace id")? {
            Some(b) if b != [0; 16] => u128::from_be_bytes(b),
            Some(_) => return Err("trace id is all zeros".to_owned()),
            None => return Err("missing trace id".to_owned()),
        };
        let span_id = match self.span_id.decode::<8>("span id")? {
            Some(b) if b != [0; 8] => u64::from_be_bytes(b),
            Some(_) => return Err("span id is all zeros".to_owned()),
            None => return Err("missing span id".to_owned()),
        };
        let parent_span_id = self
            .parent_span_id
            .decode::<8>("parent span id")?
            .map(u64::from_be_bytes)
            .filter(|&p| p != 0);
        if self.start_ns == 0 {
            return Err("missing start time (startTimeUnixNano is 0)".to_owned());
        }
        if self.end_ns < self.start_ns {
            return Err(format!(
                "end time {} is before start time {}",
                self.end_ns, self.start_ns
            ));
        }
        Ok(Span {
            trace_id,
            span_id,
            parent_span_id,
            service: service.clone(),
            instance: instance.clone(),
            kind: span_kind(self.kind),
            name: self.name.to_owned(),
            start_ns: self.start_ns,
            end_ns: self.end_ns,
            error: self.status_code == STATUS_ERROR,
            peer_service: self
                .peer_service
                .filter(|p| !p.is_empty())
                .or_else(|| {
                    self.peer_address
                        .filter(|_| self.kind == SPAN_KIND_CLIENT)
                        .and_then(service_of_address)
                })
                .map(str::to_owned),
            version: res.version.clone(),
        })
    }

    /// The span's identifying fields as one JSON object.
    fn context(&self, res: &OwnedIdentity) -> String {
        let mut out = String::with_capacity(160);
        out.push_str("{\"traceId\":");
        self.trace_id.push_json(&mut out);
        out.push_str(",\"spanId\":");
        self.span_id.push_json(&mut out);
        out.push_str(",\"parentSpanId\":");
        self.parent_span_id.push_json(&mut out);
        if let Some((service, instance)) = &res.service_instance {
            out.push_str(",\"service\":");
            push_str_truncated(&mut out, service, CONTEXT_NAME_BYTES);
            out.push_str(",\"instance\":");
            push_str_truncated(&mut out, instance, CONTEXT_NAME_BYTES);
        }
        out.push_str(",\"name\":");
        push_str_truncated(&mut out, self.name, 256);
        out.push_str(",\"startTimeUnixNano\":");
        push_u64_str(&mut out, self.start_ns);
        out.push_str(",\"endTimeUnixNano\":");
        push_u64_str(&mut out, self.end_ns);
        out.push('}');
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs<'a>(pairs: &[(&'a str, &'a str)]) -> ResourceAttrs<'a> {
        let mut a = ResourceAttrs::default();
        for (k, v) in pairs {
            a.set(k, v);
        }
        a
    }

    #[test]
    fn a_kubernetes_workload_names_the_service_when_the_resource_does_not() {
        let pod = "cart-7d4b9c8f6-x2x9k";
        let cases = [
            (
                vec![(K8S_POD_NAME, pod), (K8S_DEPLOYMENT_NAME, "cartservice")],
                "cartservice",
            ),
            (vec![(K8S_POD_NAME, pod)], "cart"),
            (
                vec![(K8S_POD_NAME, "redis-0"), (K8S_STATEFULSET_NAME, "redis")],
                "redis",
            ),
            (
                vec![
                    (SERVICE_NAME, "unknown_service:java"),
                    (K8S_DEPLOYMENT_NAME, "cart"),
                ],
                "cart",
            ),
            (
                vec![(SERVICE_NAME, "frontend"), (K8S_DEPLOYMENT_NAME, "web")],
                "frontend",
            ),
        ];
        for (pairs, service) in cases {
            let a = attrs(&pairs);
            assert_eq!(a.identity().map(|i| i.0), Some(service), "{pairs:?}");
        }
        assert_eq!(
            attrs(&[(K8S_POD_NAME, pod)]).identity(),
            Some(("cart", pod))
        );
        // An SDK's own instance id beside the pod: the pod, which metrics and logs name too.
        let uuid = "4b0c5f2e-8d51-4c43-9e0b-2b8f1d6f3a77";
        assert_eq!(
            attrs(&[
                (SERVICE_NAME, "cartservice"),
                (SERVICE_INSTANCE_ID, uuid),
                (K8S_POD_NAME, pod)
            ])
            .identity(),
            Some(("cartservice", pod))
        );
        assert_eq!(
            attrs(&[(SERVICE_NAME, "cartservice"), (SERVICE_INSTANCE_ID, uuid)]).identity(),
            Some(("cartservice", uuid))
        );
        // Not a deployment's pod name (vowels in the hashes, one segment): no service.
        for pod in ["redis-0", "my-app-instance", "web"] {
            assert_eq!(attrs(&[(K8S_POD_NAME, pod)]).identity(), None, "{pod}");
        }
    }

    use super::ResourceAttrs;

    /// Every key the decoders let through is one `set` records.
    #[test]
    fn every_listed_resource_key_has_a_slot() {
        for key in ResourceAttrs::KEYS {
            let mut attrs = ResourceAttrs::default();
            assert!(attrs.slot(key).is_some(), "{key} has no slot");
        }
        assert!(ResourceAttrs::default().slot("process.pid").is_none());
    }
}

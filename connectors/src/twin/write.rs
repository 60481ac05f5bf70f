//! The TOML text of a fitted twin: the topology format of `configs/topologies/`, with the
//! fit's notes as comments above each section. Reading the text back with
//! [`crate::simulator::Topology::from_toml_str`] gives the same spec.
//!
//! In: a [`Fitted`]. Out: a string. Keeps no state.

use std::fmt::Write;

use super::fit::Fitted;

/// A TOML basic string (JSON string escapes are a subset of TOML's).
fn q(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

/// A float as TOML: always with a decimal point or exponent.
fn f(x: f64) -> String {
    format!("{x:?}")
}

fn comment(out: &mut String, lines: &[String]) {
    for line in lines {
        let _ = writeln!(out, "# {line}");
    }
}

/// The twin as a topology TOML document.
pub fn to_toml(fitted: &Fitted) -> String {
    let spec = &fitted.spec;
    let mut out = String::new();
    comment(&mut out, &fitted.header);
    let _ = writeln!(out, "name = {}", q(&spec.name));
    let _ = writeln!(out, "network_base_ms = {}", f(spec.network_base_ms));
    let _ = writeln!(out, "network_jitter_ms = {}", f(spec.network_jitter_ms));
    let _ = writeln!(out, "error_propagation = {}", f(spec.error_propagation));
    let _ = writeln!(out, "queue_timeout_ms = {}", f(spec.queue_timeout_ms));
    let _ = writeln!(out, "\n[load]\nrate_per_s = {}", f(spec.load.rate_per_s));
    if spec.load.diurnal_amplitude != 0.0 {
        let _ = writeln!(
            out,
            "diurnal_amplitude = {}",
            f(spec.load.diurnal_amplitude)
        );
    }
    let _ = writeln!(out, "diurnal_period_s = {}", f(spec.load.diurnal_period_s));
    for slo in &spec.slos {
        let _ = writeln!(
            out,
            "\n[[slo]]\nentry = {}\nquantile = {}\nthreshold_ms = {}",
            q(&slo.entry),
            f(slo.quantile),
            f(slo.threshold_ms)
        );
        if let Some(op) = &slo.operation {
            let _ = writeln!(out, "operation = {}", q(op));
        }
    }
    if spec.telemetry != crate::simulator::TelemetrySpec::default() {
        let _ = writeln!(
            out,
            "\n# The telemetry as observed, so models trained in the twin see its shape.\n[telemetry]\nspans = {}",
            q(match spec.telemetry.spans {
                crate::simulator::SpanShape::ClientServer => "client_server",
                crate::simulator::SpanShape::OnePerHop => "one_per_hop",
            })
        );
        if let Some(ms) = spec.telemetry.metrics_interval_ms {
            let _ = writeln!(out, "metrics_interval_ms = {ms}");
        }
        if let Some(resources) = &spec.telemetry.metrics {
            let names: Vec<String> = resources.iter().map(|r| q(r.as_str())).collect();
            let _ = writeln!(out, "metrics = [{}]", names.join(", "));
        }
    }
    for r in &spec.requests {
        let _ = writeln!(
            out,
            "\n[[request]]\nname = {}\nweight = {}\nentry = {}\noperation = {}",
            q(&r.name),
            f(r.weight),
            q(&r.entry),
            q(&r.operation)
        );
    }
    for s in &spec.services {
        out.push('\n');
        if let Some(notes) = fitted.service_notes.get(&s.name) {
            comment(&mut out, notes);
        }
        let _ = writeln!(
            out,
            "[[service]]\nname = {}\nreplicas = {}\nthreads = {}\ncores = {}\nmemory_mb = {}\nmemory_per_request_kb = {}",
            q(&s.name),
            s.replicas,
            s.threads,
            f(s.cores),
            f(s.memory_mb),
            f(s.memory_per_request_kb)
        );
        if !s.instrumented {
            let _ = writeln!(out, "instrumented = false");
        }
        for o in &s.operations {
            out.push('\n');
            if let Some(notes) = fitted.op_notes.get(&(s.name.clone(), o.name.clone())) {
                comment(&mut out, notes);
            }
            let _ = writeln!(
                out,
                "[[service.operation]]\nname = {}\nservice_time_ms = {}\ncv = {}\npre_fraction = {}\nrequest_bytes = {}\nresponse_bytes = {}",
                q(&o.name),
                f(o.service_time_ms),
                f(o.cv),
                f(o.pre_fraction),
                o.request_bytes,
                o.response_bytes
            );
            if let Some(span_name) = &o.span_name {
                let _ = writeln!(out, "span_name = {}", q(span_name));
            }
            if o.disk_write_bytes != 0 {
                let _ = writeln!(out, "disk_write_bytes = {}", o.disk_write_bytes);
            }
            if o.error_rate != 0.0 {
                let _ = writeln!(out, "error_rate = {}", f(o.error_rate));
            }
            if !o.stages.is_empty() {
                let stages: Vec<String> = o
                    .stages
                    .iter()
                    .map(|stage| {
                        let calls: Vec<String> = stage.iter().map(|c| q(c)).collect();
                        format!("[{}]", calls.join(", "))
                    })
                    .collect();
                let _ = writeln!(out, "stages = [{}]", stages.join(", "));
            }
        }
    }
    out
}

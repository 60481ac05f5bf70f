//! The plot of `augur twin --check --plot FILE`: per service, the real and the twin's
//! p50, p90 and p99 latency on a log scale, one row each, so a twin's misses show at a
//! glance (hand-written SVG, as the other plots).
//!
//! In: the check's [`ServiceRow`]s and a title. Out: SVG text. State: none.

use std::fmt::Write;

use augur_connectors::twin::ServiceRow;

use super::svg::{escape, head};

const WIDTH: f64 = 1000.0;
const LEFT: f64 = 260.0;
const RIGHT: f64 = 30.0;
const TOP: f64 = 60.0;
const BOTTOM: f64 = 40.0;
const ROW: f64 = 28.0;
const REAL: &str = "#1f77b4";
const TWIN: &str = "#ff7f0e";

/// An SVG of real vs twin latency percentiles per service (services with real spans).
pub fn twin_check_svg(rows: &[ServiceRow], title: &str) -> String {
    let rows: Vec<&ServiceRow> = rows.iter().filter(|r| r.spans > 0).collect();
    let height = TOP + BOTTOM + ROW * rows.len().max(1) as f64;
    let mut out = head(WIDTH, height, 10.0, title);
    let _ = writeln!(
        out,
        r#"<text x="{LEFT}" y="40" fill="{REAL}">● real</text><text x="{}" y="40" fill="{TWIN}">○ twin</text><text x="{}" y="40">p50, p90, p99 of each service's latency, ms (log scale)</text>"#,
        LEFT + 60.0,
        LEFT + 120.0
    );
    let values: Vec<f64> = rows
        .iter()
        .flat_map(|r| [r.real_p50_ms, r.real_p99_ms, r.twin_p50_ms, r.twin_p99_ms])
        .filter(|v| v.is_finite() && *v > 0.0)
        .collect();
    let (Some(lo), Some(hi)) = (
        values.iter().copied().reduce(f64::min),
        values.iter().copied().reduce(f64::max),
    ) else {
        out.push_str("<text x=\"10\" y=\"80\">no latency to plot</text>\n</svg>\n");
        return out;
    };
    // Whole decades around the values.
    let (d0, d1) = (
        lo.log10().floor(),
        hi.log10().ceil().max(lo.log10().floor() + 1.0),
    );
    let plot_w = WIDTH - LEFT - RIGHT;
    let x = |ms: f64| LEFT + plot_w * ((ms.max(1e-9).log10() - d0) / (d1 - d0)).clamp(0.0, 1.0);
    let bottom = height - BOTTOM;
    let mut decade = d0;
    while decade <= d1 {
        let xd = x(10f64.powf(decade));
        let _ = writeln!(
            out,
            r##"<line x1="{xd:.1}" y1="{TOP}" x2="{xd:.1}" y2="{bottom}" stroke="#ddd"/><text x="{xd:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
            bottom + 16.0,
            10f64.powf(decade)
        );
        decade += 1.0;
    }
    for (i, r) in rows.iter().enumerate() {
        let y = TOP + ROW * (i as f64 + 0.5);
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{} ({} spans)</text>"#,
            LEFT - 8.0,
            y + 4.0,
            escape(&r.service),
            r.spans
        );
        for (dy, color, [p50, p90, p99], fill) in [
            (
                -5.0,
                REAL,
                [r.real_p50_ms, r.real_p90_ms, r.real_p99_ms],
                REAL,
            ),
            (
                5.0,
                TWIN,
                [r.twin_p50_ms, r.twin_p90_ms, r.twin_p99_ms],
                "white",
            ),
        ] {
            if !(p50 > 0.0 && p99 > 0.0) {
                continue;
            }
            let yy = y + dy;
            let _ = writeln!(
                out,
                r#"<line x1="{:.1}" y1="{yy:.1}" x2="{:.1}" y2="{yy:.1}" stroke="{color}" stroke-width="2"/>"#,
                x(p50),
                x(p99)
            );
            for v in [p50, p90, p99] {
                let _ = writeln!(
                    out,
                    r#"<circle cx="{:.1}" cy="{yy:.1}" r="4" fill="{fill}" stroke="{color}" stroke-width="1.5"/>"#,
                    x(v)
                );
            }
        }
    }
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(service: &str, spans: u64, real: [f64; 3], twin: [f64; 3]) -> ServiceRow {
        ServiceRow {
            service: service.into(),
            spans,
            twin_spans: 10,
            real_rate_per_s: 1.0,
            twin_rate_per_s: 1.0,
            rate_err: Some(0.0),
            real_p50_ms: real[0],
            twin_p50_ms: twin[0],
            p50_err: None,
            real_p90_ms: real[1],
            twin_p90_ms: twin[1],
            p90_err: None,
            real_p99_ms: real[2],
            twin_p99_ms: twin[2],
            p99_err: None,
            real_error_rate: 0.0,
            twin_error_rate: 0.0,
            error_rate_diff_pp: 0.0,
            real_cpu: None,
            twin_cpu: None,
        }
    }

    #[test]
    fn a_row_per_service_seen_with_both_sides_percentiles() {
        let rows = [
            row("a<b", 100, [1.0, 2.0, 5.0], [1.5, 3.0, 9.0]),
            row("c", 40, [20.0, 40.0, 300.0], [25.0, 50.0, 200.0]),
            // No real span: not plotted.
            row("d", 0, [0.0; 3], [2.0, 3.0, 4.0]),
        ];
        let svg = twin_check_svg(&rows, "check & more");
        assert_eq!(svg.matches("<circle").count(), 12);
        assert_eq!(svg.matches("stroke-width=\"2\"").count(), 4);
        assert!(svg.contains("a&lt;b (100 spans)") && svg.contains("check &amp; more"));
        assert!(!svg.contains(">d ("));
        // Decades 1 to 1000 ms.
        for tick in [">1<", ">10<", ">100<", ">1000<"] {
            assert!(svg.contains(tick), "{tick}");
        }
        assert!(svg.ends_with("</svg>\n"));
        assert!(twin_check_svg(&[], "x").contains("no latency to plot"));
    }
}

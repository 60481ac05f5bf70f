//! The forecast plot of `augur eval --report DIR`: hand-written SVG of the observed
//! end-to-end p90 over time with the graph's and the baseline's forecasts, change times as
//! dashed vertical lines.
//!
//! In: a [`ForecastReport`]. Out: SVG text. State: none.

use std::fmt::Write;

use super::forecast::ForecastReport;
use super::svg::{escape, head};

const WIDTH: f64 = 1200.0;
const HEIGHT: f64 = 420.0;
const LEFT: f64 = 60.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 30.0;
const BOTTOM: f64 = 40.0;

fn polyline(out: &mut String, points: &[(f64, f64)], color: &str, width: f64) {
    let mut d = String::new();
    for (x, y) in points {
        let _ = write!(d, "{x:.1},{y:.1} ");
    }
    let _ = writeln!(
        out,
        r#"<polyline fill="none" stroke="{color}" stroke-width="{width}" points="{}"/>"#,
        d.trim_end()
    );
}

/// An SVG of forecast vs actual p90 over time.
pub fn forecast_svg(report: &ForecastReport, title: &str) -> String {
    let mut out = head(WIDTH, HEIGHT, LEFT, title);
    let series = &report.series;
    let (Some(first), Some(last)) = (series.first(), series.last()) else {
        out.push_str("<text x=\"60\" y=\"60\">no scored windows</text>\n</svg>\n");
        return out;
    };
    let t0 = first.at_ms as f64;
    let t1 = (last.at_ms as f64).max(t0 + 1.0);
    // The y range covers the actual values and the forecasts up to 3× the actual maximum,
    // so a wild forecast doesn't flatten everything else.
    let amax = series.iter().map(|p| p.actual_ms).fold(0.0, f64::max);
    let ymax = series
        .iter()
        .flat_map(|p| [p.actual_ms, p.graph_ms, p.baseline_ms])
        .filter(|v| v.is_finite())
        .fold(0.0, f64::max)
        .min(3.0 * amax.max(1e-3))
        * 1.05;
    let ymax = ymax.max(1e-3);
    let x = |t: f64| LEFT + (t - t0) / (t1 - t0) * (WIDTH - LEFT - RIGHT);
    let y = |v: f64| TOP + (1.0 - (v / ymax).clamp(0.0, 1.0)) * (HEIGHT - TOP - BOTTOM);
    // Axes and ticks.
    let _ = writeln!(
        out,
        r##"<line x1="{LEFT}" y1="{}" x2="{}" y2="{}" stroke="#333"/><line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{}" stroke="#333"/>"##,
        HEIGHT - BOTTOM,
        WIDTH - RIGHT,
        HEIGHT - BOTTOM,
        HEIGHT - BOTTOM
    );
    for i in 0..=5 {
        let v = ymax * i as f64 / 5.0;
        let _ = writeln!(
            out,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="end">{v:.1}</text><line x1="{LEFT}" x2="{}" y1="{:.1}" y2="{:.1}" stroke="#eee"/>"##,
            LEFT - 4.0,
            y(v) + 4.0,
            WIDTH - RIGHT,
            y(v),
            y(v)
        );
    }
    for i in 0..=10 {
        let t = t0 + (t1 - t0) * i as f64 / 10.0;
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{:.0} s</text>"#,
            x(t),
            HEIGHT - BOTTOM + 16.0,
            (t - t0) / 1000.0
        );
    }
    let _ = writeln!(
        out,
        r#"<text x="14" y="{:.1}" transform="rotate(-90 14 {:.1})" text-anchor="middle">end-to-end p90, ms</text>"#,
        HEIGHT / 2.0,
        HEIGHT / 2.0
    );
    for &c in &report.change_times {
        let c = c as f64;
        if c < t0 || c > t1 {
            continue;
        }
        let _ = writeln!(
            out,
            r##"<line x1="{:.1}" x2="{:.1}" y1="{TOP}" y2="{}" stroke="#999" stroke-dasharray="4 3"/>"##,
            x(c),
            x(c),
            HEIGHT - BOTTOM
        );
    }
    let pts = |f: &dyn Fn(&super::forecast::Point) -> f64| -> Vec<(f64, f64)> {
        series
            .iter()
            .map(|p| (x(p.at_ms as f64), y(f(p))))
            .collect()
    };
    polyline(&mut out, &pts(&|p| p.baseline_ms), "#d62728", 1.0);
    polyline(&mut out, &pts(&|p| p.actual_ms), "#222222", 1.2);
    polyline(&mut out, &pts(&|p| p.graph_ms), "#1f77b4", 1.2);
    let legend = [
        ("#222222", "observed".to_string()),
        (
            "#1f77b4",
            format!("inference graph (MAE {:.2} ms)", report.mae_ms),
        ),
        (
            "#d62728",
            format!("monolithic (MAE {:.2} ms)", report.baseline_mae_ms),
        ),
        ("#999", "deployment change".to_string()),
    ];
    for (i, (color, label)) in legend.iter().enumerate() {
        let lx = WIDTH - RIGHT - 300.0;
        let ly = TOP + 14.0 + 16.0 * i as f64;
        let _ = writeln!(
            out,
            r#"<line x1="{lx}" x2="{}" y1="{ly}" y2="{ly}" stroke="{color}" stroke-width="2"/><text x="{}" y="{}">{}</text>"#,
            lx + 20.0,
            lx + 26.0,
            ly + 4.0,
            escape(label)
        );
    }
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::super::forecast::Point;
    use super::*;

    #[test]
    fn svg_has_the_three_lines_and_the_changes() {
        let report = ForecastReport {
            series: (0..10)
                .map(|i| Point {
                    at_ms: 1000 * i,
                    actual_ms: i as f64,
                    graph_ms: i as f64 + 0.5,
                    baseline_ms: 2.0,
                })
                .collect(),
            change_times: vec![5000, 99_000],
            ..ForecastReport::default()
        };
        let svg = forecast_svg(&report, "a < b");
        assert_eq!(svg.matches("<polyline").count(), 3);
        // One change inside the plotted time range, one outside.
        assert_eq!(svg.matches("stroke-dasharray").count(), 1);
        assert!(svg.contains("a &lt; b") && svg.ends_with("</svg>\n"));
    }
}

//! A hand-written SVG line plot of end-to-end p99 over time for several runs of the same
//! fault plan (the closed-loop report's figure).
//!
//! In: named series of [`P99Point`]s, the fault intervals, the run's start. Out: the SVG
//! document as a string (time in s on x, p99 in ms on y capped at 4× the SLO, the SLO as a
//! dashed line, faults shaded). No state.

use std::fmt::Write;

use super::recovery::P99Point;

const WIDTH: f64 = 1000.0;
const HEIGHT: f64 = 380.0;
const LEFT: f64 = 60.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 30.0;
const BOTTOM: f64 = 45.0;
const COLORS: [&str; 4] = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"];

/// Text made safe for SVG (both plots use it).
pub(crate) fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The opening of an SVG document on a white `width` × `height` canvas, with `title` at
/// `(title_x, 18)` (all the plots start so).
pub(crate) fn head(width: f64, height: f64, title_x: f64, title: &str) -> String {
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"{width}\" height=\"{height}\" fill=\"white\"/><text x=\"{title_x}\" y=\"18\" font-size=\"14\">{}</text>\n",
        escape(title)
    )
}

/// The plot; `faults` are `(start_ms, end_ms, label)`.
pub fn p99_plot(
    title: &str,
    start_ms: u64,
    series: &[(String, Vec<P99Point>)],
    faults: &[(u64, u64, String)],
) -> String {
    let slo = series
        .iter()
        .flat_map(|(_, ps)| ps.iter().map(|p| p.slo_ms))
        .find(|s| *s > 0.0)
        .unwrap_or(1.0);
    let y_max = series
        .iter()
        .flat_map(|(_, ps)| ps.iter().map(|p| p.p99_ms))
        .fold(slo * 1.2, f64::max)
        .min(slo * 4.0);
    let t_max = series
        .iter()
        .flat_map(|(_, ps)| ps.iter().map(|p| p.window_end.saturating_sub(start_ms)))
        .max()
        .unwrap_or(1)
        .max(1) as f64
        / 1000.0;
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let x = |t_s: f64| LEFT + plot_w * (t_s / t_max).clamp(0.0, 1.0);
    let y = |ms: f64| TOP + plot_h * (1.0 - (ms / y_max).clamp(0.0, 1.0));
    let mut svg = head(WIDTH, HEIGHT, LEFT, title);
    for (start, end, label) in faults {
        let (a, b) = (
            x(start.saturating_sub(start_ms) as f64 / 1000.0),
            x(end.saturating_sub(start_ms) as f64 / 1000.0),
        );
        let _ = writeln!(
            svg,
            r##"<rect x="{a:.1}" y="{TOP}" width="{:.1}" height="{plot_h}" fill="#f2c94c" fill-opacity="0.25"><title>{}</title></rect>"##,
            (b - a).max(1.0),
            escape(label)
        );
    }
    // Axes, ticks.
    let _ = writeln!(
        svg,
        r#"<line x1="{LEFT}" y1="{}" x2="{}" y2="{}" stroke="black"/><line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{}" stroke="black"/>"#,
        TOP + plot_h,
        LEFT + plot_w,
        TOP + plot_h,
        TOP + plot_h
    );
    let step_s = [10.0, 30.0, 60.0, 120.0, 300.0, 600.0]
        .into_iter()
        .find(|s| t_max / s <= 12.0)
        .unwrap_or(1200.0);
    let mut t = 0.0;
    while t <= t_max {
        let _ = writeln!(
            svg,
            r#"<line x1="{0:.1}" y1="{1}" x2="{0:.1}" y2="{2}" stroke="black"/><text x="{0:.1}" y="{3}" text-anchor="middle">{4}</text>"#,
            x(t),
            TOP + plot_h,
            TOP + plot_h + 4.0,
            TOP + plot_h + 16.0,
            t
        );
        t += step_s;
    }
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="{}" text-anchor="middle">simulated time (s)</text>"#,
        LEFT + plot_w / 2.0,
        HEIGHT - 8.0
    );
    for k in 0..=4 {
        let ms = y_max * k as f64 / 4.0;
        let _ = writeln!(
            svg,
            r#"<line x1="{}" y1="{1:.1}" x2="{LEFT}" y2="{1:.1}" stroke="black"/><text x="{2}" y="{3:.1}" text-anchor="end">{4:.0}</text>"#,
            LEFT - 4.0,
            y(ms),
            LEFT - 6.0,
            y(ms) + 4.0,
            ms
        );
    }
    let _ = writeln!(
        svg,
        r#"<text transform="translate(14,{}) rotate(-90)" text-anchor="middle">end-to-end p99 (ms)</text>"#,
        TOP + plot_h / 2.0
    );
    let _ = writeln!(
        svg,
        r##"<line x1="{LEFT}" y1="{0:.1}" x2="{1}" y2="{0:.1}" stroke="#555" stroke-dasharray="6 4"/><text x="{2}" y="{3:.1}" text-anchor="end" fill="#555">SLO {4:.0} ms</text>"##,
        y(slo),
        LEFT + plot_w,
        LEFT + plot_w - 4.0,
        y(slo) - 4.0,
        slo
    );
    for (i, (name, points)) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let path: Vec<String> = points
            .iter()
            .map(|p| {
                format!(
                    "{:.1},{:.1}",
                    x(p.window_end.saturating_sub(start_ms) as f64 / 1000.0),
                    y(p.p99_ms)
                )
            })
            .collect();
        let _ = writeln!(
            svg,
            r#"<polyline fill="none" stroke="{color}" stroke-width="1.2" stroke-opacity="0.85" points="{}"/>"#,
            path.join(" ")
        );
        let lx = LEFT + 10.0 + 190.0 * i as f64;
        let _ = writeln!(
            svg,
            r#"<line x1="{lx}" y1="{0}" x2="{1}" y2="{0}" stroke="{color}" stroke-width="3"/><text x="{2}" y="{3}">{4}</text>"#,
            TOP + 10.0,
            lx + 20.0,
            lx + 25.0,
            TOP + 14.0,
            escape(name)
        );
    }
    svg.push_str("</svg>\n");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_polyline_per_series_with_every_point() {
        let pts = |k: f64| -> Vec<P99Point> {
            (1..=5)
                .map(|s| P99Point {
                    window_end: 1000 + s * 1000,
                    p99_ms: 10.0 * k * s as f64,
                    slo_ms: 30.0,
                    violated: 10.0 * k * s as f64 > 30.0,
                })
                .collect()
        };
        let svg = p99_plot(
            "a <b>",
            1000,
            &[("sage".into(), pts(1.0)), ("none".into(), pts(2.0))],
            &[(2000, 4000, "cpu on x".into())],
        );
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<polyline").count(), 2);
        let first = svg
            .split("points=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .unwrap_or("");
        assert_eq!(first.split(' ').count(), 5);
        assert!(svg.contains("a &lt;b&gt;") && svg.contains("SLO 30 ms"));
    }
}

//! Charts drawn as SVG on the server, for the dashboard: bars stacked by kind and lines with
//! gaps, one value per day, each value in a tooltip. Plain SVG (no script, no style sheet of
//! its own), escaped as the pictures of plans are.

use std::fmt::Write as _;

const WIDTH: f64 = 420.0;
const HEIGHT: f64 = 190.0;
const LEFT: f64 = 52.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 14.0;
const BOTTOM: f64 = 40.0;

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// A round number at or above `value`: 1, 2 or 5 times a power of ten.
fn ceiling(value: f64) -> f64 {
    if value <= 0.0 || !value.is_finite() {
        return 1.0;
    }
    let power = 10f64.powf(value.log10().floor());
    [1.0, 2.0, 5.0, 10.0].into_iter().map(|m| m * power).find(|v| *v >= value).unwrap_or(10.0 * power)
}

/// The frame: the title (for screen readers), the axes, the y axis's labels at 0, half and
/// `max`, and the first, middle and last day under the x axis.
fn frame(out: &mut String, title: &str, days: &[String], max: f64, label: &dyn Fn(f64) -> String) {
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH:.0}" height="{HEIGHT:.0}" viewBox="0 0 {WIDTH:.0} {HEIGHT:.0}" font-family="Helvetica, Arial, sans-serif" font-size="11" role="img">"#
    );
    let _ = writeln!(out, "<title>{}</title>", escape(title));
    let _ = writeln!(out, r##"<rect width="100%" height="100%" fill="#ffffff"/>"##);
    let bottom = HEIGHT - BOTTOM;
    for fraction in [0.0, 0.5, 1.0] {
        let y = bottom - fraction * (bottom - TOP);
        let _ = writeln!(
            out,
            r##"<line x1="{LEFT:.0}" y1="{y:.1}" x2="{:.0}" y2="{y:.1}" stroke="#e5e7eb"/><text x="{:.0}" y="{:.1}" text-anchor="end" fill="#6b7280">{}</text>"##,
            WIDTH - RIGHT,
            LEFT - 6.0,
            y + 4.0,
            escape(&label(fraction * max))
        );
    }
    let _ = writeln!(
        out,
        r##"<line x1="{LEFT:.0}" y1="{bottom:.0}" x2="{:.0}" y2="{bottom:.0}" stroke="#374151"/>"##,
        WIDTH - RIGHT
    );
    let mut shown: Vec<usize> = vec![0, days.len() / 2, days.len().saturating_sub(1)];
    shown.dedup();
    for i in shown.into_iter().filter(|i| *i < days.len()) {
        let _ = writeln!(
            out,
            r##"<text x="{:.1}" y="{:.0}" text-anchor="middle" fill="#6b7280">{}</text>"##,
            x(i, days.len()),
            bottom + 16.0,
            escape(days[i].get(5..).unwrap_or(&days[i]))
        );
    }
}

/// The middle of day `i` of `n` on the x axis.
fn x(i: usize, n: usize) -> f64 {
    LEFT + (i as f64 + 0.5) * (WIDTH - LEFT - RIGHT) / n.max(1) as f64
}

fn y(value: f64, max: f64) -> f64 {
    let bottom = HEIGHT - BOTTOM;
    bottom - (value / max).clamp(0.0, 1.0) * (bottom - TOP)
}

/// The legend, under the days.
fn legend(out: &mut String, names: &[(&str, &str)]) {
    let mut at = LEFT;
    for (name, colour) in names {
        let _ = writeln!(
            out,
            r#"<rect x="{at:.0}" y="{:.0}" width="10" height="10" fill="{colour}"/><text x="{:.0}" y="{:.0}">{}</text>"#,
            HEIGHT - 14.0,
            at + 14.0,
            HEIGHT - 5.0,
            escape(name)
        );
        at += 22.0 + 6.5 * name.chars().count() as f64;
    }
}

/// Bars, one per day, stacked by kind: `stacks` are `(kind, colour, count per day)`.
pub fn bars(title: &str, days: &[String], stacks: &[(&str, &str, Vec<u64>)]) -> String {
    let totals: Vec<u64> =
        (0..days.len()).map(|i| stacks.iter().map(|(_, _, v)| v.get(i).copied().unwrap_or(0)).sum()).collect();
    let max = ceiling(totals.iter().copied().max().unwrap_or(0) as f64);
    let mut out = String::new();
    // Counts: whole numbers where they are (the half of 5 is 2.5).
    frame(&mut out, title, days, max, &|v| if v.fract() == 0.0 { format!("{v:.0}") } else { format!("{v:.1}") });
    let slot = (WIDTH - LEFT - RIGHT) / days.len().max(1) as f64;
    for (i, day) in days.iter().enumerate() {
        let mut below = 0u64;
        for (kind, colour, values) in stacks {
            let value = values.get(i).copied().unwrap_or(0);
            if value == 0 {
                continue;
            }
            let (top, bottom) = (y((below + value) as f64, max), y(below as f64, max));
            let _ = writeln!(
                out,
                r#"<rect x="{:.1}" y="{top:.1}" width="{:.1}" height="{:.1}" fill="{colour}"><title>{}: {value} {}</title></rect>"#,
                x(i, days.len()) - slot * 0.35,
                slot * 0.7,
                (bottom - top).max(0.5),
                escape(day),
                escape(kind)
            );
            below += value;
        }
    }
    legend(&mut out, &stacks.iter().map(|(k, c, _)| (*k, *c)).collect::<Vec<_>>());
    out.push_str("</svg>\n");
    out
}

/// Lines, one value per day or none (a gap): `series` are `(name, colour, values)`; the
/// y axis goes to `max` when given (a rate: 1), else to a round number above the largest.
pub fn lines(
    title: &str,
    days: &[String],
    series: &[(&str, &str, Vec<Option<f64>>)],
    max: Option<f64>,
    label: &dyn Fn(f64) -> String,
) -> String {
    let largest = series.iter().flat_map(|(_, _, v)| v.iter().flatten().copied()).fold(0.0, f64::max);
    let max = max.unwrap_or_else(|| ceiling(largest));
    let mut out = String::new();
    frame(&mut out, title, days, max, label);
    for (name, colour, values) in series {
        // Runs of consecutive days with a value, each a line; a lone day, a point.
        let mut run: Vec<(f64, f64)> = Vec::new();
        let flush = |run: &mut Vec<(f64, f64)>, out: &mut String| {
            if run.len() > 1 {
                let points: Vec<String> = run.iter().map(|(a, b)| format!("{a:.1},{b:.1}")).collect();
                let _ = writeln!(
                    out,
                    r#"<polyline points="{}" fill="none" stroke="{colour}" stroke-width="2"/>"#,
                    points.join(" ")
                );
            }
            run.clear();
        };
        for (i, value) in values.iter().enumerate() {
            match value {
                Some(value) => {
                    let (px, py) = (x(i, days.len()), y(*value, max));
                    run.push((px, py));
                    let _ = writeln!(
                        out,
                        r#"<circle cx="{px:.1}" cy="{py:.1}" r="3" fill="{colour}"><title>{}: {} {}</title></circle>"#,
                        escape(&days[i]),
                        escape(name),
                        escape(&label(*value))
                    );
                }
                None => flush(&mut run, &mut out),
            }
        }
        flush(&mut run, &mut out);
    }
    legend(&mut out, &series.iter().map(|(n, c, _)| (*n, *c)).collect::<Vec<_>>());
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::{bars, ceiling, lines};

    #[test]
    fn the_axis_ends_at_a_round_number() {
        let cases = [(0.0, 1.0), (1.0, 1.0), (3.0, 5.0), (7.0, 10.0), (11.0, 20.0), (0.03, 0.05), (480.0, 500.0)];
        for (value, round) in cases {
            assert!((ceiling(value) - round).abs() < 1e-9, "{value}: {}", ceiling(value));
        }
    }

    #[test]
    fn every_value_has_its_tooltip_and_no_text_is_markup() {
        let days: Vec<String> = ["2026-12-01", "2026-12-02", "2026-12-03"].map(String::from).to_vec();
        let svg =
            bars("runs <b>", &days, &[("completed", "#15803d", vec![3, 0, 1]), ("<script>", "#b91c1c", vec![1, 0, 0])]);
        assert_eq!(svg.matches("<rect x=").count() - 2, 3, "three bars and two legend boxes: {svg}");
        assert!(svg.contains("<title>2026-12-01: 3 completed</title>") && svg.contains("&lt;script&gt;"), "{svg}");
        assert!(!svg.contains("<script>") && !svg.contains("<b>"), "{svg}");
        let svg = lines("rate", &days, &[("approved", "#1d4ed8", vec![Some(0.5), None, Some(1.0)])], Some(1.0), &|v| {
            format!("{:.0}%", v * 100.0)
        });
        // A gap: two points, no line between them.
        assert_eq!((svg.matches("<circle").count(), svg.matches("<polyline").count()), (2, 0), "{svg}");
        assert!(svg.contains("2026-12-03: approved 100%"), "{svg}");
    }
}

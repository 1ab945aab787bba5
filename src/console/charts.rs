//! Charts as inline SVG, rendered on the server: no chart library and
//! nothing fetched by the browser. Pure functions from numbers to markup;
//! colours come from classes in the console's stylesheet (the page's
//! Content-Security-Policy allows no inline styles). Every bar carries its
//! value in `data-value` and a `<title>` tooltip, and every chart a title
//! for screen readers.

use maud::{html, Markup};

const WIDTH: f64 = 400.0;
const HEIGHT: f64 = 220.0;
/// Room for the axis labels.
const LEFT: f64 = 36.0;
const BOTTOM: f64 = 24.0;
const TOP: f64 = 10.0;

/// A point of a two-series column chart: a label and two values drawn
/// side by side (for example offered and answered calls).
pub(super) struct Pair {
    pub label: String,
    pub first: u64,
    pub second: u64,
}

/// Side-by-side columns of two series per label, with a y axis from 0 to
/// the largest value. `classes` are the two series' CSS classes and
/// `names` their legend. At most about a dozen x labels are printed.
pub(super) fn paired_columns(
    title: &str,
    points: &[Pair],
    classes: (&str, &str),
    names: (&str, &str),
) -> Markup {
    let max = points
        .iter()
        .map(|p| p.first.max(p.second))
        .max()
        .unwrap_or(0)
        .max(1);
    let plot_w = WIDTH - LEFT - 4.0;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let slot = plot_w / points.len().max(1) as f64;
    let bar = (slot * 0.4).max(0.5);
    let label_every = points.len().div_ceil(12).max(1);
    let y = |v: u64| TOP + plot_h - plot_h * v as f64 / max as f64;
    html! {
        svg.chart-columns viewBox={ "0 0 " (WIDTH) " " (HEIGHT) } role="img" aria-label=(title) {
            title { (title) }
            line.axis x1=(LEFT) y1=(TOP + plot_h) x2=(WIDTH) y2=(TOP + plot_h) {}
            line.axis x1=(LEFT) y1=(TOP) x2=(LEFT) y2=(TOP + plot_h) {}
            text x=(LEFT - 4.0) y=(TOP + 8.0) text-anchor="end" { (max) }
            text x=(LEFT - 4.0) y=(TOP + plot_h) text-anchor="end" { "0" }
            @for (i, p) in points.iter().enumerate() {
                @let x = LEFT + slot * i as f64 + slot * 0.1;
                rect class=(classes.0) x=(fmt(x)) y=(fmt(y(p.first))) width=(fmt(bar))
                    height=(fmt(TOP + plot_h - y(p.first))) data-value=(p.first) {
                    title { (p.label) ": " (p.first) " " (names.0) }
                }
                rect class=(classes.1) x=(fmt(x + bar)) y=(fmt(y(p.second))) width=(fmt(bar))
                    height=(fmt(TOP + plot_h - y(p.second))) data-value=(p.second) {
                    title { (p.label) ": " (p.second) " " (names.1) }
                }
                @if i % label_every == 0 {
                    text x=(fmt(x + bar)) y=(HEIGHT - 8.0) text-anchor="middle" { (p.label) }
                }
            }
        }
        p.legend {
            span { span class={ "swatch " (classes.0) } {} (names.0) }
            span { span class={ "swatch " (classes.1) } {} (names.1) }
        }
    }
}

/// Horizontal bars, one per row, scaled to the largest count.
pub(super) fn bars(title: &str, rows: &[(String, u64)]) -> Markup {
    let max = rows.iter().map(|(_, n)| *n).max().unwrap_or(0).max(1);
    let row_h = 22.0;
    let label_w = 150.0;
    let height = row_h * rows.len().max(1) as f64 + 4.0;
    let room = WIDTH - label_w - 50.0;
    html! {
        svg.chart-bars viewBox={ "0 0 " (WIDTH) " " (fmt(height)) } role="img" aria-label=(title) {
            title { (title) }
            @for (i, (label, count)) in rows.iter().enumerate() {
                @let top = 2.0 + row_h * i as f64;
                text x=(label_w - 6.0) y=(fmt(top + 15.0)) text-anchor="end" { (label) }
                rect.bar x=(label_w) y=(fmt(top + 3.0)) height=(row_h - 6.0)
                    width=(fmt(room * *count as f64 / max as f64)) data-value=(count) {
                    title { (label) ": " (count) }
                }
                text x=(fmt(label_w + room * *count as f64 / max as f64 + 6.0)) y=(fmt(top + 15.0)) { (count) }
            }
        }
    }
}

/// One row of a met/breached chart.
pub(super) struct Share {
    pub label: String,
    pub met: u64,
    pub breached: u64,
}

/// A full-width bar per row split into met and breached, with the share
/// met as a percentage ("no data" when both are 0).
pub(super) fn shares(title: &str, rows: &[Share]) -> Markup {
    let row_h = 26.0;
    let label_w = 110.0;
    let room = WIDTH - label_w - 70.0;
    let height = row_h * rows.len().max(1) as f64 + 4.0;
    html! {
        svg.chart-shares viewBox={ "0 0 " (WIDTH) " " (fmt(height)) } role="img" aria-label=(title) {
            title { (title) }
            @for (i, row) in rows.iter().enumerate() {
                @let top = 2.0 + row_h * i as f64;
                @let total = row.met + row.breached;
                text x=(label_w - 6.0) y=(fmt(top + 17.0)) text-anchor="end" { (row.label) }
                @if total == 0 {
                    rect.rest x=(label_w) y=(fmt(top + 4.0)) height=(row_h - 8.0) width=(fmt(room)) {}
                    text x=(fmt(label_w + room + 6.0)) y=(fmt(top + 17.0)) { "no data" }
                } @else {
                    @let met_w = room * row.met as f64 / total as f64;
                    rect.met x=(label_w) y=(fmt(top + 4.0)) height=(row_h - 8.0) width=(fmt(met_w)) data-value=(row.met) {
                        title { (row.label) ": " (row.met) " met" }
                    }
                    rect.breached x=(fmt(label_w + met_w)) y=(fmt(top + 4.0)) height=(row_h - 8.0)
                        width=(fmt(room - met_w)) data-value=(row.breached) {
                        title { (row.label) ": " (row.breached) " breached" }
                    }
                    text x=(fmt(label_w + room + 6.0)) y=(fmt(top + 17.0)) { (percent(Some(row.met as f64 / total as f64))) }
                }
            }
        }
        p.legend {
            span { span.swatch.met {} "met" }
            span { span.swatch.breached {} "breached" }
        }
    }
}

/// A ring filled to `fraction` (0 to 1) with the percentage in its middle;
/// an empty ring reading "—" when there is no fraction.
pub(super) fn ring(title: &str, fraction: Option<f64>) -> Markup {
    let radius = 60.0;
    let circumference = 2.0 * std::f64::consts::PI * radius;
    let filled = circumference * fraction.unwrap_or(0.0).clamp(0.0, 1.0);
    html! {
        svg.chart-ring viewBox="0 0 200 160" role="img" aria-label=(title) {
            title { (title) }
            circle.ring-rest cx="100" cy="80" r=(radius) fill="none" stroke-width="18" {}
            circle.ring-fill cx="100" cy="80" r=(radius) fill="none" stroke-width="18"
                stroke-dasharray={ (fmt(filled)) " " (fmt(circumference)) }
                transform="rotate(-90 100 80)" data-value=(fraction.map_or(String::new(), |f| format!("{f:.4}"))) {}
            text.ring-value x="100" y="88" text-anchor="middle" { (percent(fraction)) }
        }
    }
}

/// "87.5%", or "—" without a value.
pub(super) fn percent(fraction: Option<f64>) -> String {
    fraction.map_or_else(|| "—".to_string(), |f| format!("{:.1}%", f * 100.0))
}

/// A coordinate with one decimal: enough for a 400-unit canvas.
fn fmt(value: f64) -> String {
    format!("{value:.1}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_scaled_to_the_largest_value() {
        let points = [
            Pair {
                label: "09".into(),
                first: 10,
                second: 5,
            },
            Pair {
                label: "10".into(),
                first: 0,
                second: 0,
            },
        ];
        let svg = paired_columns(
            "calls",
            &points,
            ("offered", "answered"),
            ("offered", "answered"),
        )
        .into_string();
        assert_eq!(svg.matches("<rect").count(), 4);
        // The tallest bar fills the plot (186 units); the half one half.
        assert!(svg.contains(r#"height="186.0" data-value="10""#), "{svg}");
        assert!(svg.contains(r#"height="93.0" data-value="5""#), "{svg}");
        assert!(svg.contains(r#"height="0.0" data-value="0""#), "{svg}");
    }

    #[test]
    fn shares_and_rings_show_percentages_or_no_data() {
        let svg = shares(
            "sla",
            &[
                Share {
                    label: "dispatch".into(),
                    met: 3,
                    breached: 1,
                },
                Share {
                    label: "repair".into(),
                    met: 0,
                    breached: 0,
                },
            ],
        )
        .into_string();
        assert!(svg.contains("75.0%") && svg.contains("no data"), "{svg}");
        assert!(ring("containment", None).into_string().contains('—'));
        assert!(ring("containment", Some(0.5))
            .into_string()
            .contains("50.0%"));
    }

    #[test]
    fn labels_are_escaped() {
        let svg = bars("x", &[("<b>".into(), 1)]).into_string();
        assert!(svg.contains("&lt;b&gt;") && !svg.contains("<b>"));
    }
}

//! The charts `make bench` writes beside its report (`target/bench/*.svg`), which the docs
//! show: SVG drawn with plotters.
//!
//! - [`cost`]: dollars per 1M completed payments, the payment path's and the whole system's
//!   bills stacked by service, beside the same saga on Step Functions Express and Standard.

use plotters::coord::ranged1d::SegmentValue;
use plotters::prelude::*;

use crate::cost::CostReport;

/// One bar: its name and its parts (a service and its dollars), stacked left to right.
struct Bar {
    name: String,
    parts: Vec<(String, f64)>,
}

/// Colours of the stacked services, in the order they first appear.
const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// Dollars per 1M completed payments: the payment path's and the whole system's bills by
/// service, and the payment path's saga on Step Functions Express and Standard (their totals).
pub fn cost(path: &CostReport, system: &CostReport) -> anyhow::Result<String> {
    let by_service = |name: &str, report: &CostReport| Bar {
        name: format!("{name}: ${:.2}", report.per_million_payments),
        parts: report
            .lines
            .iter()
            .map(|line| (line.item.clone(), line.per_million_payments))
            .collect(),
    };
    let total = |name: &str, dollars: f64| Bar {
        name: format!("{name}: ${dollars:.2}"),
        parts: vec![(name.to_owned(), dollars)],
    };
    let bars = [
        by_service("paysaga, payment path", path),
        by_service("paysaga, whole system", system),
        total("Step Functions Express", path.step_functions_express),
        total("Step Functions Standard", path.step_functions_standard),
    ];
    stacked_bars(
        "Cost per 1M completed payments, us-east-1 list prices",
        "$ per 1M completed payments",
        &bars,
    )
}

/// Horizontal bars, each stacked from its parts; a legend of the parts' names.
fn stacked_bars(caption: &str, axis: &str, bars: &[Bar]) -> anyhow::Result<String> {
    let widest = bars
        .iter()
        .map(|bar| bar.parts.iter().map(|(_, value)| value).sum::<f64>())
        .fold(0.0, f64::max);
    let mut names: Vec<&str> = Vec::new();
    for (part, _) in bars.iter().flat_map(|bar| &bar.parts) {
        if !names.contains(&part.as_str()) {
            names.push(part);
        }
    }
    let colour = |part: &str| {
        let index = names.iter().position(|name| *name == part).unwrap_or(0);
        PALETTE[index % PALETTE.len()]
    };
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (960, 420)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(caption, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(250)
            // One segment per bar: a range of n - 1 has n of them.
            .build_cartesian_2d(
                0.0..widest * 1.05,
                (0..bars.len().saturating_sub(1)).into_segmented(),
            )?;
        let label = |value: &SegmentValue<usize>| match value {
            // Row 0 at the bottom is the last bar; the axis may ask for one row past the top.
            SegmentValue::CenterOf(index) => bars
                .len()
                .checked_sub(index + 1)
                .and_then(|bar| bars.get(bar))
                .map_or(String::new(), |bar| bar.name.clone()),
            _ => String::new(),
        };
        chart
            .configure_mesh()
            .disable_y_mesh()
            .x_desc(axis)
            .y_label_formatter(&label)
            .draw()?;
        // The first bar at the top.
        for (row, bar) in bars.iter().rev().enumerate() {
            let mut from = 0.0;
            for (part, value) in &bar.parts {
                let to = from + value;
                let mut rectangle = Rectangle::new(
                    [
                        (from, SegmentValue::Exact(row)),
                        (to, SegmentValue::Exact(row + 1)),
                    ],
                    colour(part).filled(),
                );
                rectangle.set_margin(8, 8, 0, 0);
                chart.draw_series(std::iter::once(rectangle))?;
                from = to;
            }
        }
        for name in &names {
            let fill = colour(name);
            chart
                .draw_series(std::iter::empty::<Rectangle<(f64, SegmentValue<usize>)>>())?
                .label(*name)
                .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], fill.filled()));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .draw()?;
        root.present()?;
    }
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cost::CostLine;

    fn report(lines: &[(&str, f64)], standard: f64, express: f64) -> CostReport {
        CostReport {
            lines: lines
                .iter()
                .map(|(item, dollars)| CostLine {
                    item: (*item).to_owned(),
                    quantity: 1.0,
                    unit: "request".to_owned(),
                    per_million_payments: *dollars,
                })
                .collect(),
            per_million_payments: lines.iter().map(|(_, dollars)| dollars).sum(),
            step_functions_standard: standard,
            step_functions_express: express,
            assumptions: Vec::new(),
        }
    }

    #[test]
    fn the_cost_chart_names_every_bar_and_service_and_draws_their_parts() {
        let path = report(&[("SQS", 0.6), ("DynamoDB writes", 7.5)], 136.28, 12.39);
        let system = report(&[("SQS", 3.0), ("DynamoDB writes", 18.75)], 0.0, 0.0);
        let svg = cost(&path, &system).expect("a chart");
        assert!(svg.starts_with("<svg"), "{}", &svg[..60.min(svg.len())]);
        for text in [
            "paysaga, payment path: $8.10",
            "paysaga, whole system: $21.75",
            "Step Functions Express: $12.39",
            "Step Functions Standard: $136.28",
            "DynamoDB writes",
            "SQS",
        ] {
            assert!(svg.contains(text), "{text} missing");
        }
        // Two stacked parts for each paysaga bar, one for each Step Functions bar, and one
        // swatch per legend entry (4 names): at least 10 filled rectangles.
        assert!(svg.matches("<rect").count() >= 10, "{svg}");
    }
}

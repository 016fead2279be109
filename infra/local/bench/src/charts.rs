//! The charts `make bench` writes beside its report (`target/bench/*.svg`), which the docs
//! show: SVG drawn with plotters.
//!
//! - [`cost`]: dollars per 1M completed payments, the payment path's and the whole system's
//!   bills stacked by service, beside the same saga on Step Functions Express and Standard.
//! - [`concurrency`]: payments/s as the submissions in flight grow, to the last `COMPLETED`
//!   and to the whole system's work done, under the emulators' ceiling.
//! - [`latency`]: each hop's p50 (a bar) and p95 (a whisker), unloaded and under load, on a
//!   logarithmic scale (one payment alone takes milliseconds a hop; under load, seconds).

use plotters::coord::ranged1d::SegmentValue;
use plotters::prelude::*;

use crate::cost::CostReport;
use crate::latency::HopLatency;
use crate::throughput::ConcurrencyPoint;

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

/// Payments/s against the submissions in flight (a logarithmic axis: 1, 2, 4, ...), to the last
/// `COMPLETED` and with every consumer's part done, under the emulators' `ceiling` (measured at
/// `ceiling_clients` clients).
pub fn concurrency(
    points: &[ConcurrencyPoint],
    ceiling: f64,
    ceiling_clients: usize,
) -> anyhow::Result<String> {
    let widest = points
        .iter()
        .map(|point| point.concurrency)
        .max()
        .unwrap_or(1)
        .max(2) as f64;
    let highest = points
        .iter()
        .map(|point| {
            point
                .payments_per_second
                .max(point.whole_system_payments_per_second)
        })
        .filter(|rate| rate.is_finite())
        .fold(ceiling, f64::max)
        .max(1.0);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (960, 420)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                "Payments/s against submissions in flight, on the local stack",
                ("sans-serif", 18),
            )
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d((1.0..widest).log_scale(), 0.0..highest * 1.15)?;
        chart
            .configure_mesh()
            .x_desc("payments submitted at once (clients)")
            .y_desc("payments/s")
            // A logarithmic axis draws a light line at every unit between its decades.
            .light_line_style(TRANSPARENT)
            .x_label_formatter(&|clients| format!("{clients:.0}"))
            .draw()?;
        let to_completed: fn(&ConcurrencyPoint) -> f64 = |point| point.payments_per_second;
        let to_consumers: fn(&ConcurrencyPoint) -> f64 =
            |point| point.whole_system_payments_per_second;
        let series = [
            ("to the last COMPLETED", PALETTE[0], to_completed),
            ("to the last consumer done", PALETTE[1], to_consumers),
        ];
        for (name, colour, rate) in series {
            let line: Vec<(f64, f64)> = points
                .iter()
                .map(|point| (point.concurrency as f64, rate(point)))
                .filter(|(_, rate)| rate.is_finite())
                .collect();
            chart
                .draw_series(LineSeries::new(line.clone(), colour.stroke_width(2)))?
                .label(name)
                .legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 16, y)], colour.stroke_width(2))
                });
            chart.draw_series(
                line.into_iter()
                    .map(|at| Circle::new(at, 4, colour.filled())),
            )?;
        }
        let ceiling_colour = PALETTE[3];
        chart
            .draw_series(DashedLineSeries::new(
                [(1.0, ceiling), (widest, ceiling)],
                8,
                5,
                ceiling_colour.stroke_width(2),
            ))?
            .label(format!(
                "ceiling of the emulators, the same work ({ceiling:.1}/s at {ceiling_clients} clients)"
            ))
            .legend(move |(x, y)| {
                PathElement::new([(x, y), (x + 16, y)], ceiling_colour.stroke_width(2))
            });
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .draw()?;
        root.present()?;
    }
    Ok(svg)
}

/// A hop's p50 and p95, in milliseconds.
type Spread = (f64, f64);

/// The colours of the unloaded and the loaded runs.
const RUNS: [(&str, RGBColor); 2] = [("unloaded", PALETTE[0]), ("under load", PALETTE[1])];

/// Each hop's p50 and p95 in milliseconds, the unloaded run's above the loaded one's.
pub fn latency(runs: &[HopLatency; 2]) -> anyhow::Result<String> {
    let [unloaded, loaded] = runs;
    // Rows from the top: the whole payment, then each hop; each row's runs' (p50, p95).
    let mut rows: Vec<(String, [Option<Spread>; 2])> = vec![(
        "submit → COMPLETED".to_owned(),
        [unloaded, loaded].map(|run| {
            let ms = &run.submit_to_completed_ms;
            (run.payments > 0).then_some((ms.p50, ms.p95))
        }),
    )];
    for (hop, across) in crate::latency::by_hop(&[unloaded, loaded]) {
        let name = if hop.part {
            format!("↳ {}", hop.hop)
        } else {
            hop.hop.clone()
        };
        let cells = [0, 1].map(|run| {
            across[run]
                .filter(|hop| hop.samples > 0)
                .map(|hop| (hop.ms.p50, hop.ms.p95))
        });
        rows.push((name, cells));
    }
    let highest = rows
        .iter()
        .flat_map(|(_, cells)| cells.iter().flatten().map(|(_, p95)| *p95))
        .fold(10.0, f64::max);
    // Below 1 ms a bar is not worth a decade of the axis.
    let floor = 1.0;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (960, 520)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!(
                    "One payment by hop, ms: p50 (bar) and p95 (whisker); {} alone, {} at {} at a time",
                    unloaded.payments, loaded.payments, loaded.concurrency
                ),
                ("sans-serif", 17),
            )
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(300)
            .build_cartesian_2d(
                (floor..highest * 1.5).log_scale(),
                (0..rows.len().saturating_sub(1)).into_segmented(),
            )?;
        let label = |value: &SegmentValue<usize>| match value {
            SegmentValue::CenterOf(index) => rows
                .len()
                .checked_sub(index + 1)
                .and_then(|row| rows.get(row))
                .map_or(String::new(), |(name, _)| name.clone()),
            _ => String::new(),
        };
        chart
            .configure_mesh()
            .disable_y_mesh()
            .x_desc("milliseconds (log scale)")
            .y_label_formatter(&label)
            .draw()?;
        // Margins in pixels of a row's height: the unloaded run in its upper half, the loaded
        // one in its lower half, a whisker thinner than its bar.
        let row_height = chart.plotting_area().dim_in_pixel().1 as f64 / rows.len() as f64;
        let share = |fraction: f64| (row_height * fraction).round() as u32;
        for (row, (_, cells)) in rows.iter().rev().enumerate() {
            for (run, cell) in cells.iter().enumerate() {
                let Some((p50, p95)) = *cell else { continue };
                let colour = RUNS[run].1;
                let (top, bottom) = if run == 0 {
                    (share(0.12), share(0.52))
                } else {
                    (share(0.52), share(0.12))
                };
                let mut bar = Rectangle::new(
                    [
                        (floor, SegmentValue::Exact(row)),
                        (p50.max(floor), SegmentValue::Exact(row + 1)),
                    ],
                    colour.filled(),
                );
                bar.set_margin(top, bottom, 0, 0);
                let mut whisker = Rectangle::new(
                    [
                        (p50.max(floor), SegmentValue::Exact(row)),
                        (p95.max(floor), SegmentValue::Exact(row + 1)),
                    ],
                    colour.mix(0.35).filled(),
                );
                whisker.set_margin(top + share(0.1), bottom + share(0.1), 0, 0);
                chart.draw_series([bar, whisker])?;
            }
        }
        for (name, colour) in RUNS {
            chart
                .draw_series(std::iter::empty::<Rectangle<(f64, SegmentValue<usize>)>>())?
                .label(name)
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 10, y + 5)], colour.filled())
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
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

    #[test]
    fn the_concurrency_chart_draws_both_rates_and_the_ceiling() {
        let points: Vec<ConcurrencyPoint> = [1, 2, 4, 8]
            .into_iter()
            .map(|concurrency| ConcurrencyPoint {
                concurrency,
                completed: 200,
                payments_per_second: 20.0 + concurrency as f64,
                whole_system_payments_per_second: 15.0 + concurrency as f64,
            })
            .collect();
        let svg = concurrency(&points, 35.0, 8).expect("a chart");
        for text in [
            "to the last COMPLETED",
            "to the last consumer done",
            "ceiling of the emulators, the same work (35.0/s at 8 clients)",
        ] {
            assert!(svg.contains(text), "{text} missing");
        }
        // Four points on each of the two lines.
        assert!(svg.matches("<circle").count() >= 8, "{svg}");
    }

    fn run(payments: usize, concurrency: usize, scale: f64) -> HopLatency {
        use crate::latency::Hop;
        use crate::throughput::Percentiles;
        let hop = |name: &str, part, p50: f64| Hop {
            hop: name.to_owned(),
            measured_by: "the payment's log".to_owned(),
            part,
            samples: payments,
            ms: Percentiles {
                p50: p50 * scale,
                p95: 2.0 * p50 * scale,
                p99: 0.0,
                max: 0.0,
            },
        };
        HopLatency {
            payments,
            concurrency,
            events_handled_at: None,
            submit_to_completed_ms: Percentiles {
                p50: 90.0 * scale,
                p95: 150.0 * scale,
                p99: 0.0,
                max: 0.0,
            },
            hops: vec![
                hop("requested → funds reserved", false, 60.0),
                hop("relay: request published", true, 20.0),
            ],
        }
    }

    #[test]
    fn the_latency_chart_names_every_hop_and_draws_both_runs() {
        let svg = latency(&[run(30, 1, 1.0), run(300, 8, 40.0)]).expect("a chart");
        for text in [
            "submit → COMPLETED",
            "requested → funds reserved",
            "↳ relay: request published",
            "unloaded",
            "under load",
            "30 alone, 300 at 8 at a time",
        ] {
            assert!(svg.contains(text), "{text} missing");
        }
        // Three rows, two runs, a bar and a whisker each, and two legend swatches.
        assert!(svg.matches("<rect").count() >= 14, "{svg}");
    }
}

//! Cold starts: spawn to the end of init (first `/next`), spawn to the first response, peak RSS.

use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use crate::instance::{Binary, Instance};

/// One cold start.
#[derive(Debug, Clone)]
pub struct Sample {
    pub init: Duration,
    pub first_response: Duration,
    pub peak_rss_kib: u64,
    pub response: Value,
}

/// Starts `binary` in a fresh process, sends it `event`, measures, and kills it.
pub async fn sample(binary: &Binary, event: &Value) -> anyhow::Result<Sample> {
    let instance = Instance::start(binary).await?;
    let init = instance.init;
    let invocation = instance.invoke(event).await;
    let peak_rss_kib = instance.peak_rss_kib();
    let output = instance.stop().await;
    let invocation = invocation.map_err(|error| {
        let tail: Vec<&String> = output.iter().rev().take(5).collect();
        anyhow::anyhow!("{error}; last output: {tail:?}")
    })?;
    Ok(Sample {
        init,
        first_response: invocation.since_spawn,
        peak_rss_kib: peak_rss_kib?,
        response: invocation.response,
    })
}

/// Smallest, middle and largest of a set of measurements.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Spread {
    pub min: f64,
    pub median: f64,
    pub max: f64,
}

impl Spread {
    pub fn of(values: impl IntoIterator<Item = f64>) -> Self {
        let mut values: Vec<f64> = values.into_iter().collect();
        if values.is_empty() {
            return Self::default();
        }
        values.sort_by(f64::total_cmp);
        let middle = values.len() / 2;
        let median = if values.len().is_multiple_of(2) {
            (values[middle - 1] + values[middle]) / 2.0
        } else {
            values[middle]
        };
        Self {
            min: values[0],
            median,
            max: values[values.len() - 1],
        }
    }
}

/// A binary's cold starts, summarised.
#[derive(Debug, Clone, Serialize)]
pub struct ColdStart {
    pub binary: String,
    pub init_ms: Spread,
    pub first_response_ms: Spread,
    pub peak_rss_mib: Spread,
    /// The arm64 deployment zip, when built.
    pub zip_bytes: Option<u64>,
}

impl ColdStart {
    pub fn of(binary: &str, samples: &[Sample], zip_bytes: Option<u64>) -> Self {
        let ms = |duration: Duration| duration.as_secs_f64() * 1000.0;
        Self {
            binary: binary.to_owned(),
            init_ms: Spread::of(samples.iter().map(|sample| ms(sample.init))),
            first_response_ms: Spread::of(samples.iter().map(|sample| ms(sample.first_response))),
            peak_rss_mib: Spread::of(
                samples
                    .iter()
                    .map(|sample| sample.peak_rss_kib as f64 / 1024.0),
            ),
            zip_bytes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spreads_have_a_true_median() {
        assert_eq!(
            Spread::of([3.0, 1.0, 2.0]),
            Spread {
                min: 1.0,
                median: 2.0,
                max: 3.0
            }
        );
        assert_eq!(Spread::of([4.0, 1.0, 2.0, 3.0]).median, 2.5);
        assert_eq!(Spread::of([]), Spread::default());
    }
}

//! A lock-free latency histogram with fixed buckets, in Prometheus's shape.

use prometheus_client::encoding::{MetricEncoder, NoLabelSet};
use prometheus_client::metrics::exemplar::Exemplar;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Bucket upper bounds in seconds.
pub const BUCKETS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    10.0, 60.0,
];

/// Counts of observations per bucket, plus their sum.
#[derive(Debug, Default)]
pub struct Histogram {
    counts: [AtomicU64; BUCKETS.len() + 1],
    sum_ns: AtomicU64,
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = BUCKETS
            .iter()
            .position(|&b| secs <= b)
            .unwrap_or(BUCKETS.len());
        self.counts[i].fetch_add(1, Relaxed);
        self.sum_ns.fetch_add(d.as_nanos() as u64, Relaxed);
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.counts.iter().map(|c| c.load(Relaxed)).sum()
    }

    /// Encodes the `_sum`, `_count` and (cumulative) `_bucket` samples, the
    /// last one `le="+Inf"`.
    pub fn encode(&self, mut encoder: MetricEncoder<'_>) -> Result<(), std::fmt::Error> {
        // Per bucket; the encoder sums them up.
        let mut buckets = [(f64::INFINITY, 0); BUCKETS.len() + 1];
        for ((bucket, bound), count) in buckets.iter_mut().zip(BUCKETS).zip(&self.counts) {
            *bucket = (bound, count.load(Relaxed));
        }
        buckets[BUCKETS.len()].1 = self.counts[BUCKETS.len()].load(Relaxed);
        let count: u64 = buckets.iter().map(|(_, n)| n).sum();
        let sum = self.sum_ns.load(Relaxed) as f64 / 1e9;
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, NO_EXEMPLARS)
    }
}

/// Histograms here keep no exemplars.
const NO_EXEMPLARS: Option<&HashMap<usize, Exemplar<NoLabelSet, f64>>> = None;

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::collector::Collector;
    use prometheus_client::encoding::DescriptorEncoder;
    use prometheus_client::metrics::MetricType;
    use prometheus_client::registry::Registry;
    use std::sync::Arc;

    #[derive(Debug)]
    struct One(Arc<Histogram>);

    impl Collector for One {
        fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
            let mut family = encoder.encode_descriptor("d", "help", None, MetricType::Histogram)?;
            self.0.encode(family.encode_family(&[("f", "x")])?)
        }
    }

    #[test]
    fn buckets_are_cumulative_up_to_inf() -> Result<(), std::fmt::Error> {
        let h = Arc::new(Histogram::default());
        h.observe(Duration::from_micros(50));
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_secs(100));
        let mut registry = Registry::default();
        registry.register_collector(Box::new(One(h.clone())));
        let mut out = String::new();
        prometheus_client::encoding::text::encode_registry(&mut out, &registry)?;
        let lines: Vec<&str> = out.lines().collect();
        let buckets: Vec<&str> = lines
            .iter()
            .copied()
            .filter(|l| l.starts_with("d_bucket"))
            .collect();
        assert_eq!(buckets.len(), BUCKETS.len() + 1, "{out}");
        assert!(
            lines.contains(&"d_bucket{le=\"0.0001\",f=\"x\"} 1"),
            "{out}"
        );
        assert!(
            lines.contains(&"d_bucket{le=\"0.0025\",f=\"x\"} 1"),
            "{out}"
        );
        assert!(lines.contains(&"d_bucket{le=\"0.005\",f=\"x\"} 2"), "{out}");
        assert!(lines.contains(&"d_bucket{le=\"60.0\",f=\"x\"} 2"), "{out}");
        assert_eq!(buckets.last(), Some(&"d_bucket{le=\"+Inf\",f=\"x\"} 3"));
        assert!(lines.contains(&"d_count{f=\"x\"} 3"), "{out}");
        let values: Vec<u64> = buckets
            .iter()
            .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
            .collect();
        assert!(values.windows(2).all(|w| w[0] <= w[1]), "{out}");
        assert_eq!(h.count(), 3);
        Ok(())
    }
}

//! Prometheus metrics of the service (text exposition format 0.0.4, as `flowc stats`
//! writes the governance metrics): HTTP requests by route and status, their latency as a
//! histogram, what principals did through the API, and, read from the store when scraped,
//! the runs by flow and status and the age of the oldest run waiting for a decision per
//! flow. Labels are route templates, flows, statuses and operations: never a value of a
//! run, never a principal.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

/// Upper bounds of the latency histogram's buckets, in seconds.
const BUCKETS: [f64; 14] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

#[derive(Default)]
struct Inner {
    /// By method, route and status.
    requests: BTreeMap<(String, String, u16), u64>,
    /// By method and route.
    latency: BTreeMap<(String, String), Histogram>,
    /// By operation (`start`, `decide`, `override`, `install`…) and result (`ok`, or the
    /// error's name).
    operations: BTreeMap<(&'static str, String), u64>,
    /// Attempts to deliver notices to webhooks: delivered, to be tried again, given up.
    webhooks: [u64; 3],
}

/// The service's counters.
#[derive(Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

/// A label value as the exposition format writes it.
pub fn label(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

impl Metrics {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A request answered.
    pub fn request(&self, method: &str, route: &str, status: u16, seconds: f64) {
        let mut inner = self.lock();
        *inner.requests.entry((method.to_owned(), route.to_owned(), status)).or_default() += 1;
        let histogram = inner.latency.entry((method.to_owned(), route.to_owned())).or_default();
        for (bucket, bound) in histogram.counts.iter_mut().zip(BUCKETS) {
            if seconds <= bound {
                *bucket += 1;
            }
        }
        histogram.sum += seconds;
        histogram.count += 1;
    }

    /// An operation of a principal, and how it ended.
    pub fn operation(&self, operation: &'static str, result: &str) {
        *self.lock().operations.entry((operation, result.to_owned())).or_default() += 1;
    }

    /// A round of webhook deliveries.
    pub fn delivered(&self, round: &flow_runtime::notify::Delivered) {
        let mut inner = self.lock();
        inner.webhooks[0] += round.delivered as u64;
        inner.webhooks[1] += round.retried as u64;
        inner.webhooks[2] += round.given_up as u64;
    }

    /// The exposition of the counters.
    pub fn render(&self) -> String {
        let inner = self.lock();
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP flow_http_requests_total HTTP requests answered, by method, route and status.\n\
             # TYPE flow_http_requests_total counter"
        );
        for ((method, route, status), count) in &inner.requests {
            let _ = writeln!(
                out,
                "flow_http_requests_total{{method=\"{method}\",route=\"{}\",status=\"{status}\"}} {count}",
                label(route)
            );
        }
        let _ = writeln!(
            out,
            "# HELP flow_http_request_duration_seconds Time to answer an HTTP request, by method and route.\n\
             # TYPE flow_http_request_duration_seconds histogram"
        );
        for ((method, route), histogram) in &inner.latency {
            let labels = format!("method=\"{method}\",route=\"{}\"", label(route));
            for (count, bound) in histogram.counts.iter().zip(BUCKETS) {
                let _ = writeln!(out, "flow_http_request_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {count}");
            }
            let _ =
                writeln!(out, "flow_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}", histogram.count);
            let _ = writeln!(out, "flow_http_request_duration_seconds_sum{{{labels}}} {}", histogram.sum);
            let _ = writeln!(out, "flow_http_request_duration_seconds_count{{{labels}}} {}", histogram.count);
        }
        let _ = writeln!(
            out,
            "# HELP flow_api_operations_total Operations of principals through the API, by operation and result \
             (`ok`, or the error's name: `refused`…).\n# TYPE flow_api_operations_total counter"
        );
        for ((operation, result), count) in &inner.operations {
            let _ = writeln!(
                out,
                "flow_api_operations_total{{operation=\"{operation}\",result=\"{}\"}} {count}",
                label(result)
            );
        }
        let _ = writeln!(
            out,
            "# HELP flow_webhook_deliveries_total Attempts to deliver notices to webhook endpoints, by result \
             (`delivered`; `retried`: failed, to be tried again; `given_up`).\n\
             # TYPE flow_webhook_deliveries_total counter"
        );
        for (result, count) in ["delivered", "retried", "given_up"].iter().zip(inner.webhooks) {
            let _ = writeln!(out, "flow_webhook_deliveries_total{{result=\"{result}\"}} {count}");
        }
        out
    }
}

/// The metrics read from the store: runs by flow and status, and per flow the age of the
/// oldest run waiting for a decision (seconds since it started).
pub fn store_metrics(runs: &[flow_runtime::store::RunRecord], now_seconds: i64) -> String {
    let mut by_status: BTreeMap<(&str, &str), u64> = BTreeMap::new();
    let mut oldest: BTreeMap<&str, i64> = BTreeMap::new();
    for run in runs {
        *by_status.entry((&run.flow, run.status.as_str())).or_default() += 1;
        if run.status == flow_runtime::Status::Pending
            && let Some((started, _)) = flow_ir::time::parse_timestamp(&run.created)
        {
            let age = (now_seconds - started).max(0);
            let entry = oldest.entry(&run.flow).or_insert(age);
            *entry = (*entry).max(age);
        }
    }
    let mut out = String::from("# HELP flow_runs Stored runs, by flow and status.\n# TYPE flow_runs gauge\n");
    for ((flow, status), count) in by_status {
        let _ = writeln!(out, "flow_runs{{flow=\"{}\",status=\"{status}\"}} {count}", label(flow));
    }
    out.push_str(
        "# HELP flow_oldest_pending_decision_age_seconds Per flow, how long the oldest run waiting for a decision \
         has existed.\n# TYPE flow_oldest_pending_decision_age_seconds gauge\n",
    );
    for (flow, age) in oldest {
        let _ = writeln!(out, "flow_oldest_pending_decision_age_seconds{{flow=\"{}\"}} {age}", label(flow));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_histogram_counts_each_request_in_every_bucket_at_or_above_it() {
        let metrics = Metrics::default();
        metrics.request("GET", "/v1/runs/{run}", 200, 0.003);
        metrics.request("GET", "/v1/runs/{run}", 404, 20.0);
        let text = metrics.render();
        assert!(text.contains("flow_http_requests_total{method=\"GET\",route=\"/v1/runs/{run}\",status=\"404\"} 1"));
        assert!(text.contains("le=\"0.0025\"} 0"), "{text}");
        assert!(text.contains("le=\"0.005\"} 1"), "{text}");
        assert!(text.contains("le=\"10\"} 1"), "{text}");
        assert!(text.contains("le=\"+Inf\"} 2"), "{text}");
    }
}

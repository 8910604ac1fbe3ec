//! `flowc monitor`: evaluates the monitors of the store's flows, raising and resolving
//! alerts (for cron; `flowc serve` evaluates them itself), or writes them as Prometheus
//! alerting rules.

use std::process::ExitCode;

use serde_json::{Value as Json, json};

use crate::deploy::{self, Deployment};
use crate::runs::fail;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum MonitorFormat {
    /// For people.
    Human,
    /// One JSON object, for scripts.
    Json,
    /// The monitors as Prometheus alerting rules (YAML); nothing is evaluated.
    PrometheusRules,
}

fn alert_json(alert: &flow_runtime::store::Alert) -> Json {
    json!({
        "id": alert.id, "flow": alert.flow, "monitor": alert.monitor, "severity": alert.severity,
        "routes": alert.routes, "condition": alert.condition, "raised": alert.raised, "value": alert.value,
        "resolved": alert.resolved, "cleared": alert.cleared,
    })
}

/// The webhook endpoints a monitor's alerts go to.
fn reached(runtime: &flow_runtime::Runtime, reading: &flow_runtime::monitor::Reading) -> Vec<String> {
    let Some(webhooks) = runtime.webhooks() else { return Vec::new() };
    webhooks.alerted(&reading.watched.flow, &reading.watched.monitor.routes).into_iter().map(str::to_owned).collect()
}

pub fn monitor(deployment: &Deployment, format: MonitorFormat) -> anyhow::Result<ExitCode> {
    let runtime = deploy::runtime(deployment)?;
    if format == MonitorFormat::PrometheusRules {
        return match runtime.monitors() {
            Ok((watched, failed)) => {
                crate::print(&flow_runtime::monitor::prometheus_rules(&watched));
                for (what, why) in &failed {
                    eprintln!("flowc: {what} does not load, so its monitors are not written: {why}");
                }
                Ok(if failed.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) })
            }
            Err(error) => fail(error, false),
        };
    }
    let evaluation = match runtime.evaluate_monitors() {
        Ok(evaluation) => evaluation,
        Err(error) => return fail(error, format == MonitorFormat::Json),
    };
    match format {
        MonitorFormat::Json => {
            let readings: Vec<Json> = evaluation
                .readings
                .iter()
                .map(|r| {
                    let m = &r.watched.monitor;
                    json!({
                        "flow": r.watched.flow, "version": r.watched.version, "monitor": m.name,
                        "condition": m.describe(), "severity": m.severity.as_str(), "routes": m.routes,
                        "counted": r.counted, "of": r.of, "value": r.value(), "holds": r.holds,
                        "alert": r.alert.as_ref().map(|a| a.id.clone()),
                        "endpoints": reached(&runtime, r),
                    })
                })
                .collect();
            let mut out = json!({
                "monitors": readings,
                "raised": evaluation.raised.iter().map(alert_json).collect::<Vec<_>>(),
                "resolved": evaluation.resolved.iter().map(alert_json).collect::<Vec<_>>(),
            });
            if !evaluation.failed.is_empty() {
                let failed = evaluation.failed.iter().map(|(what, why)| json!({"what": what, "error": why}));
                out["failed"] = Json::Array(failed.collect());
            }
            crate::print(&format!("{out}\n"));
        }
        _ => {
            let mut text = String::new();
            for r in &evaluation.readings {
                let m = &r.watched.monitor;
                let state = match (&r.alert, r.holds) {
                    (Some(_), _) => format!("ALERT ({}, to {})", m.severity.as_str(), m.routes.join(", ")),
                    (None, None) => "no data".to_owned(),
                    (None, _) => "ok".to_owned(),
                };
                text.push_str(&format!("{} / {}: {} — {}: {state}\n", r.watched.flow, m.name, m.describe(), r.value()));
                if reached(&runtime, r).is_empty() {
                    let routes = m.routes.join(", ");
                    text.push_str(&format!(
                        "  no webhook endpoint takes its routes ({routes}): its alerts are only stored\n"
                    ));
                }
            }
            for a in &evaluation.raised {
                text.push_str(&format!("raised {} ({}): {}\n", a.id, a.severity, a.value));
            }
            for a in &evaluation.resolved {
                text.push_str(&format!("resolved {}: {}\n", a.id, a.cleared.as_deref().unwrap_or_default()));
            }
            for (what, why) in &evaluation.failed {
                text.push_str(&format!("{what} could not be evaluated: {why}\n"));
            }
            if evaluation.readings.is_empty() && evaluation.failed.is_empty() {
                text.push_str("no flow in the store has monitors\n");
            }
            crate::print(&text);
        }
    }
    // What could not be evaluated is a failure of the command, after the rest was.
    Ok(if evaluation.failed.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// `flowc monitor --recount`: the store's counts against what the runs' evidence says.
pub fn recount(deployment: &Deployment, format: MonitorFormat) -> anyhow::Result<ExitCode> {
    let runtime = deploy::runtime(deployment)?;
    let (differ, failed) = match runtime.recount_monitors() {
        Ok(found) => found,
        Err(error) => return fail(error, format == MonitorFormat::Json),
    };
    if format == MonitorFormat::Json {
        let differ: Vec<Json> = differ
            .iter()
            .map(|d| {
                json!({"flow": d.flow, "series": d.series, "stored": [d.stored.0, d.stored.1],
                       "recounted": [d.recounted.0, d.recounted.1]})
            })
            .collect();
        let failed: Vec<Json> = failed.iter().map(|(what, why)| json!({"what": what, "error": why})).collect();
        crate::print(&format!("{}\n", json!({"differ": differ, "failed": failed})));
    } else {
        let mut text = String::new();
        for d in &differ {
            text.push_str(&format!(
                "{} / {}: the store counts {} of {}, the evidence says {} of {}\n",
                d.flow, d.series, d.stored.0, d.stored.1, d.recounted.0, d.recounted.1
            ));
        }
        for (what, why) in &failed {
            text.push_str(&format!("{what} could not be recounted: {why}\n"));
        }
        if differ.is_empty() && failed.is_empty() {
            text.push_str("the monitors' counts agree with the evidence of every stored run\n");
        }
        crate::print(&text);
    }
    Ok(if differ.is_empty() && failed.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

//! What the store keeps beside the runs, listed for operators (extensions): `flowc refusals`,
//! the chain of refusals that belong to no run (starts, reads, installs refused), and
//! `flowc webhooks`, the notices queued for webhook endpoints and how their delivery stands.

use std::process::ExitCode;

use flow_runtime::store::DeliveryState;
use serde_json::json;

use crate::DataFormat;
use crate::deploy::Deployment;

/// `flowc refusals`: the store's refusals that belong to no run, oldest first.
pub fn refusals(deployment: &Deployment, format: DataFormat) -> anyhow::Result<ExitCode> {
    let runtime = crate::deploy::runtime(deployment)?;
    let refusals = match runtime.store().refusals() {
        Ok(refusals) => refusals,
        Err(error) => return crate::runs::fail(error.into(), format == DataFormat::Json),
    };
    match format {
        DataFormat::Json => {
            let listed: Vec<_> = refusals
                .iter()
                .map(|r| {
                    json!({"seq": r.seq, "at": r.at, "principal": r.principal, "operation": r.operation,
                           "grant": r.grant, "message": r.message, "hash": r.hash})
                })
                .collect();
            crate::print(&format!("{}\n", json!({ "refusals": listed })));
        }
        DataFormat::Human => {
            let mut text = String::new();
            for r in &refusals {
                text.push_str(&format!(
                    "{} {}  {}: refused {} (grant `{}`): {}\n",
                    r.seq, r.at, r.principal, r.operation, r.grant, r.message
                ));
            }
            if text.is_empty() {
                text = "no refusals outside runs\n".to_owned();
            }
            crate::print(&text);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `flowc webhooks [--state STATE]`: the queued notices, oldest first, with their delivery.
pub fn webhooks(deployment: &Deployment, state: Option<&str>, format: DataFormat) -> anyhow::Result<ExitCode> {
    let state = match state {
        None => None,
        Some(text) => match DeliveryState::parse(text) {
            Some(state) => Some(state),
            None => anyhow::bail!("`--state {text}`: the states are `pending`, `delivered` and `failed`"),
        },
    };
    let runtime = crate::deploy::runtime(deployment)?;
    let deliveries = match runtime.store().deliveries(state) {
        Ok(deliveries) => deliveries,
        Err(error) => return crate::runs::fail(error.into(), format == DataFormat::Json),
    };
    match format {
        DataFormat::Json => {
            let listed: Vec<_> = deliveries
                .iter()
                .map(|d| {
                    json!({"endpoint": d.notice.endpoint, "id": d.notice.id, "type": d.notice.kind,
                           "created": d.created, "state": d.state.as_str(), "attempts": d.attempts, "error": d.error})
                })
                .collect();
            crate::print(&format!("{}\n", json!({ "notices": listed })));
        }
        DataFormat::Human => {
            let mut text = String::new();
            for d in &deliveries {
                let error = d.error.as_ref().map(|e| format!(": {e}")).unwrap_or_default();
                text.push_str(&format!(
                    "{} {} {}  {} {} after {} attempts{error}\n",
                    d.created,
                    d.notice.endpoint,
                    d.notice.id,
                    d.notice.kind,
                    d.state.as_str(),
                    d.attempts
                ));
            }
            if text.is_empty() {
                text = "no notices\n".to_owned();
            }
            crate::print(&text);
        }
    }
    Ok(ExitCode::SUCCESS)
}

//! Access checks: each operation against the plan's grants, and the refusals recorded when
//! one is missing.

use super::Runtime;
use super::run::StartOptions;
use crate::analysis::Analysis;
use crate::error::{Error, Result};
use crate::event::{Event, Started};
use crate::identity::{Principal, now};
use crate::log::Loaded;
use crate::value::{self, Value};
use flow_ir::plan::GrantKind;

impl Runtime {
    /// Refuses an operation: records it (in the run's chain when there is a run) and
    /// returns the error.
    pub(super) fn refuse(
        &self,
        run: Option<(&Analysis, &mut Loaded)>,
        who: &Principal,
        operation: &str,
        grant: String,
        message: String,
        missing: bool,
    ) -> Error {
        // Recorded under the id a run names them by, however the caller spelt it.
        let id = value::principal_id(&who.id);
        let event = Event::Refused {
            operation: operation.to_owned(),
            principal: id.clone(),
            roles: who.roles.clone(),
            grant: grant.clone(),
            message: message.clone(),
        };
        let recorded = match run {
            Some((analysis, loaded)) => {
                loaded.record(analysis, event);
                loaded.log.commit(&self.committer(&[]), analysis, &loaded.state)
            }
            None => {
                let notices =
                    self.webhooks.as_ref().map(|w| w.for_refusal(&id, operation, &grant, &message)).unwrap_or_default();
                self.store
                    .record_refusal([&now().to_string(), &id, operation, &grant, &message], self.signer(), &notices)
                    .map_err(Error::from)
            }
        };
        match recorded {
            Ok(()) => Error::Refused { grant, message, missing },
            // What kept the refusal from being recorded is the error: a store that was
            // changed, or cannot be written.
            Err(error) => error.map_message(|why| format!("{message}; and the refusal could not be recorded: {why}")),
        }
    }

    /// Refuses `who` an operation of the deployment rather than of a run (installing a plan
    /// through the HTTP API, say) for lack of `grant`: the refusal is recorded, as every
    /// refusal is, and returned.
    pub fn refuse_operation(&self, who: &Principal, operation: &str, grant: &str, message: String) -> Error {
        self.refuse(None, who, operation, grant.to_owned(), message, true)
    }

    /// Why `who` may not start this run, when they may not: for a stored run, choosing its
    /// clock needs `set clock`, and naming other principals in its inputs `trigger on
    /// behalf` (a run kept in memory only, a backtest, needs neither: nobody decides it).
    pub(super) fn start_refusal(
        &self,
        analysis: &Analysis,
        who: &Principal,
        started: &Started<Value>,
        options: &StartOptions,
        durable: bool,
    ) -> Option<(String, String)> {
        if self.testing {
            return None;
        }
        let flow = &analysis.body().flow.name;
        let grantees = |kind: GrantKind| {
            let roles = analysis.grantees(kind, None);
            if roles.is_empty() { "no role".to_owned() } else { roles.join(", ") }
        };
        if durable && options.clock.is_some() && !analysis.granted(&who.roles, GrantKind::Clock, None) {
            return Some((
                GrantKind::Clock.as_str().to_owned(),
                format!(
                    "{} may not choose the clock of a run of `{flow}`: the flow grants `set clock` to {}",
                    who.id,
                    grantees(GrantKind::Clock)
                ),
            ));
        }
        if !durable || analysis.granted(&who.roles, GrantKind::OnBehalf, None) {
            return None;
        }
        let mut named = Vec::new();
        for input in &started.inputs {
            value::principals(&input.value, &format!("$.{}", input.name), &mut named);
        }
        let others: Vec<String> =
            named.iter().filter(|(_, id)| *id != who.id).map(|(path, id)| format!("{id} ({path})")).collect();
        if !others.is_empty() {
            return Some((
                GrantKind::OnBehalf.as_str().to_owned(),
                format!(
                    "{} may not start a run of `{flow}` on behalf of {}: the flow grants `trigger on behalf` to {}",
                    who.id,
                    others.join(", "),
                    grantees(GrantKind::OnBehalf)
                ),
            ));
        }
        None
    }

    pub(super) fn check_run_grant(
        &self,
        analysis: &Analysis,
        loaded: &Loaded,
        who: &Principal,
        kind: GrantKind,
        operation: &str,
    ) -> Result<()> {
        if analysis.granted(&who.roles, kind, None) {
            return Ok(());
        }
        let roles = analysis.grantees(kind, None);
        let message = format!(
            "{} may not {operation} run `{}`: the flow grants `{}` to {}",
            value::principal_id(&who.id),
            loaded.state.run,
            kind.as_str(),
            if roles.is_empty() { "no role".to_owned() } else { roles.join(", ") }
        );
        // A read never writes to the run: its refusal goes to the store's chain of refusals,
        // naming the run, so that nobody can make a run's commits conflict (or its chain
        // grow) by asking to read what they may not.
        Err(self.refuse(None, who, kind.as_str(), kind.as_str().to_owned(), message, true))
    }
}

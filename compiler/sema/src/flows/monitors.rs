//! Monitors: each metric exists for the flow (`E2024`), its window and threshold are of
//! the right kind and can be crossed (`E2025`), it has a severity and routes that are
//! channels or roles (`E2026`).

use std::collections::BTreeMap;

use flow_diagnostics::{Code, Label, Span};
use flow_ir::monitor::{CHANNELS, FINAL_STATUSES, LONGEST_WINDOW, Measure, Metric, QUANTILES, Severity, Subject};
use flow_syntax::ast::{self, ExprKind as A, GateLevel, SmolStr};
use rust_decimal::Decimal;

use super::FlowChecker;
use crate::hir::{self, StepKind};
use crate::names::DefKind;
use crate::typeck::quoted_list;

impl FlowChecker<'_> {
    pub(super) fn check_monitors(&mut self, monitors: &[&ast::Monitor]) {
        let mut named: BTreeMap<SmolStr, Span> = BTreeMap::new();
        for monitor in monitors {
            if let Some(first) = named.get(&monitor.name.text) {
                let (first, file) = (*first, self.file());
                let message =
                    format!("monitor `{}` is declared more than once in flow `{}`", monitor.name.text, self.flow.name);
                self.error(Code::E1003, monitor.name.span, message).secondary.push(Label::new(
                    file,
                    first,
                    "first declared here",
                ));
                continue;
            }
            named.insert(monitor.name.text.clone(), monitor.name.span);
            if let Some(checked) = self.monitor(monitor) {
                self.flow.monitors.push(checked);
            }
        }
    }

    /// One monitor, or `None` when it has errors (reported).
    fn monitor(&mut self, m: &ast::Monitor) -> Option<hir::Monitor> {
        let metric = self.metric(m);
        let window = self.window(m);
        let threshold = metric.and_then(|metric| self.threshold(m, metric));
        let severity = self.severity(m);
        let (channels, roles) = self.routes(m)?;
        let (metric, window, threshold, severity) = (metric?, window?, threshold?, severity?);
        Some(hir::Monitor {
            span: m.name.span,
            name: m.name.text.clone(),
            metric,
            subject: m.subject.as_ref().map(|s| s.text.clone()),
            quantile: m.quantile.map(|(q, _)| q),
            window,
            above: m.above,
            threshold,
            severity,
            channels,
            roles,
        })
    }

    /// The metric, its subject and its quantile.
    fn metric(&mut self, m: &ast::Monitor) -> Option<Metric> {
        let Some(metric) = Metric::parse(&m.metric.text) else {
            let names = Metric::ALL.map(Metric::name);
            let help = crate::suggest::help(&m.metric.text, names)
                .unwrap_or_else(|| format!("a monitor watches one of {}", quoted_list(names)));
            self.error(
                Code::E2024,
                m.metric.span,
                format!("`{}` is not a metric a monitor can watch", m.metric.text),
            )
            .help = Some(help);
            return None;
        };
        let name = metric.name();
        let (subject, required) = metric.subject();
        match (&m.subject, subject) {
            (None, _) if required => {
                let help = match subject {
                    Subject::Status => format!("name the status: `{name}(rejected)`"),
                    _ => format!("name the step: `{name}(approve)`"),
                };
                self.error(Code::E2024, m.metric_span, format!("`{name}` needs to say what it is of")).help =
                    Some(help);
                return None;
            }
            (None, _) => {}
            (Some(given), Subject::Nothing) => {
                self.error(Code::E2024, given.span, format!("`{name}` is not of a step: write `{name}` alone"));
                return None;
            }
            (Some(status), Subject::Status) => {
                if !FINAL_STATUSES.contains(&status.text.as_str()) {
                    self.error(
                        Code::E2024,
                        status.span,
                        format!("`{}` is not a status a run ends with", status.text),
                    )
                    .help = Some(format!("write one of {}", quoted_list(FINAL_STATUSES)));
                    return None;
                }
            }
            (Some(step), subject) => self.subject(name, step, subject)?,
        }
        let latency = metric.measure() == Measure::Duration;
        match m.quantile {
            None if latency => {
                self.error(Code::E2024, m.metric_span, "a latency is watched at a quantile").help =
                    Some(format!("write `p95 {name}(…)` (p50, p90, p95 or p99)"));
                return None;
            }
            Some((_, span)) if !latency => {
                self.error(Code::E2024, span, format!("`{name}` has no quantile: only a latency has"));
                return None;
            }
            Some((q, span)) if !QUANTILES.contains(&q) => {
                self.error(Code::E2024, span, format!("`p{q}` is not a quantile a monitor watches")).help =
                    Some("write `p50`, `p90`, `p95` or `p99`".to_owned());
                return None;
            }
            _ => {}
        }
        Some(metric)
    }

    /// That `step` is what `name` may be of.
    fn subject(&mut self, name: &str, step: &ast::Ident, subject: Subject) -> Option<()> {
        let Some(found) = self.flow.steps.iter().find(|s| s.name == step.text) else {
            if !self.is_unparsed_step(&step.text) {
                let help = crate::suggest::help(&step.text, self.flow.steps.iter().map(|s| s.name.as_str()));
                self.error(Code::E2024, step.span, format!("flow `{}` has no step `{}`", self.flow.name, step.text))
                    .help = help;
            }
            return None;
        };
        let human = matches!(
            found.kind,
            StepKind::Review { .. } | StepKind::Approval { .. } | StepKind::Gate { kind: GateLevel::Soft, .. }
        );
        let deadlines = found.timing.iter().flat_map(|t| &t.deadlines);
        let escalates = deadlines.clone().any(|d| matches!(d.then, hir::Timeout::Escalate(_)));
        let ends = deadlines.clone().any(|d| !matches!(d.then, hir::Timeout::Escalate(_)));
        let (fits, help) = match subject {
            Subject::Inference => match &found.kind {
                StepKind::Infer { fallback: Some(_), .. } => (true, ""),
                StepKind::Infer { .. } => (false, "it has no `fallback`, so it is never degraded"),
                StepKind::Retrieve { corpus, .. } => match corpus.and_then(|c| crate::signatures::decl(self.c.db, c)) {
                    Some(crate::signatures::Decl::Corpus(sig)) if sig.on_mismatch == ast::MismatchPolicy::Degrade => {
                        (true, "")
                    }
                    _ => (false, "its corpus refuses another snapshot (`on mismatch refuse`), so it is never degraded"),
                },
                _ => (false, "`degraded` watches an infer step with a fallback"),
            },
            Subject::BlockingGate => {
                (matches!(found.kind, StepKind::Gate { kind: GateLevel::Block, .. }), "it watches a `block` gate")
            }
            Subject::HumanStep => (human, "a latency is of a review, a soft gate or an approval"),
            Subject::Escalating if !human => (false, "it watches a review, a soft gate or an approval"),
            Subject::Escalating => {
                (escalates, "it has no deadline that escalates (`within 24h otherwise escalate to …`)")
            }
            Subject::Ending if !human => (false, "it watches a review, a soft gate or an approval"),
            Subject::Ending => (ends, "it has no deadline that decides it or blocks (`within 48h otherwise reject`)"),
            Subject::Nothing | Subject::Status => (false, ""),
        };
        if !fits {
            let keyword = found.kind.keyword();
            self.error(
                Code::E2024,
                step.span,
                format!("`{name}({})` cannot watch {keyword} `{}`", step.text, step.text),
            )
            .help = Some(help.to_owned());
            return None;
        }
        Some(())
    }

    fn is_unparsed_step(&self, name: &str) -> bool {
        self.unparsed.iter().any(|u| u.name.as_ref().is_some_and(|n| n.text == name))
    }

    /// The window, in seconds: positive, whole minutes, at most a year.
    fn window(&mut self, m: &ast::Monitor) -> Option<i64> {
        let seconds = m.window.seconds;
        if seconds <= 0 || seconds > LONGEST_WINDOW || seconds % 60 != 0 {
            self.error(Code::E2025, m.window.span, "a monitor's window is whole minutes, up to a year").help =
                Some("write `over 7d`, `over 24h` or `over 30m`".to_owned());
            return None;
        }
        Some(seconds)
    }

    /// The threshold in the metric's measure, one the metric can cross.
    fn threshold(&mut self, m: &ast::Monitor, metric: Metric) -> Option<i64> {
        let span = m.threshold.span;
        let name = metric.name();
        let measure = metric.measure();
        let comparison = if m.above { "above" } else { "below" };
        let value = match (&m.threshold.kind, measure) {
            (A::Int(count), Measure::Count) => *count,
            (A::Percent(fraction), Measure::Rate) => {
                // Past 100% the threshold is refused below; kept in range, it cannot overflow.
                let clamped = (*fraction).clamp(Decimal::NEGATIVE_ONE, Decimal::TWO);
                let millionths = clamped * Decimal::from(1_000_000);
                if millionths.fract() != Decimal::ZERO {
                    self.error(Code::E2025, span, "a rate's threshold has at most four decimals").help =
                        Some("write `0.5%` or `0.0125%`".to_owned());
                    return None;
                }
                i64::try_from(millionths.trunc().mantissa() / 10i128.pow(millionths.trunc().scale()))
                    .unwrap_or(i64::MAX)
            }
            (A::Duration(seconds), Measure::Duration) => *seconds,
            (A::Error, _) => return None,
            (_, measure) => {
                let (kind, example) = match measure {
                    Measure::Count => ("a number of runs", "10"),
                    Measure::Rate => ("a percentage", "5%"),
                    Measure::Duration => ("a duration", "24h"),
                };
                self.error(Code::E2025, span, format!("`{name}` is compared with {kind}")).help =
                    Some(format!("write `{comparison} {example}`"));
                return None;
            }
        };
        let never = match measure {
            Measure::Count if value < 0 => Some("a count is never negative"),
            Measure::Count if !m.above && value == 0 => Some("a count is never below 0"),
            Measure::Rate if !(0..=1_000_000).contains(&value) => Some("a rate is between 0% and 100%"),
            Measure::Rate if m.above && value == 1_000_000 => Some("a rate is never above 100%"),
            Measure::Rate if !m.above && value == 0 => Some("a rate is never below 0%"),
            Measure::Duration if !m.above => Some("a latency alerts when it is above a duration"),
            Measure::Duration if value <= 0 => Some("a latency is never below zero"),
            _ => None,
        };
        if let Some(why) = never {
            self.error(Code::E2025, span, format!("this monitor can never alert: {why}"));
            return None;
        }
        Some(value)
    }

    fn severity(&mut self, m: &ast::Monitor) -> Option<Severity> {
        let names = Severity::ALL.map(Severity::as_str);
        let Some((first, rest)) = m.severity.split_first() else {
            self.error(Code::E2026, m.name.span, format!("monitor `{}` has no severity", m.name.text)).help =
                Some(format!("add `severity high` (one of {})", quoted_list(names)));
            return None;
        };
        for again in rest {
            let file = self.file();
            self.error(Code::E1018, again.span, format!("monitor `{}` says `severity` twice", m.name.text))
                .secondary
                .push(Label::new(file, first.span, "first said here"));
        }
        let severity = Severity::parse(&first.text);
        if severity.is_none() {
            self.error(Code::E2026, first.span, format!("`{}` is not a severity", first.text)).help =
                Some(format!("write one of {}", quoted_list(names)));
        }
        severity
    }

    /// The channels and roles an alert goes to.
    fn routes(&mut self, m: &ast::Monitor) -> Option<(Vec<SmolStr>, Vec<crate::db::DeclId>)> {
        let Some(((_, first), rest)) = m.routes.split_first() else {
            self.error(Code::E2026, m.name.span, format!("monitor `{}` alerts no one", m.name.text)).help =
                Some(format!("add `to governance` (a channel: {}; or roles)", quoted_list(CHANNELS)));
            return None;
        };
        for (span, _) in rest {
            self.error(Code::E1018, *span, format!("monitor `{}` says `to` twice", m.name.text)).help =
                Some("name every route in one `to`: `to governance, owner`".to_owned());
        }
        let mut channels = Vec::new();
        let mut roles = Vec::new();
        let mut ok = true;
        for route in first {
            if CHANNELS.contains(&route.text.as_str()) {
                if self.c.res.lookup(&route.text).is_some_and(|def| def.kind == DefKind::Role) {
                    ok = false;
                    let message = format!("`{}` is both a channel and a role: the route would be unclear", route.text);
                    self.error(Code::E2026, route.span, message).help =
                        Some(format!("rename role `{}`; the channels are {}", route.text, quoted_list(CHANNELS)));
                    continue;
                }
                channels.push(route.text.clone());
                continue;
            }
            match self.c.res.lookup(&route.text) {
                Some(def) if def.kind == DefKind::Role => roles.push(def.id),
                _ => {
                    ok = false;
                    let message = format!("`{}` is neither a channel nor a role", route.text);
                    self.error(Code::E2026, route.span, message).help =
                        Some(format!("route to a channel ({}) or a declared role", quoted_list(CHANNELS)));
                }
            }
        }
        ok.then_some((channels, roles))
    }
}

//! Checking `test` blocks: which flow each runs, that what it gives, mocks, decides and
//! expects names what that flow has, with values of the declared types
//! (`docs/language.md`, "Tests"). A checked test is a [`hir::Test`], which `flowc test`
//! executes.

use flow_diagnostics::{Code, Span};
use flow_syntax::ast::{self, Expectation, Ident, Mock, SmolStr, TestDecl, TestStmtKind};

use crate::db::{Db, DeclId};
use crate::hir::{self, Flow, Step, StepKind};
use crate::resolve::Resolver;
use crate::signatures::{self, Decl};
use crate::suggest;
use crate::ty::Ty;
use crate::typeck::{Binding, Checker, ReviewEnums};

/// How a run may stand when a test ends (`expect outcome …`).
pub const OUTCOMES: [&str; 5] = ["completed", "pending", "blocked", "rejected", "failed"];

/// The clock of a test that gives none: 2026-01-01T00:00:00Z.
pub const DEFAULT_CLOCK: i64 = 1_767_225_600;

/// Checks `test` against the flows of its file; `id` is the test's declaration.
pub(crate) fn check_test<'a>(
    db: &'a dyn Db,
    res: Resolver<'a>,
    id: DeclId,
    decl: &TestDecl,
    span: Span,
    flows: &[Flow],
) -> (Option<hir::Test>, Vec<flow_diagnostics::Diagnostic>) {
    let mut checker = Checker::new(db, res);
    checker.test_values = true;
    let flow = which_flow(&mut checker, decl, span, flows);
    let test = flow.map(|flow| TestChecker { c: &mut checker, flow }.check(id, decl));
    (test, checker.res.diagnostics)
}

/// The flow a test runs: the one it names, or the file's only flow.
fn which_flow<'f>(checker: &mut Checker<'_>, decl: &TestDecl, span: Span, flows: &'f [Flow]) -> Option<&'f Flow> {
    let named: Vec<&Ident> = decl
        .statements
        .iter()
        .filter_map(|s| match &s.kind {
            TestStmtKind::Flow(name) => Some(name),
            _ => None,
        })
        .collect();
    for repeated in named.iter().skip(1) {
        checker.res.error(Code::E1018, repeated.span, "a test runs one flow: `flow` is written twice");
    }
    let names = || flows.iter().map(|f| f.name.as_str());
    match named.first() {
        Some(name) => {
            let found = flows.iter().find(|f| f.name == name.text);
            if found.is_none() && !checker.is_unparsed(&name.text) {
                let help = suggest::help(&name.text, names());
                let diagnostic =
                    checker.res.error(Code::E1001, name.span, format!("this file declares no flow `{}`", name.text));
                diagnostic.help = help.or_else(|| Some("a test runs a flow declared in its own file".to_owned()));
            }
            found
        }
        None if flows.len() == 1 => flows.first(),
        None => {
            let head = Span { start: span.start, end: decl.name.span.end };
            let message = if flows.is_empty() {
                "this test has no flow to run: the file declares none".to_owned()
            } else {
                format!("this test does not say which flow it runs: the file declares {}", flows.len())
            };
            let diagnostic = checker.res.error(Code::E1001, head, message);
            diagnostic.help = match flows.first() {
                Some(first) => Some(format!("name it first in the test: `flow {}`", first.name)),
                None => Some("a test runs a flow declared in its own file".to_owned()),
            };
            None
        }
    }
}

struct TestChecker<'c, 'a, 'f> {
    c: &'c mut Checker<'a>,
    flow: &'f Flow,
}

impl TestChecker<'_, '_, '_> {
    fn check(mut self, id: DeclId, decl: &TestDecl) -> hir::Test {
        let columns = self.examples(decl);
        let mut test = hir::Test {
            id,
            name: decl.name.value.clone(),
            span: decl.name.span,
            flow: self.flow.id,
            clock: None,
            given: Vec::new(),
            params: Vec::new(),
            models: Vec::new(),
            corpora: Vec::new(),
            actions: Vec::new(),
            steps: Vec::new(),
            expectations: Vec::new(),
            columns,
            rows: Vec::new(),
        };
        // Given values and mocks are constants of the test: only example fields are in
        // scope. Expectations read the run too: its inputs, params, steps and outputs.
        for stmt in &decl.statements {
            match &stmt.kind {
                TestStmtKind::Flow(_) | TestStmtKind::Expect(_) => {}
                TestStmtKind::At(value) => {
                    if test.clock.is_some() {
                        self.c.res.error(Code::E1018, stmt.span, "a test has one clock: `at` is written twice");
                    }
                    test.clock = Some(self.c.check(value, &Ty::Timestamp, "the test's clock"));
                }
                TestStmtKind::Given { name, value } => {
                    let inputs: Vec<(&str, &Ty)> = self.flow.inputs.iter().map(|i| (i.name.as_str(), &i.ty)).collect();
                    if let Some(given) = self.value_of(("input", "given"), &inputs, name, value, &test.given) {
                        test.given.push(given);
                    }
                }
                TestStmtKind::Param { name, value } => {
                    let params: Vec<(&str, &Ty)> = self.flow.params.iter().map(|p| (p.name.as_str(), &p.ty)).collect();
                    if let Some(param) = self.value_of(("param", "set"), &params, name, value, &test.params) {
                        test.params.push(param);
                    }
                }
                TestStmtKind::Model { name, mock } => {
                    let Some((model, output)) = self.model(name) else { continue };
                    if test.models.iter().any(|(m, _)| *m == model) {
                        self.c.res.error(Code::E1018, name.span, format!("model `{}` is mocked twice", name.text));
                        continue;
                    }
                    let context = || format!("what model `{}` returns", name.text);
                    let mock = self.mock(mock, &output, &context);
                    test.models.push((model, mock));
                }
                TestStmtKind::Corpus { name, mock } => {
                    let Some((corpus, ty)) = self.mocked(name, crate::names::DefKind::Corpus) else { continue };
                    if test.corpora.iter().any(|(c, _)| *c == corpus) {
                        self.c.res.error(Code::E1018, name.span, format!("corpus `{}` is mocked twice", name.text));
                        continue;
                    }
                    let context = || format!("what corpus `{}` gives", name.text);
                    let mock = self.mock(mock, &ty, &context);
                    test.corpora.push((corpus, mock));
                }
                TestStmtKind::Action { name, mock } => {
                    let Some((index, step)) = self.step(name, &["action"]) else { continue };
                    if test.actions.iter().any(|(s, _)| *s == index) {
                        self.c.res.error(Code::E1018, name.span, format!("action `{}` is mocked twice", name.text));
                        continue;
                    }
                    let context = || format!("what action `{}` returns", name.text);
                    let ty = step.ty.clone();
                    let mock = self.mock(mock, &ty, &context);
                    test.actions.push((index, mock));
                }
                TestStmtKind::Decide { step, by, outcome, reason } => {
                    let Some((index, found)) = self.step(step, &["review", "approval", "gate"]) else { continue };
                    // A review takes one of its reasons (when it declares any); a soft gate
                    // or an approval a free reason code.
                    let (outcomes, reasons) = match &found.kind {
                        StepKind::Review { outcomes, reasons, .. } => (outcomes.clone(), Some(reasons.clone())),
                        StepKind::Gate { kind: ast::GateLevel::Soft, .. } | StepKind::Approval { .. } => {
                            (vec!["approve".into(), "reject".into()], None)
                        }
                        _ => {
                            let diagnostic = self.c.res.error(
                                Code::E1015,
                                step.span,
                                format!("gate `{}` is not decided: only a soft gate waits for a decision", step.text),
                            );
                            diagnostic.help =
                                Some(format!("a blocking gate is overridden: `override {} by …`", step.text));
                            continue;
                        }
                    };
                    if !outcomes.contains(&outcome.text) {
                        let diagnostic = self.c.res.error(
                            Code::E1013,
                            outcome.span,
                            format!("`{}` is not an outcome of `{}`", outcome.text, step.text),
                        );
                        diagnostic.help = Some(format!("write one of {}", crate::typeck::quoted_list(&outcomes)));
                    }
                    match (reason, &reasons) {
                        (Some(reason), Some(declared)) if !declared.contains(&reason.text) => {
                            let diagnostic = self.c.res.error(
                                Code::E1013,
                                reason.span,
                                format!("`{}` is not a reason of `{}`", reason.text, step.text),
                            );
                            diagnostic.help = Some(if declared.is_empty() {
                                format!("`{}` declares no reasons: leave out `because …`", step.text)
                            } else {
                                format!("write one of {}", crate::typeck::quoted_list(declared))
                            });
                        }
                        (None, None) => {
                            let diagnostic = self.c.res.error(
                                Code::E1008,
                                stmt.span,
                                format!("a decision of `{}` needs a reason code", step.text),
                            );
                            diagnostic.help = Some(format!("add one: `… : {} because budget_ok`", outcome.text));
                        }
                        (None, Some(declared)) if !declared.is_empty() => {
                            let diagnostic = self.c.res.error(
                                Code::E1008,
                                stmt.span,
                                format!("a decision of review `{}` needs one of its reasons", step.text),
                            );
                            diagnostic.help = Some(format!(
                                "add one: `… : {} because {}`",
                                outcome.text,
                                declared.first().map_or("…", |r| r.as_str())
                            ));
                        }
                        _ => {}
                    }
                    test.steps.push(hir::TestDecision {
                        span: stmt.span,
                        step: index,
                        principal: by.id.text.clone(),
                        roles: self.roles(by),
                        outcome: outcome.text.clone(),
                        reason: reason.as_ref().map(|r| r.text.clone()),
                        overrides: None,
                        after: None,
                    });
                }
                TestStmtKind::Override { gate, by, reason } => {
                    let Some((index, found)) = self.step(gate, &["gate"]) else { continue };
                    if !matches!(found.kind, StepKind::Gate { kind: ast::GateLevel::Block, .. }) {
                        let diagnostic = self.c.res.error(
                            Code::E1015,
                            gate.span,
                            format!("gate `{}` does not block: only a blocking gate is overridden", gate.text),
                        );
                        diagnostic.help = Some(format!("a soft gate is decided: `decide {} by …`", gate.text));
                        continue;
                    }
                    test.steps.push(hir::TestDecision {
                        span: stmt.span,
                        step: index,
                        principal: by.id.text.clone(),
                        roles: self.roles(by),
                        outcome: "override".into(),
                        reason: None,
                        overrides: Some(reason.value.clone()),
                        after: None,
                    });
                }
                TestStmtKind::After(duration) => {
                    if duration.seconds <= 0 {
                        self.c
                            .res
                            .error(Code::E2023, duration.span, "time passes forward: give a positive duration")
                            .help = Some("write `after 49h`".to_owned());
                        continue;
                    }
                    test.steps.push(hir::TestDecision {
                        span: stmt.span,
                        step: 0,
                        principal: SmolStr::default(),
                        roles: Vec::new(),
                        outcome: SmolStr::default(),
                        reason: None,
                        overrides: None,
                        after: Some(duration.seconds),
                    });
                }
            }
        }
        let missing: Vec<&str> = (self.flow.inputs.iter().enumerate())
            .filter(|(index, _)| !test.given.iter().any(|(given, _)| *given as usize == *index))
            .map(|(_, input)| input.name.as_str())
            .collect();
        if !missing.is_empty() {
            let names = crate::typeck::quoted_list(&missing);
            let diagnostic = self.c.res.error(
                Code::E1008,
                decl.name.span,
                format!("this test gives no value for {} {names} of flow `{}`", plural(missing.len()), self.flow.name),
            );
            diagnostic.help = Some(format!("give each input: `given {} = …`", missing[0]));
        }
        self.bind_run();
        for stmt in &decl.statements {
            let TestStmtKind::Expect(expectation) = &stmt.kind else { continue };
            let checked = match expectation {
                Expectation::Outcome(outcome) => {
                    if !OUTCOMES.contains(&outcome.text.as_str()) {
                        let diagnostic =
                            self.c.res.error(Code::E1013, outcome.span, format!("a run cannot end `{}`", outcome.text));
                        diagnostic.help = Some(format!("write one of {}", crate::typeck::quoted_list(OUTCOMES)));
                        continue;
                    }
                    hir::ExpectKind::Outcome(outcome.text.clone())
                }
                Expectation::Gate { gate, held } => {
                    let Some((index, _)) = self.step(gate, &["gate"]) else { continue };
                    hir::ExpectKind::Gate { step: index, held: *held }
                }
                Expectation::Action { action, ran } => {
                    let Some((index, _)) = self.step(action, &["action"]) else { continue };
                    hir::ExpectKind::Action { step: index, ran: *ran }
                }
                Expectation::Holds(condition) => {
                    hir::ExpectKind::Holds(self.c.check(condition, &Ty::Bool, "an expectation"))
                }
            };
            test.expectations.push(hir::Expect { span: stmt.span, kind: checked });
        }
        test.rows = self.rows(decl, &test.columns);
        test
    }

    /// The columns of the examples: the first row's fields and types, bound by name for
    /// the test's expressions.
    fn examples(&mut self, decl: &TestDecl) -> Vec<(SmolStr, Ty)> {
        let Some(first) = decl.examples.first() else { return Vec::new() };
        let mut columns: Vec<(SmolStr, Ty)> = Vec::new();
        for field in &first.fields {
            if columns.iter().any(|(name, _)| *name == field.name.text) {
                self.c.res.error(Code::E1018, field.name.span, format!("`{}` is given twice", field.name.text));
                continue;
            }
            // Only the type is wanted here: `rows` checks this value again and reports
            // what is wrong with it.
            let reported = self.c.res.diagnostics.len();
            let value = self.c.infer(&field.value, None);
            self.c.res.diagnostics.truncate(reported);
            columns.push((field.name.text.clone(), value.ty.clone()));
        }
        for (index, (name, ty)) in columns.iter().enumerate() {
            self.c.values.insert(name.clone(), Binding::FnParam { index: index as u32, ty: ty.clone() });
        }
        columns
    }

    /// Every row, checked against the columns: the same fields, of the same types.
    fn rows(&mut self, decl: &TestDecl, columns: &[(SmolStr, Ty)]) -> Vec<hir::ExampleRow> {
        let mut rows = Vec::new();
        for row in &decl.examples {
            let mut values = Vec::new();
            for (name, ty) in columns {
                match row.fields.iter().find(|f| f.name.text == *name) {
                    Some(field) => {
                        let context = || format!("example field `{name}`");
                        values.push(self.c.check(&field.value, ty, &context));
                    }
                    None => {
                        let diagnostic = self.c.res.error(
                            Code::E1008,
                            row.span,
                            format!("this example gives no `{name}`, which the first example gives"),
                        );
                        diagnostic.help = Some("every example gives the same fields".to_owned());
                    }
                }
            }
            for field in &row.fields {
                if !columns.iter().any(|(name, _)| *name == field.name.text) {
                    let diagnostic = self.c.res.error(
                        Code::E1007,
                        field.name.span,
                        format!("`{}` is not a field of the first example", field.name.text),
                    );
                    diagnostic.help = Some("every example gives the same fields".to_owned());
                }
            }
            rows.push(hir::ExampleRow { span: row.span, values });
        }
        rows
    }

    /// Puts the run's values in scope for expectations: inputs, params, steps (gates give
    /// no value) and outputs, by name.
    fn bind_run(&mut self) {
        let flow = self.flow;
        for (index, input) in flow.inputs.iter().enumerate() {
            let binding = Binding::Input { index: index as u32, ty: input.ty.clone(), source: input.source };
            self.c.values.insert(input.name.clone(), binding);
        }
        for (index, param) in flow.params.iter().enumerate() {
            self.c.values.insert(param.name.clone(), Binding::Param { index: index as u32, ty: param.ty.clone() });
        }
        for (index, step) in flow.steps.iter().enumerate() {
            let index = index as u32;
            let binding = match &step.kind {
                StepKind::Gate { .. } => Binding::Gate,
                StepKind::Emit { output, .. } => {
                    let ty = output.and_then(|o| flow.outputs.get(o as usize)).map_or(Ty::Error, |o| o.ty.clone());
                    Binding::Step { index, ty, keyword: "emit" }
                }
                kind => {
                    if let StepKind::Infer { .. } | StepKind::Retrieve { .. } = kind {
                        self.c.infers.insert(index, step.name.to_string());
                    }
                    if let StepKind::Review { outcomes, reasons, condition, .. } = kind {
                        let enums = ReviewEnums {
                            outcomes: outcomes.clone(),
                            reasons: reasons.clone(),
                            conditional: condition.is_some(),
                        };
                        self.c.reviews.insert(index, enums);
                    }
                    Binding::Step { index, ty: step.ty.clone(), keyword: kind.keyword() }
                }
            };
            self.c.values.insert(step.name.clone(), binding);
        }
    }

    /// The value a test gives to `name`, one of the flow's `declared` inputs or params
    /// (`what`: the kind and how it is given), checked against its type; `None` when the
    /// flow declares no such one or the test gives it already (reported).
    fn value_of(
        &mut self,
        (what, verb): (&str, &str),
        declared: &[(&str, &Ty)],
        name: &Ident,
        value: &ast::Expr,
        already: &[(u32, hir::Expr)],
    ) -> Option<(u32, hir::Expr)> {
        let Some(index) = declared.iter().position(|(declared, _)| *declared == name.text) else {
            self.unknown(name, what, declared.iter().map(|(n, _)| *n));
            return None;
        };
        if already.iter().any(|(i, _)| *i as usize == index) {
            self.c.res.error(Code::E1018, name.span, format!("{what} `{}` is {verb} twice", name.text));
            return None;
        }
        let context = || format!("{what} `{}`", name.text);
        Some((index as u32, self.c.check(value, declared[index].1, &context)))
    }

    /// The model `name` names, which a step of the flow infers with, and its output type.
    fn model(&mut self, name: &Ident) -> Option<(DeclId, Ty)> {
        self.mocked(name, crate::names::DefKind::Model)
    }

    /// The model or corpus (`kind`) `name` names, which a step of the flow calls or
    /// searches, and the type of what it answers.
    fn mocked(&mut self, name: &Ident, kind: crate::names::DefKind) -> Option<(DeclId, Ty)> {
        let corpus = kind == crate::names::DefKind::Corpus;
        let used: Vec<DeclId> = self
            .flow
            .steps
            .iter()
            .filter_map(|s| match &s.kind {
                StepKind::Infer { model, .. } if !corpus => *model,
                StepKind::Retrieve { corpus: searched, .. } if corpus => *searched,
                _ => None,
            })
            .collect();
        let (what, verb, steps, does) = if corpus {
            ("corpus", "searches nothing in", "retrieve", "search")
        } else {
            ("model", "infers nothing with", "infer", "call")
        };
        let def = self.c.res.lookup(&name.text).filter(|d| d.kind == kind);
        match def {
            Some(def) if used.contains(&def.id) => match signatures::decl(self.c.db, def.id) {
                Some(Decl::Model(sig)) => Some((def.id, sig.output.clone())),
                Some(Decl::Corpus(sig)) => Some((def.id, Ty::List(Box::new(sig.ty.clone())))),
                _ => None,
            },
            Some(_) => {
                let diagnostic = self.c.res.error(
                    Code::E1015,
                    name.span,
                    format!("flow `{}` {verb} {what} `{}`", self.flow.name, name.text),
                );
                diagnostic.help = Some(format!("mock the {what}s the flow's `{steps}` steps {does}"));
                None
            }
            None if self.c.is_unparsed(&name.text) => None,
            None => {
                let names: Vec<String> = used.iter().map(|id| signatures::decl_name(self.c.db, *id)).collect();
                let help = suggest::help(&name.text, names.iter().map(String::as_str));
                let diagnostic =
                    self.c.res.error(Code::E1001, name.span, format!("cannot find {what} `{}`", name.text));
                diagnostic.help = help;
                None
            }
        }
    }

    /// The step `name` names, which must be of one of `kinds` (keywords).
    fn step(&mut self, name: &Ident, kinds: &[&str]) -> Option<(u32, &Step)> {
        let flow = self.flow;
        match flow.steps.iter().enumerate().find(|(_, s)| s.name == name.text) {
            Some((index, step)) if kinds.contains(&step.kind.keyword()) => Some((index as u32, step)),
            Some((_, step)) => {
                let wanted = kinds.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(" or ");
                self.c.res.error(
                    Code::E1015,
                    name.span,
                    format!("`{}` is a `{}` step, not {wanted}", name.text, step.kind.keyword()),
                );
                None
            }
            None => {
                let candidates =
                    flow.steps.iter().filter(|s| kinds.contains(&s.kind.keyword())).map(|s| s.name.as_str());
                self.unknown(name, &format!("{} step", kinds.join(" or ")), candidates);
                None
            }
        }
    }

    fn unknown<'n>(&mut self, name: &Ident, what: &str, candidates: impl IntoIterator<Item = &'n str>) {
        if self.c.is_unparsed(&name.text) {
            return;
        }
        let help = suggest::help(&name.text, candidates);
        let diagnostic = self.c.res.error(
            Code::E1001,
            name.span,
            format!("flow `{}` has no {what} `{}`", self.flow.name, name.text),
        );
        diagnostic.help = help;
    }

    fn mock<C: crate::typeck::Describe + ?Sized>(&mut self, mock: &Mock, ty: &Ty, context: &C) -> hir::TestMock {
        match mock {
            Mock::Returns(value) => hir::TestMock::Returns(self.c.check(value, ty, context)),
            Mock::Fails => hir::TestMock::Fails,
        }
    }

    fn roles(&mut self, by: &ast::TestPrincipal) -> Vec<DeclId> {
        by.roles.iter().filter_map(|role| self.c.res.resolve_role(role)).collect()
    }
}

fn plural(count: usize) -> &'static str {
    if count == 1 { "input" } else { "inputs" }
}

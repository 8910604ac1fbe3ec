//! Plans for people: expressions and values in the language's own syntax, and a text dump
//! of a whole plan (nodes in execution order with stable numbers), which is what snapshot
//! tests and reviewers read.

use std::fmt::Write;

use rust_decimal::Decimal;
use smol_str::SmolStr;

use crate::expr::{Expr, ExprKind, Literal, Part};
use crate::plan::{DescriptionKey, EdgeKind, NodeKind, Plan, Requirement};
use crate::time;
use crate::verify::VerifiedPlan;

/// A decimal as written in flows, keeping its digits after the point, with `_` between
/// groups of three digits when the whole part has five or more (`10_000.50`).
pub fn decimal(value: Decimal) -> String {
    group(value, '_', 5)
}

/// A decimal as people read it in prose: `10,000.50`.
pub fn decimal_prose(value: Decimal) -> String {
    group(value, ',', 4)
}

fn group(value: Decimal, separator: char, from: usize) -> String {
    let text = value.to_string();
    let (sign, unsigned) = text.strip_prefix('-').map_or(("", text.as_str()), |rest| ("-", rest));
    let (whole, fraction) = unsigned.split_once('.').map_or((unsigned, None), |(w, f)| (w, Some(f)));
    let mut grouped = String::new();
    for (i, c) in whole.chars().enumerate() {
        if whole.len() >= from && i > 0 && (whole.len() - i) % 3 == 0 {
            grouped.push(separator);
        }
        grouped.push(c);
    }
    match fraction {
        Some(fraction) => format!("{sign}{grouped}.{fraction}"),
        None => format!("{sign}{grouped}"),
    }
}

/// A text in the literal syntax, with the escapes the language knows.
pub fn text_literal(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '{' => out.push_str("\\{"),
            '}' => out.push_str("\\}"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

pub fn literal(literal: &Literal) -> String {
    match literal {
        Literal::Int(n) => decimal(Decimal::from(*n)),
        Literal::Decimal(d) => decimal(*d),
        Literal::Money(money) => format!("{} {}", decimal(money.amount), money.currency),
        Literal::Duration(seconds) => time::format_duration(*seconds),
        Literal::Timestamp(t) => format!("@{t}"),
        Literal::Bool(b) => b.to_string(),
        Literal::Text(text) => text_literal(text),
    }
}

/// A literal as people read it in prose: `10,000 USD`, `24h`, `true`.
pub fn literal_prose(literal: &Literal) -> String {
    match literal {
        Literal::Int(n) => decimal_prose(Decimal::from(*n)),
        Literal::Decimal(d) => decimal_prose(*d),
        Literal::Money(money) => format!("{} {}", decimal_prose(money.amount), money.currency),
        other => self::literal(other),
    }
}

/// An expression in source syntax; function parameters print as `$0`, `$1`, ….
pub fn expr(expr: &Expr) -> String {
    Printer { params: &[], explicit: false }.print(expr, &mut Vec::new())
}

/// An expression of a function's body, with its parameters' names.
pub fn fn_expr(expr: &Expr, params: &[SmolStr]) -> String {
    Printer { params, explicit: false }.print(expr, &mut Vec::new())
}

/// An expression with the plan's conversions shown: a widening as `(x as Decimal)`, an
/// optional proved present as `x!`.
pub fn explicit_expr(expr: &Expr, params: &[SmolStr]) -> String {
    Printer { params, explicit: true }.print(expr, &mut Vec::new())
}

struct Printer<'a> {
    params: &'a [SmolStr],
    /// Whether to show conversions.
    explicit: bool,
}

impl Printer<'_> {
    /// How tightly an expression binds, for parentheses: higher binds tighter.
    fn precedence(&self, expr: &Expr) -> u8 {
        match &expr.kind {
            ExprKind::Binary { op, .. } => op.precedence(),
            ExprKind::Not(_) => 3,
            ExprKind::Neg(_) => 7,
            ExprKind::If { .. } => 0,
            ExprKind::Widen(_) if self.explicit => 9,
            ExprKind::Widen(inner) | ExprKind::Unwrap(inner) => self.precedence(inner),
            _ => 9,
        }
    }

    /// `expr`, in parentheses when it binds more loosely than `min`.
    fn operand(&self, expr: &Expr, min: u8, locals: &mut Vec<SmolStr>) -> String {
        let text = self.print(expr, locals);
        if self.precedence(expr) < min { format!("({text})") } else { text }
    }

    fn print(&self, expr: &Expr, locals: &mut Vec<SmolStr>) -> String {
        crate::with_stack(|| self.print_inner(expr, locals))
    }

    fn print_inner(&self, expr: &Expr, locals: &mut Vec<SmolStr>) -> String {
        match &expr.kind {
            ExprKind::Lit(lit) => literal(lit),
            ExprKind::Interpolate(parts) => {
                let mut out = String::from("\"");
                for part in parts {
                    match part {
                        Part::Text(text) => {
                            let escaped = text_literal(text);
                            out.push_str(&escaped[1..escaped.len() - 1]);
                        }
                        Part::Expr(e) => {
                            out.push('{');
                            out.push_str(&self.print(e, locals));
                            out.push('}');
                        }
                    }
                }
                out.push('"');
                out
            }
            ExprKind::Node(name) | ExprKind::Variant(name) => name.to_string(),
            ExprKind::Param(index) => {
                self.params.get(*index as usize).map_or_else(|| format!("${index}"), ToString::to_string)
            }
            ExprKind::Local(depth) => {
                locals.iter().rev().nth(*depth as usize).map_or_else(|| format!("#{depth}"), ToString::to_string)
            }
            ExprKind::Field { base, field } => format!("{}.{field}", self.operand(base, 9, locals)),
            ExprKind::Unwrap(inner) if self.explicit => format!("{}!", self.operand(inner, 9, locals)),
            ExprKind::Widen(inner) if self.explicit => format!("({} as {})", self.print(inner, locals), expr.ty),
            ExprKind::Unwrap(inner) | ExprKind::Widen(inner) => self.print(inner, locals),
            ExprKind::Call { function, args } => {
                let args: Vec<String> = args.iter().map(|a| self.print(a, locals)).collect();
                format!("{function}({})", args.join(", "))
            }
            ExprKind::Builtin { builtin, args } => {
                let args: Vec<String> = args.iter().map(|a| self.print(a, locals)).collect();
                format!("{}({})", builtin.name(), args.join(", "))
            }
            ExprKind::Now => "now()".to_owned(),
            ExprKind::StartedBy => "started_by()".to_owned(),
            ExprKind::Declassify { value, reason } => {
                format!("declassify({}, {})", self.print(value, locals), text_literal(reason))
            }
            ExprKind::Age(input) => format!("age({input})"),
            ExprKind::Stale(input) => format!("stale({input})"),
            ExprKind::Degraded(step) => format!("degraded({step})"),
            ExprKind::Quantifier { all, var, list, body } => {
                let list = self.print(list, locals);
                locals.push(var.clone());
                let body = self.print(body, locals);
                locals.pop();
                format!("{}({list}, {var} => {body})", if *all { "all" } else { "any" })
            }
            ExprKind::List(items) => {
                let items: Vec<String> = items.iter().map(|i| self.print(i, locals)).collect();
                format!("[{}]", items.join(", "))
            }
            ExprKind::Record(fields) => {
                let fields: Vec<String> =
                    fields.iter().map(|f| format!("{}: {}", f.name, self.print(&f.value, locals))).collect();
                format!("{} {{ {} }}", expr.ty, fields.join(", "))
            }
            ExprKind::Not(operand) => format!("not {}", self.operand(operand, 3, locals)),
            ExprKind::Neg(operand) => format!("-{}", self.operand(operand, 7, locals)),
            ExprKind::Binary { op, lhs, rhs } => {
                let level = op.precedence();
                // Comparisons do not chain, so both sides of one bind tighter.
                let (left, right) = if op.is_comparison() { (level + 1, level + 1) } else { (level, level + 1) };
                format!("{} {} {}", self.operand(lhs, left, locals), op.as_str(), self.operand(rhs, right, locals))
            }
            ExprKind::If { branches, otherwise } => {
                let mut out = String::new();
                for (i, branch) in branches.iter().enumerate() {
                    if i > 0 {
                        out.push_str(" else ");
                    }
                    let _ = write!(
                        out,
                        "if {} then {}",
                        self.print(&branch.condition, locals),
                        self.operand(&branch.then, 1, locals)
                    );
                }
                let _ = write!(out, " else {}", self.print(otherwise, locals));
                out
            }
        }
    }
}

/// A requirement as written in a matrix row.
pub fn requirement(terms: &[Requirement]) -> String {
    let terms: Vec<String> = terms
        .iter()
        .map(|term| match term {
            Requirement::Auto => "auto".to_owned(),
            Requirement::Count { count, role } => format!("{count} of {role}"),
            Requirement::AllOf(roles) => format!("all of {}", roles.join(", ")),
        })
        .collect();
    terms.join(", ")
}

/// What a node does, in one line of the language's syntax (without its name).
pub fn node_summary(kind: &NodeKind) -> String {
    summary(kind, &expr)
}

fn summary(kind: &NodeKind, expr: &dyn Fn(&Expr) -> String) -> String {
    match kind {
        NodeKind::Input { source: Some(source) } => format!("from {source}"),
        NodeKind::Input { source: None } => String::new(),
        NodeKind::Param { default } => format!("= {}", expr(default)),
        NodeKind::Let { value } | NodeKind::Emit { value } => format!("= {}", expr(value)),
        NodeKind::Gate { level, condition, approvers, message } => {
            let mut out = format!("{} when {}", level.as_str(), expr(condition));
            if !approvers.is_empty() {
                let _ = write!(out, " approve by {}", approvers.join(", "));
            }
            if let Some(message) = message {
                let _ = write!(out, " message {}", text_literal(message));
            }
            out
        }
        NodeKind::Infer { model, args, fallback } => {
            let args: Vec<String> = args.iter().map(|a| format!("{}: {}", a.name, expr(&a.value))).collect();
            let mut out = format!("= {model}({})", args.join(", "));
            if let Some(fallback) = fallback {
                let _ = write!(out, " fallback {}", expr(fallback));
            }
            out
        }
        NodeKind::Retrieve { corpus, query, top } => format!("= {corpus}({}) top {top}", expr(query)),
        NodeKind::Review { roles, condition, outcomes, reasons, edits } => {
            let mut out = format!("by {}", roles.join(", "));
            if let Some(condition) = condition {
                let _ = write!(out, " when {}", expr(condition));
            }
            let _ = write!(out, " outcomes {} reasons {}", outcomes.join(", "), reasons.join(", "));
            if !edits.is_empty() {
                let edits: Vec<String> = edits.iter().map(ToString::to_string).collect();
                let _ = write!(out, " may edit {}", edits.join(", "));
            }
            out
        }
        NodeKind::Approval { rows, distinct_from } => {
            let mut out = format!("{} rows", rows.len());
            if !distinct_from.is_empty() {
                let principals: Vec<String> = distinct_from.iter().map(expr).collect();
                let _ = write!(out, ", distinct from {}", principals.join(", "));
            }
            out
        }
        NodeKind::Action { system, action, args, condition, idempotency } => {
            let args: Vec<String> = args.iter().map(|a| format!("{}: {}", a.name, expr(&a.value))).collect();
            let mut out = format!("= {system}.{action}({})", args.join(", "));
            if let Some(condition) = condition {
                let _ = write!(out, " when {}", expr(condition));
            }
            if let Some(key) = idempotency {
                let _ = write!(out, " idempotency {}", expr(key));
            }
            out
        }
    }
}

fn describe(out: &mut String, plan: &Plan, key: DescriptionKey<'_>, indent: &str) {
    if let Some(text) = plan.description(key) {
        for line in text.lines() {
            let _ = writeln!(out, "{indent}/// {line}");
        }
    }
}

/// The whole plan as text: header, declarations, grants and outputs, then every node in
/// execution order, numbered, with the edges it waits for.
/// A human step's deadlines as the flow writes them: `within 48h otherwise escalate to cfo,
/// within 5d otherwise reject because no_answer, remind 4h before`.
pub fn timing(timing: &crate::plan::Timing) -> String {
    let mut parts: Vec<String> = timing
        .deadlines
        .iter()
        .map(|d| format!("within {} otherwise {}", time::format_duration(d.after), d.then.describe()))
        .collect();
    parts.extend(timing.reminders.iter().map(|r| format!("remind {} before", time::format_duration(*r))));
    if timing.forever {
        parts.push("may wait forever".to_owned());
    }
    parts.join(", ")
}

pub fn dump(verified: &VerifiedPlan) -> String {
    let plan = verified.plan();
    let body = &plan.plan;
    let mut out = String::new();
    describe(&mut out, plan, DescriptionKey::Flow, "");
    let flow = &body.flow;
    let _ = writeln!(out, "plan {} {}", flow.name, flow.version);
    let _ = writeln!(out, "  hash {}", plan.hash);
    let _ = writeln!(out, "  format {} (language {})", plan.format_version, plan.language_version);
    let _ = writeln!(out, "  owner {}, steward {}", flow.owner, flow.steward);
    if flow.migrate_waiting {
        let _ = writeln!(out, "  migrate waiting");
    }
    if let Some(retain) = body.evidence.retain {
        let _ = writeln!(out, "  evidence retain {}", time::format_duration(retain));
    }
    let section = |out: &mut String, title: &str, empty: bool| {
        if !empty {
            let _ = writeln!(out, "\n{title}");
        }
    };
    section(&mut out, "roles", body.roles.is_empty());
    for role in &body.roles {
        describe(&mut out, plan, DescriptionKey::Role(&role.name), "  ");
        let extends =
            if role.extends.is_empty() { String::new() } else { format!(" extends {}", role.extends.join(", ")) };
        let _ = writeln!(out, "  role {}{extends}", role.name);
    }
    section(&mut out, "labels", body.labels.is_empty());
    for label in &body.labels {
        describe(&mut out, plan, DescriptionKey::Label(label), "  ");
        let _ = writeln!(out, "  label {label}");
    }
    section(&mut out, "types", body.records.is_empty() && body.enums.is_empty());
    for e in &body.enums {
        describe(&mut out, plan, DescriptionKey::Enum(&e.name), "  ");
        let _ = writeln!(out, "  enum {} {{ {} }}", e.name, e.variants.join(", "));
    }
    for record in &body.records {
        describe(&mut out, plan, DescriptionKey::Record(&record.name), "  ");
        let _ = writeln!(out, "  type {} {{", record.name);
        for field in &record.fields {
            describe(&mut out, plan, DescriptionKey::Field(&record.name, &field.name), "    ");
            let labels: String = field.labels.iter().map(|l| format!(" @{l}")).collect();
            let _ = writeln!(out, "    {}: {}{labels}", field.name, field.ty);
        }
        let _ = writeln!(out, "  }}");
    }
    section(&mut out, "sources", body.sources.is_empty());
    for source in &body.sources {
        describe(&mut out, plan, DescriptionKey::Source(&source.name), "  ");
        let _ = write!(out, "  source {}: {} authority {}", source.name, source.ty, text_literal(&source.authority));
        if let Some(freshness) = source.freshness {
            let _ = write!(out, " freshness {}", time::format_duration(freshness));
        }
        if let Some(as_of) = &source.as_of {
            let _ = write!(out, " as_of {as_of}");
        }
        out.push('\n');
    }
    section(&mut out, "models", body.models.is_empty());
    for model in &body.models {
        describe(&mut out, plan, DescriptionKey::Model(&model.name), "  ");
        let _ = writeln!(
            out,
            "  model {} provider {} name {} version {}",
            model.name,
            text_literal(&model.provider),
            text_literal(&model.model_name),
            text_literal(&model.version)
        );
        let _ = writeln!(out, "    digest {}", model.digest);
        if let Some(prompt) = &model.prompt {
            let _ = writeln!(out, "    prompt {} ({} bytes)", prompt.hash, prompt.text.len());
        }
        let inputs: Vec<String> = model.inputs.iter().map(|p| format!("{}: {}", p.name, p.ty)).collect();
        let _ = writeln!(out, "    input ({}) output {}", inputs.join(", "), model.output);
        if !model.clearance.is_empty() {
            let _ = writeln!(out, "    clearance {}", model.clearance.join(", "));
        }
    }
    section(&mut out, "corpora", body.corpora.is_empty());
    for corpus in &body.corpora {
        describe(&mut out, plan, DescriptionKey::Corpus(&corpus.name), "  ");
        let _ = writeln!(
            out,
            "  corpus {}: {} retriever {} authority {}",
            corpus.name,
            corpus.document,
            text_literal(&corpus.retriever),
            text_literal(&corpus.authority)
        );
        let _ =
            write!(out, "    snapshot {} on mismatch {}", text_literal(&corpus.snapshot), corpus.on_mismatch.as_str());
        if let Some(freshness) = corpus.freshness {
            let _ = write!(out, " freshness {}", time::format_duration(freshness));
        }
        out.push('\n');
        if !corpus.labels.is_empty() {
            let _ = writeln!(out, "    labels {}", corpus.labels.join(", "));
        }
        if !corpus.clearance.is_empty() {
            let _ = writeln!(out, "    clearance {}", corpus.clearance.join(", "));
        }
    }
    section(&mut out, "systems", body.systems.is_empty());
    for system in &body.systems {
        describe(&mut out, plan, DescriptionKey::System(&system.name), "  ");
        let clearance = if system.clearance.is_empty() {
            String::new()
        } else {
            format!(" clearance {}", system.clearance.join(", "))
        };
        let _ = writeln!(out, "  system {}{clearance}", system.name);
        for action in &system.actions {
            describe(&mut out, plan, DescriptionKey::Action(&system.name, &action.name), "    ");
            let params: Vec<String> = action.params.iter().map(|p| format!("{}: {}", p.name, p.ty)).collect();
            let _ = writeln!(out, "    action {}({}) -> {}", action.name, params.join(", "), action.result);
        }
    }
    section(&mut out, "functions", body.functions.is_empty());
    for function in &body.functions {
        describe(&mut out, plan, DescriptionKey::Function(&function.name), "  ");
        let params: Vec<String> = function.params.iter().map(|p| format!("{}: {}", p.name, p.ty)).collect();
        let names: Vec<SmolStr> = function.params.iter().map(|p| p.name.clone()).collect();
        let _ = writeln!(
            out,
            "  fn {}({}) -> {} = {}",
            function.name,
            params.join(", "),
            function.result,
            explicit_expr(&function.body, &names)
        );
    }
    section(&mut out, "access", body.grants.is_empty());
    for grant in &body.grants {
        let target = grant.target.as_ref().map(|t| format!(" {t}")).unwrap_or_default();
        let _ = writeln!(out, "  {}{target} by {}", grant.kind.as_str(), grant.roles.join(", "));
    }
    section(&mut out, "monitors", body.monitors.is_empty());
    for monitor in &body.monitors {
        let _ = writeln!(
            out,
            "  monitor {}: {} severity {} to {}",
            monitor.name,
            monitor.describe(),
            monitor.severity.as_str(),
            monitor.routes.join(", ")
        );
    }
    section(&mut out, "outputs", body.outputs.is_empty());
    for output in &body.outputs {
        describe(&mut out, plan, DescriptionKey::Output(&output.name), "  ");
        let _ = writeln!(out, "  output {}: {}", output.name, output.ty);
    }
    let _ = writeln!(out, "\nnodes, in execution order");
    let width = verified.order().len().to_string().len();
    let position: std::collections::BTreeMap<&str, usize> =
        verified.order().iter().enumerate().map(|(i, id)| (verified.node(*id).name.as_str(), i + 1)).collect();
    for (i, &id) in verified.order().iter().enumerate() {
        let node = verified.node(id);
        describe(&mut out, plan, DescriptionKey::Node(&node.name), &" ".repeat(width + 3));
        let ty = match node.ty {
            crate::ty::Ty::Nothing | crate::ty::Ty::Review(_) | crate::ty::Ty::Approval(_) => String::new(),
            ref ty => format!(": {ty}"),
        };
        let mut summary = summary(&node.kind, &|e| explicit_expr(e, &[]));
        if !node.regardless.is_empty() {
            let _ = write!(summary, " regardless of {}", node.regardless.join(", "));
        }
        if let Some(timing) = &node.timing {
            let _ = write!(summary, " {}", self::timing(timing));
        }
        let space = match (&node.kind, summary.is_empty()) {
            (NodeKind::Gate { .. }, _) => ": ",
            (_, true) => "",
            (_, false) => " ",
        };
        let _ = writeln!(out, "  {:>width$} {} {}{ty}{space}{summary}", i + 1, node.kind.keyword(), node.name);
        if let NodeKind::Approval { rows, .. } = &node.kind {
            for row in rows {
                let condition = row
                    .condition
                    .as_ref()
                    .map_or_else(|| "otherwise".to_owned(), |c| format!("when {}", explicit_expr(c, &[])));
                let _ = writeln!(out, "  {:>width$}   {condition} => {}", "", requirement(&row.requirement));
            }
        }
        let mut waits: Vec<String> = Vec::new();
        for kind in [EdgeKind::Data, EdgeKind::Governance, EdgeKind::Edited] {
            let mut from: Vec<(usize, &str)> = verified
                .predecessors(id)
                .iter()
                .filter(|(_, k)| *k == kind)
                .map(|(p, _)| {
                    let name = verified.node(*p).name.as_str();
                    (position.get(name).copied().unwrap_or(0), name)
                })
                .collect();
            from.sort();
            if !from.is_empty() {
                let names: Vec<String> = from.iter().map(|(n, name)| format!("{name} ({n})")).collect();
                waits.push(format!("{} {}", kind.as_str(), names.join(", ")));
            }
        }
        if !waits.is_empty() {
            let _ = writeln!(out, "  {:>width$}   after {}", "", waits.join("; "));
        }
    }
    out
}

//! Completion in context: item keywords where an item starts, fields after `.`, enum
//! variants after an enum's name and a `.`, roles after `by`, `of`, `owner`, `steward` and
//! `extends`, labels after `@`, `view` and `clearance`, and otherwise the names an
//! expression may read. The context is read from the text before the cursor; the names
//! and types come from the compiler's queries, which tolerate the half-typed line.

use flow_sema::ty::{StepResult, Ty};
use flow_sema::{Database, Db, Decl, DefKind, SourceFile};
use serde_json::{Value as Json, json};

/// LSP `CompletionItemKind`s.
mod kind {
    pub const FUNCTION: u32 = 3;
    pub const FIELD: u32 = 5;
    pub const VARIABLE: u32 = 6;
    pub const CLASS: u32 = 7;
    pub const INTERFACE: u32 = 8;
    pub const MODULE: u32 = 9;
    pub const ENUM: u32 = 13;
    pub const KEYWORD: u32 = 14;
    pub const CONSTANT: u32 = 21;
    pub const STRUCT: u32 = 22;
    pub const ENUM_MEMBER: u32 = 20;
}

const TOP_KEYWORDS: &[&str] = &["import", "label", "enum", "type", "role", "source", "model", "system", "fn", "flow"];
const FLOW_KEYWORDS: &[&str] = &[
    "version", "owner", "steward", "input", "output", "param", "access", "let", "gate", "infer", "review", "approval",
    "action", "emit", "evidence", "within", "remind", "monitor", "migrate",
];
const BUILTINS: &[&str] = &[
    "now",
    "age",
    "stale",
    "len",
    "any",
    "all",
    "contains",
    "lower",
    "is_present",
    "degraded",
    "started_by",
    "declassify",
];

fn item(label: &str, kind: u32, detail: impl Into<String>) -> Json {
    json!({"label": label, "kind": kind, "detail": detail.into()})
}

/// The completion items at byte `offset` of `file`.
pub fn complete(db: &Database, file: SourceFile, offset: usize) -> Vec<Json> {
    let text = file.text(db);
    let offset = offset.min(text.len());
    let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let line = &text[line_start..offset];
    let typed = line.len() - line.trim_end_matches(|c: char| c.is_ascii_alphanumeric() || c == '_').len();
    let before = &line[..line.len() - typed];
    let words: Vec<&str> = before.split_whitespace().collect();
    let last = words.last().copied().unwrap_or("");
    let scope = flow_sema::scope(db, file);
    let defs = |wanted: DefKind, kind: u32| -> Vec<Json> {
        scope.defs.iter().filter(|(_, d)| d.kind == wanted).map(|(n, d)| item(n, kind, d.kind.described())).collect()
    };
    if let Some(path) = before.strip_suffix('.') {
        return members(db, file, offset, path);
    }
    if before.ends_with('@')
        || matches!(last, "view" | "clearance")
        || last.ends_with(',') && has_any(&words, &["clearance", "view"])
    {
        return defs(DefKind::Label, kind::CONSTANT);
    }
    // A monitor: its metric after `NAME:` (or a quantile), a step inside `metric(`, a
    // severity, routes (channels and roles) after `to` — on the monitor's line or the
    // clause lines under it, which begin with `severity` or `to`.
    let monitor_line = words.first() == Some(&"monitor");
    let quantile = last.len() == 3 && last.starts_with('p') && last[1..].parse::<u8>().is_ok();
    if monitor_line && (last.ends_with(':') || quantile) && !before.ends_with('(') {
        use flow_sema::monitor::Metric;
        return Metric::ALL.iter().map(|m| item(m.name(), kind::FUNCTION, m.explain())).collect();
    }
    if monitor_line && before.ends_with('(') {
        let steps = flow_at(db, file, offset).map(|f| f.steps.as_slice()).unwrap_or_default();
        return steps.iter().map(|s| item(&s.name, kind::VARIABLE, s.kind.keyword())).collect();
    }
    if last == "severity" {
        use flow_sema::monitor::Severity;
        return Severity::ALL.iter().map(|s| item(s.as_str(), kind::CONSTANT, "severity")).collect();
    }
    let routes = (last == "to" && !has_any(&words, &["escalate"]))
        || (last.ends_with(',') && (words.first() == Some(&"to") || monitor_line && has_any(&words, &["to"])));
    if routes {
        let mut items: Vec<Json> =
            flow_sema::monitor::CHANNELS.iter().map(|c| item(c, kind::CONSTANT, "channel")).collect();
        items.extend(defs(DefKind::Role, kind::INTERFACE));
        return items;
    }
    let role_list = last.ends_with(',') && has_any(&words, &["by", "of", "extends", "escalate"]);
    let escalation = last == "to" && has_any(&words, &["escalate"]);
    if matches!(last, "by" | "of" | "owner" | "steward" | "extends") || role_list || escalation {
        return defs(DefKind::Role, kind::INTERFACE);
    }
    let in_flow = flow_at(db, file, offset).is_some();
    if words.is_empty() {
        let keywords = if in_flow { FLOW_KEYWORDS } else { TOP_KEYWORDS };
        return keywords.iter().map(|k| item(k, kind::KEYWORD, "keyword")).collect();
    }
    if matches!(last, ":" | "->") || last.ends_with(':') {
        let mut items: Vec<Json> =
            ["Bool", "Int", "Decimal", "Money", "Text", "Timestamp", "Duration", "Principal", "List"]
                .iter()
                .map(|t| item(t, kind::STRUCT, "built-in type"))
                .collect();
        items.extend(defs(DefKind::Record, kind::STRUCT));
        items.extend(defs(DefKind::Enum, kind::ENUM));
        return items;
    }
    // After `==` or `!=`, an enum's variants when the left side is an enum.
    let trimmed = before.trim_end();
    if let Some(left) = trimmed.strip_suffix("==").or_else(|| trimmed.strip_suffix("!="))
        && let Some(variants) = variants_of(db, file, offset, left.trim_end())
    {
        return variants;
    }
    // An expression: the flow's own names, then declarations, then built-ins.
    let mut items = Vec::new();
    if let Some(flow) = flow_at(db, file, offset) {
        for input in &flow.inputs {
            items.push(item(&input.name, kind::VARIABLE, format!("input: {}", input.ty)));
        }
        for param in &flow.params {
            items.push(item(&param.name, kind::CONSTANT, format!("param: {}", param.ty)));
        }
        for step in &flow.steps {
            items.push(item(&step.name, kind::VARIABLE, format!("step: {}", step.ty)));
        }
    }
    items.extend(defs(DefKind::Fn, kind::FUNCTION));
    items.extend(defs(DefKind::Enum, kind::ENUM));
    items.extend(defs(DefKind::Model, kind::CLASS));
    items.extend(defs(DefKind::Corpus, kind::CLASS));
    items.extend(defs(DefKind::System, kind::MODULE));
    items.extend(BUILTINS.iter().map(|b| item(b, kind::FUNCTION, "built-in")));
    items
}

fn has_any(words: &[&str], wanted: &[&str]) -> bool {
    words.iter().any(|w| wanted.contains(w))
}

/// The checked flow whose text contains `offset`.
fn flow_at(db: &Database, file: SourceFile, offset: usize) -> Option<&flow_sema::hir::Flow> {
    let offset = offset as u32;
    flow_sema::check_file(db, file).flows.iter().find(|f| f.span.start <= offset && offset <= f.span.end)
}

/// What may follow `path.`: a record's fields, a review's or an approval's fields, an
/// enum's variants, a system's actions.
fn members(db: &Database, file: SourceFile, offset: usize, path: &str) -> Vec<Json> {
    let chain_start = path.rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.')).map_or(0, |i| i + 1);
    let names: Vec<&str> = path[chain_start..].split('.').collect();
    let Some((root, fields)) = names.split_first() else { return Vec::new() };
    let scope = flow_sema::scope(db, file);
    // An enum's variants, a system's actions.
    if fields.is_empty()
        && let Some(def) = scope.get(root)
    {
        match flow_sema::decl(db, def.id) {
            Some(Decl::Enum(sig)) => {
                return sig
                    .variants
                    .iter()
                    .map(|v| item(&v.name, kind::ENUM_MEMBER, format!("{}.{}", sig.name, v.name)))
                    .collect();
            }
            Some(Decl::System(sig)) => {
                return sig.actions.iter().map(|a| item(&a.name, kind::FUNCTION, format!("-> {}", a.ret))).collect();
            }
            _ => {}
        }
    }
    let Some(ty) = chain_type(db, file, offset, root, fields) else { return Vec::new() };
    fields_of(db, &ty).into_iter().map(|(name, detail, _)| item(&name, kind::FIELD, detail)).collect()
}

/// The variants of the enum that the chain at the end of `left` (`risk.tier`,
/// `triage.outcome`) has as its type.
fn variants_of(db: &Database, file: SourceFile, offset: usize, left: &str) -> Option<Vec<Json>> {
    use flow_sema::hir::StepKind;
    use flow_sema::ty::EnumKind;
    let chain_start = left.rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.')).map_or(0, |i| i + 1);
    let names: Vec<&str> = left[chain_start..].split('.').collect();
    let (root, fields) = names.split_first()?;
    // A review's outcomes and reasons.
    if let [field] = fields
        && let Some(flow) = flow_at(db, file, offset)
        && let Some(step) = flow.steps.iter().find(|s| s.name == *root)
        && let StepKind::Review { outcomes, reasons, condition, .. } = &step.kind
    {
        let mut names: Vec<&str> = match *field {
            "outcome" => outcomes.iter().map(|o| o.as_str()).collect(),
            "reason" => reasons.iter().map(|r| r.as_str()).collect(),
            _ => return None,
        };
        if *field == "outcome" && condition.is_some() {
            names.push("skipped");
        }
        return Some(names.into_iter().map(|n| item(n, kind::ENUM_MEMBER, format!("{root}.{field}"))).collect());
    }
    let ty = chain_type(db, file, offset, root, fields)?;
    let Ty::Enum(enumeration) = ty.unwrap_optional() else { return None };
    let EnumKind::Decl(id) = enumeration.kind else { return None };
    let Some(Decl::Enum(sig)) = flow_sema::decl(db, id) else { return None };
    Some(sig.variants.iter().map(|v| item(&v.name, kind::ENUM_MEMBER, format!("{}.{}", sig.name, v.name))).collect())
}

/// The type of `root.fields…`, where `root` is an input, param or step of the flow at
/// `offset`.
pub(crate) fn chain_type(db: &Database, file: SourceFile, offset: usize, root: &str, fields: &[&str]) -> Option<Ty> {
    let flow = flow_at(db, file, offset)?;
    let mut ty = flow
        .inputs
        .iter()
        .map(|i| (&i.name, &i.ty))
        .chain(flow.params.iter().map(|p| (&p.name, &p.ty)))
        .chain(flow.steps.iter().map(|s| (&s.name, &s.ty)))
        .find(|(name, _)| name.as_str() == root)
        .map(|(_, ty)| ty.clone())?;
    for field in fields {
        ty = fields_of(db, &ty).into_iter().find(|f| f.0 == *field).and_then(|f| f.2)?;
    }
    Some(ty)
}

/// The fields of a value of type `ty`: name, what to show, and the type to go on with.
fn fields_of(db: &dyn Db, ty: &Ty) -> Vec<(String, String, Option<Ty>)> {
    let fixed =
        |fields: &[(&str, &str)]| fields.iter().map(|(n, d)| ((*n).to_owned(), (*d).to_owned(), None)).collect();
    match ty.unwrap_optional() {
        Ty::Record(record) => flow_sema::record(db, record.id)
            .map(|sig| sig.fields.iter().map(|f| (f.name.to_string(), f.ty.to_string(), Some(f.ty.clone()))).collect())
            .unwrap_or_default(),
        Ty::Step(step) => match step.kind {
            StepResult::Review => fixed(&[
                ("outcome", "the outcome the reviewer chose"),
                ("reason", "the reason code the reviewer gave"),
                ("reviewer", "Principal: who decided"),
                ("basis", "Text?: why, in the reviewer's words"),
            ]),
            StepResult::Approval => fixed(&[
                ("approved", "Bool: the requirement was met"),
                ("approvers", "List[Principal]: who approved"),
                ("requirement", "Text: what the matrix row required"),
            ]),
        },
        _ => Vec::new(),
    }
}

//! What a name under the cursor refers to, where it is declared, and where it is used:
//! declarations across files (through the compiler's scope of each file), and a flow's
//! own inputs, outputs, params and steps within that flow.

use flow_diagnostics::Span;
use flow_sema::{Database, Db, Def, SourceFile};

/// What a name refers to.
#[derive(Clone, Debug)]
pub enum Target {
    /// A declaration of some file.
    Decl(Def),
    /// An input, output, param or step of a flow: where its name is declared, and the
    /// flow's span, within which it may be used.
    Local { file: SourceFile, name_span: Span, flow: Span, detail: String, docs: Option<String> },
    /// A field of a record, a variant of an enum, an action of a system: where it is
    /// declared.
    Member { file: SourceFile, span: Span, detail: String, docs: Option<String> },
    /// The file an import names.
    File(SourceFile),
}

/// The identifiers of a text as byte spans, leaving out comments and the text parts of
/// strings (but not the expressions interpolated into them).
pub fn identifiers(text: &str) -> Vec<(usize, usize)> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    // Nesting of `{…}` inside strings: code again until the matching `}`.
    let mut in_string = false;
    let mut interpolation = 0usize;
    while i < bytes.len() {
        let c = bytes[i];
        if in_string && interpolation == 0 {
            match c {
                b'\\' => i += 2,
                b'"' => {
                    in_string = false;
                    i += 1;
                }
                b'{' => {
                    interpolation = 1;
                    i += 1;
                }
                _ => i += 1,
            }
            continue;
        }
        match c {
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'"' => {
                in_string = true;
                i += 1;
            }
            b'{' if in_string => {
                interpolation += 1;
                i += 1;
            }
            b'}' if in_string => {
                interpolation -= 1;
                i += 1;
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let start = i;
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                    i += 1;
                }
                out.push((start, i));
            }
            c if c.is_ascii_digit() => {
                // A number or a literal with a unit (`24h`, `10_000`): not a name.
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_' || bytes[i] == b'.') {
                    i += 1;
                }
            }
            _ => i += 1,
        }
    }
    out
}

/// The identifier at `offset` (or just before it).
pub fn identifier_at(text: &str, offset: usize) -> Option<(usize, usize)> {
    identifiers(text).into_iter().find(|(start, end)| *start <= offset && offset <= *end)
}

/// Whether the identifier at `start` is a field or an action (`x.name`, on the same line),
/// not a name of its own.
pub fn after_dot(text: &str, start: usize) -> bool {
    text[..start].trim_end_matches([' ', '\t']).ends_with('.')
}

/// What the identifier at `offset` of `file` refers to.
pub fn target_at(db: &Database, file: SourceFile, offset: usize) -> Option<(String, Target)> {
    let text = file.text(db);
    let at = offset as u32;
    if let Some(import) = flow_sema::imports(db, file).imports.iter().find(|i| i.span.start <= at && at <= i.span.end) {
        return Some((import.path.clone(), Target::File(import.target?)));
    }
    let (start, end) = identifier_at(text, offset)?;
    if after_dot(text, start) {
        return member_at(db, file, start, end);
    }
    let name = &text[start..end];
    let at = start as u32;
    if let Some(flow) = flow_sema::check_file(db, file).flows.iter().find(|f| f.span.start <= at && at <= f.span.end) {
        let local = |name_span: Span, detail: String, docs: &Option<String>| Target::Local {
            file,
            name_span,
            flow: flow.span,
            detail,
            docs: docs.clone(),
        };
        let found = flow
            .inputs
            .iter()
            .find(|i| i.name == name)
            .map(|i| local(i.span, format!("input: {}", i.ty), &i.docs))
            .or_else(|| {
                flow.params.iter().find(|p| p.name == name).map(|p| local(p.span, format!("param: {}", p.ty), &p.docs))
            })
            .or_else(|| {
                flow.steps.iter().find(|s| s.name == name).map(|s| {
                    let timing =
                        s.timing.as_ref().map(|t| format!(" — {}", t.describe(&|id| flow_sema::decl_name(db, id))));
                    local(s.name_span, format!("step: {}{}", s.ty, timing.unwrap_or_default()), &s.docs)
                })
            })
            .or_else(|| {
                flow.outputs
                    .iter()
                    .find(|o| o.name == name)
                    .map(|o| local(o.span, format!("output: {}", o.ty), &o.docs))
            });
        if let Some(found) = found {
            return Some((name.to_owned(), found));
        }
    }
    let def = flow_sema::scope(db, file).get(name)?;
    Some((name.to_owned(), Target::Decl(*def)))
}

/// The member `name` (at `start..end`) of what the chain before its dot names.
fn member_at(db: &Database, file: SourceFile, start: usize, end: usize) -> Option<(String, Target)> {
    use flow_sema::Decl;
    use flow_sema::ty::Ty;
    let text = file.text(db);
    let name = &text[start..end];
    let before = text[..start].trim_end_matches([' ', '\t']).strip_suffix('.')?;
    let chain_start = before.rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.')).map_or(0, |i| i + 1);
    let names: Vec<&str> = before[chain_start..].split('.').collect();
    let (root, fields) = names.split_first()?;
    let member = |decl_file: flow_diagnostics::FileId, span: Span, detail: String, docs: &Option<String>| {
        let file = db.workspace().file(db, decl_file)?;
        Some((name.to_owned(), Target::Member { file, span, detail, docs: docs.clone() }))
    };
    if fields.is_empty()
        && let Some(def) = flow_sema::scope(db, file).get(root)
    {
        match flow_sema::decl(db, def.id) {
            Some(Decl::Enum(sig)) => {
                let variant = sig.variants.iter().find(|v| v.name == name)?;
                return member(def.id.file, variant.span, format!("a variant of `{}`", sig.name), &variant.docs);
            }
            Some(Decl::System(sig)) => {
                let action = sig.actions.iter().find(|a| a.name == name)?;
                let params: Vec<String> = action.params.iter().map(|p| format!("{}: {}", p.name, p.ty)).collect();
                let detail = format!("an action of `{}`: ({}) -> {}", sig.name, params.join(", "), action.ret);
                return member(def.id.file, action.span, detail, &action.docs);
            }
            _ => {}
        }
    }
    let ty = crate::complete::chain_type(db, file, start, root, fields)?;
    let Ty::Record(record) = ty.unwrap_optional() else { return None };
    let field = flow_sema::record(db, record.id)?.fields.iter().find(|f| f.name == name)?;
    member(record.id.file, field.span, format!("a field of `{}`: {}", record.name, field.ty), &field.docs)
}

/// Every use of `target` (named `name`), with its declaration: `(file, span)`.
pub fn references(db: &Database, name: &str, target: &Target) -> Vec<(SourceFile, Span)> {
    let mut out = Vec::new();
    match target {
        Target::Member { file, span, .. } => {
            // Every `x.name` of the workspace that resolves to this declaration.
            out.push((*file, *span));
            for other in db.workspace().sources(db).iter().copied() {
                let text = other.text(db);
                for (s, e) in identifiers(text) {
                    if &text[s..e] != name || !after_dot(text, s) {
                        continue;
                    }
                    if let Some((_, Target::Member { file: f, span: declared, .. })) = member_at(db, other, s, e)
                        && f == *file
                        && declared == *span
                    {
                        out.push((other, Span { start: s as u32, end: e as u32 }));
                    }
                }
            }
        }
        Target::File(_) => {}
        Target::Local { file, flow, name_span, .. } => {
            let text = file.text(db);
            let mut spans: Vec<Span> = identifiers(text)
                .into_iter()
                .filter(|(s, e)| &text[*s..*e] == name && !after_dot(text, *s))
                .filter(|(s, _)| flow.start as usize <= *s && *s <= flow.end as usize)
                .map(|(s, e)| Span { start: s as u32, end: e as u32 })
                .collect();
            if !spans.iter().any(|s| s.start == name_span.start) {
                spans.push(*name_span);
            }
            out.extend(spans.into_iter().map(|span| (*file, span)));
        }
        Target::Decl(def) => {
            for file in db.workspace().sources(db).iter().copied() {
                let text = file.text(db);
                let uses: Vec<(usize, usize)> = identifiers(text)
                    .into_iter()
                    .filter(|(s, e)| &text[*s..*e] == name && !after_dot(text, *s))
                    .collect();
                if uses.is_empty() || flow_sema::scope(db, file).get(name).is_none_or(|d| d.id != def.id) {
                    continue;
                }
                out.extend(uses.into_iter().map(|(s, e)| (file, Span { start: s as u32, end: e as u32 })));
            }
        }
    }
    out.sort_by_key(|(file, span)| (file.id(db), span.start));
    out.dedup();
    out
}

//! Resolving written names and types against a file's scope.

use std::collections::BTreeSet;
use std::sync::Arc;

use flow_diagnostics::{Code, Diagnostic, FileId, Span};
use flow_syntax::ast::{Ident, TypeRef};
use flow_syntax::literal;

use crate::db::DeclId;
use crate::names::{Def, DefKind, Scope};
use crate::suggest;
use crate::ty::{Currency, EnumKind, EnumRef, RecordRef, Ty};

/// The built-in type names.
pub const BUILTIN_TYPES: &[&str] =
    &["Bool", "Int", "Decimal", "Money", "Text", "Timestamp", "Duration", "Principal", "List"];

/// Resolves names of one file, collecting diagnostics and the files it used.
pub struct Resolver<'a> {
    pub file: FileId,
    /// The file's text, to quote the user's own words in messages.
    pub text: &'a str,
    pub scope: &'a Scope,
    pub diagnostics: Vec<Diagnostic>,
    pub used_files: BTreeSet<FileId>,
}

impl<'a> Resolver<'a> {
    pub fn new(file: FileId, text: &'a str, scope: &'a Scope) -> Resolver<'a> {
        Resolver { file, text, scope, diagnostics: Vec::new(), used_files: BTreeSet::new() }
    }

    /// The source text of `span`, when it is short enough to quote.
    pub fn scope_text(&self, span: Span) -> &'a str {
        let text = self.text.get(span.range()).unwrap_or("");
        if text.len() > 60 || text.contains('\n') { "" } else { text }
    }

    pub fn report(&mut self, diagnostic: Diagnostic) {
        self.diagnostics.push(diagnostic);
    }

    pub fn error(&mut self, code: Code, span: Span, message: impl Into<String>) -> &mut Diagnostic {
        self.diagnostics.push(Diagnostic::new(code, self.file, span, message));
        let last = self.diagnostics.len() - 1;
        &mut self.diagnostics[last]
    }

    /// Looks a name up without reporting anything.
    pub fn lookup(&mut self, name: &str) -> Option<Def> {
        let def = self.scope.get(name).copied()?;
        self.used_files.insert(def.id.file);
        Some(def)
    }

    /// Resolves `ident` to a declaration of one of `kinds`; `what` names the expected kind
    /// in messages ("role", "label").
    pub fn resolve(&mut self, ident: &Ident, kinds: &[DefKind], what: &str) -> Option<Def> {
        match self.lookup(&ident.text) {
            Some(def) if kinds.contains(&def.kind) => Some(def),
            Some(def) => {
                self.error(
                    Code::E1015,
                    ident.span,
                    format!("`{}` is {}, not {}", ident.text, def.kind.described(), with_article(what)),
                );
                None
            }
            None if self.scope.is_unparsed(&ident.text) => None,
            None => {
                let help = suggest::help(&ident.text, self.scope.names_of(kinds));
                let diagnostic = self.error(Code::E1001, ident.span, format!("cannot find {what} `{}`", ident.text));
                diagnostic.help = help;
                if diagnostic.help.is_none() && what == "role" {
                    diagnostic.help = Some(format!("declare it: `role {}`", ident.text));
                } else if diagnostic.help.is_none() && what == "label" {
                    diagnostic.help = Some(format!("declare it: `label {}`", ident.text));
                }
                None
            }
        }
    }

    pub fn resolve_role(&mut self, ident: &Ident) -> Option<DeclId> {
        self.resolve(ident, &[DefKind::Role], "role").map(|def| def.id)
    }

    pub fn resolve_label(&mut self, ident: &Ident) -> Option<DeclId> {
        self.resolve(ident, &[DefKind::Label], "label").map(|def| def.id)
    }

    pub fn resolve_labels(&mut self, idents: &[Ident]) -> Vec<DeclId> {
        let mut labels: Vec<DeclId> = idents.iter().filter_map(|i| self.resolve_label(i)).collect();
        labels.sort();
        labels.dedup();
        labels
    }

    /// The type a record or enum name denotes.
    pub fn named_type(&mut self, name: &str) -> Option<Ty> {
        let def = self.lookup(name)?;
        let name: Arc<str> = name.into();
        match def.kind {
            DefKind::Record => Some(Ty::Record(RecordRef { id: def.id, name })),
            DefKind::Enum => Some(Ty::Enum(EnumRef { kind: EnumKind::Decl(def.id), name })),
            _ => None,
        }
    }

    /// Resolves a written type already resolved (and reported) once.
    pub fn resolve_type_quiet(&mut self, ty: Option<&TypeRef>) -> Ty {
        let Some(ty) = ty else { return Ty::Error };
        let mark = self.diagnostics.len();
        let resolved = self.resolve_type(ty);
        self.diagnostics.truncate(mark);
        resolved
    }

    /// Resolves a written type.
    pub fn resolve_type(&mut self, ty: &TypeRef) -> Ty {
        let resolved = self.resolve_type_base(ty);
        if ty.optional { resolved.optional() } else { resolved }
    }

    fn resolve_type_base(&mut self, ty: &TypeRef) -> Ty {
        let name = ty.name.text.as_str();
        let takes_argument = matches!(name, "Money" | "List");
        if let (Some(arg), false) = (&ty.arg, takes_argument)
            && (BUILTIN_TYPES.contains(&name) || self.scope.get(name).is_some())
        {
            self.error(Code::E1019, arg.span, format!("`{name}` takes no type argument")).help =
                Some(format!("write `{name}`"));
            return Ty::Error;
        }
        match name {
            "Bool" => Ty::Bool,
            "Int" => Ty::Int,
            "Decimal" => Ty::Decimal,
            "Text" => Ty::Text,
            "Timestamp" => Ty::Timestamp,
            "Duration" => Ty::Duration,
            "Principal" => Ty::Principal,
            "Money" => match &ty.arg {
                None => Ty::Money(None),
                Some(arg) => {
                    let code = arg.name.text.as_str();
                    if arg.arg.is_some() || arg.optional {
                        self.error(
                            Code::E1019,
                            arg.span,
                            "the currency of `Money` is a three-letter code such as `USD`",
                        );
                        return Ty::Error;
                    }
                    match Currency::new(code).filter(|_| literal::is_currency(code)) {
                        Some(currency) => Ty::Money(Some(currency)),
                        None => {
                            let help = match literal::suggest_currency(code) {
                                Some(suggestion) => format!("did you mean `{suggestion}`?"),
                                None => "write the three-letter ISO 4217 code, such as `USD` or `EUR`".to_owned(),
                            };
                            self.error(Code::E0008, arg.span, format!("`{code}` is not an ISO 4217 currency code"))
                                .help = Some(help);
                            Ty::Error
                        }
                    }
                }
            },
            "List" => match &ty.arg {
                Some(arg) => Ty::List(Box::new(self.resolve_type(arg))),
                None => {
                    self.error(Code::E1019, ty.span, "`List` needs the type of its elements").help =
                        Some("write it in brackets, such as `List[Text]`".to_owned());
                    Ty::Error
                }
            },
            _ => match self.named_type(name) {
                Some(resolved) => resolved,
                None => {
                    if let Some(def) = self.scope.get(name).copied() {
                        self.error(
                            Code::E1015,
                            ty.name.span,
                            format!("`{name}` is {}, not a type", def.kind.described()),
                        );
                        return Ty::Error;
                    }
                    if self.scope.is_unparsed(name) {
                        return Ty::Error;
                    }
                    let candidates =
                        BUILTIN_TYPES.iter().copied().chain(self.scope.names_of(&[DefKind::Record, DefKind::Enum]));
                    let help = suggest::help(name, candidates);
                    self.error(Code::E1001, ty.name.span, format!("cannot find type `{name}`")).help = help;
                    Ty::Error
                }
            },
        }
    }
}

pub fn with_article(what: &str) -> String {
    let article = if what.starts_with(['a', 'e', 'i', 'o', 'u']) { "an" } else { "a" };
    format!("{article} {what}")
}

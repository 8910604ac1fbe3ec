//! The meaning of each top-level declaration except flows: record fields and their types
//! and labels, enum variants, role inheritance, sources, models, systems and function
//! signatures. Checks pinned provenance (`E2005`, `E2006`, `E2007`).

use flow_syntax::ast::SmolStr;
use std::collections::{BTreeMap, BTreeSet};

use flow_diagnostics::{Code, Diagnostic, FileId, Span};
use flow_syntax::ast::{self, CorpusSettingKind, Ident, ItemKind, MismatchPolicy, ModelSettingKind, SourceSetting};

use crate::db::{Db, DeclId, Entry, SourceFile};
use crate::load::resolve_relative;
use crate::names::scope;
use crate::resolve::Resolver;
use crate::ty::Ty;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FieldSig {
    pub name: SmolStr,
    pub span: Span,
    pub ty: Ty,
    pub labels: Vec<DeclId>,
    pub docs: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RecordSig {
    pub name: SmolStr,
    pub fields: Vec<FieldSig>,
}

impl RecordSig {
    pub fn field(&self, name: &str) -> Option<(usize, &FieldSig)> {
        self.fields.iter().enumerate().find(|(_, f)| f.name == name)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct VariantSig {
    pub name: SmolStr,
    pub span: Span,
    pub docs: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct EnumSig {
    pub name: SmolStr,
    pub variants: Vec<VariantSig>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RoleSig {
    pub name: SmolStr,
    pub extends: Vec<DeclId>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SourceSig {
    pub name: SmolStr,
    pub ty: Ty,
    pub authority: Option<String>,
    /// Seconds after which a record is stale.
    pub freshness: Option<i64>,
    /// The field that says how old a record is, and where it is named. The flow checker
    /// validates it, because that needs the record's fields.
    pub as_of: Option<(SmolStr, Span)>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ParamSig {
    pub name: SmolStr,
    pub span: Span,
    pub ty: Ty,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PromptSig {
    /// The normalised path of the prompt file.
    pub path: String,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ModelSig {
    pub name: SmolStr,
    pub provider: Option<String>,
    pub model_name: Option<String>,
    pub version: Option<String>,
    pub digest: Option<String>,
    pub prompt: Option<PromptSig>,
    pub inputs: Vec<ParamSig>,
    pub output: Ty,
    pub clearance: Vec<DeclId>,
}

/// A corpus: documents of one record type, searched by a retriever, pinned to a snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CorpusSig {
    pub name: SmolStr,
    /// The record type of one document (`Ty::Error` when it is not a record).
    pub ty: Ty,
    pub retriever: Option<String>,
    pub authority: Option<String>,
    pub snapshot: Option<String>,
    /// The labels every document carries.
    pub labels: Vec<DeclId>,
    /// The labels a query may carry.
    pub clearance: Vec<DeclId>,
    /// Seconds after which the snapshot is too old.
    pub freshness: Option<i64>,
    pub on_mismatch: MismatchPolicy,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ActionSig {
    pub name: SmolStr,
    pub span: Span,
    pub params: Vec<ParamSig>,
    pub ret: Ty,
    pub docs: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SystemSig {
    pub name: SmolStr,
    pub clearance: Vec<DeclId>,
    pub actions: Vec<ActionSig>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FnSig {
    pub name: SmolStr,
    pub params: Vec<ParamSig>,
    pub ret: Ty,
}

/// The meaning of one declaration.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Decl {
    Label(SmolStr),
    Enum(EnumSig),
    Record(RecordSig),
    Role(RoleSig),
    Source(SourceSig),
    Model(ModelSig),
    Corpus(CorpusSig),
    System(SystemSig),
    Fn(FnSig),
    Flow(SmolStr),
}

impl Decl {
    pub fn name(&self) -> &str {
        match self {
            Decl::Label(name) | Decl::Flow(name) => name,
            Decl::Enum(sig) => &sig.name,
            Decl::Record(sig) => &sig.name,
            Decl::Role(sig) => &sig.name,
            Decl::Source(sig) => &sig.name,
            Decl::Model(sig) => &sig.name,
            Decl::Corpus(sig) => &sig.name,
            Decl::System(sig) => &sig.name,
            Decl::Fn(sig) => &sig.name,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Decls {
    /// By item index; `None` for imports and unparsable items.
    pub items: Vec<Option<Decl>>,
    pub diagnostics: Vec<Diagnostic>,
    pub used_files: BTreeSet<FileId>,
}

/// The declarations of a file.
#[salsa::tracked(returns(ref))]
pub fn decls(db: &dyn Db, file: SourceFile) -> Decls {
    let parse = crate::names::parse(db, file);
    let scope = scope(db, file);
    let mut resolver = Resolver::new(file.id(db), file.text(db), scope);
    let mut items = Vec::with_capacity(parse.file.items.len());
    for item in &parse.file.items {
        let decl = match &item.kind {
            ItemKind::Label(name) => Some(Decl::Label(name.text.clone())),
            ItemKind::Enum(decl) => Some(Decl::Enum(enum_sig(&mut resolver, decl))),
            ItemKind::Type(decl) => Some(Decl::Record(record_sig(&mut resolver, decl))),
            ItemKind::Role(decl) => Some(Decl::Role(RoleSig {
                name: decl.name.text.clone(),
                extends: decl.extends.iter().filter_map(|r| resolver.resolve_role(r)).collect(),
            })),
            ItemKind::Source(decl) => Some(Decl::Source(source_sig(&mut resolver, decl))),
            ItemKind::Model(decl) => Some(Decl::Model(model_sig(db, file, &mut resolver, decl))),
            ItemKind::Corpus(decl) => Some(Decl::Corpus(corpus_sig(&mut resolver, decl))),
            ItemKind::System(decl) => Some(Decl::System(system_sig(&mut resolver, decl))),
            ItemKind::Fn(decl) => Some(Decl::Fn(FnSig {
                name: decl.name.text.clone(),
                params: params(&mut resolver, &decl.params, "parameter"),
                ret: resolver.resolve_type(&decl.ret),
            })),
            ItemKind::Flow(flow) => Some(Decl::Flow(flow.name.text.clone())),
            ItemKind::Import(_) | ItemKind::Test(_) | ItemKind::Error(_) => None,
        };
        items.push(decl);
    }
    Decls { items, diagnostics: resolver.diagnostics, used_files: resolver.used_files }
}

/// The declaration `id` denotes.
pub fn decl(db: &dyn Db, id: DeclId) -> Option<&Decl> {
    let file = db.workspace().file(db, id.file)?;
    decls(db, file).items.get(id.index as usize)?.as_ref()
}

pub fn record(db: &dyn Db, id: DeclId) -> Option<&RecordSig> {
    match decl(db, id)? {
        Decl::Record(sig) => Some(sig),
        _ => None,
    }
}

/// The name of a declaration, for messages.
pub fn decl_name(db: &dyn Db, id: DeclId) -> String {
    decl(db, id).map_or_else(|| "?".to_owned(), |d| d.name().to_owned())
}

fn report_duplicate(resolver: &mut Resolver<'_>, what: &str, name: &Ident, first: Span) {
    resolver.report(
        Diagnostic::new(Code::E1003, resolver.file, name.span, format!("{what} `{}` is declared twice", name.text))
            .with_label(resolver.file, first, "first declared here"),
    );
}

fn enum_sig(resolver: &mut Resolver<'_>, decl: &ast::EnumDecl) -> EnumSig {
    let mut seen: BTreeMap<&str, Span> = BTreeMap::new();
    let mut variants = Vec::new();
    for variant in &decl.variants {
        if let Some(first) = seen.get(variant.name.text.as_str()) {
            report_duplicate(resolver, "variant", &variant.name, *first);
            continue;
        }
        seen.insert(&variant.name.text, variant.name.span);
        variants.push(VariantSig {
            name: variant.name.text.clone(),
            span: variant.name.span,
            docs: variant.docs.clone(),
        });
    }
    if variants.is_empty() {
        resolver.error(Code::E1019, decl.name.span, format!("enum `{}` has no variants", decl.name.text)).help =
            Some(format!("list its values: `enum {} {{ low, high }}`", decl.name.text));
    }
    EnumSig { name: decl.name.text.clone(), variants }
}

fn record_sig(resolver: &mut Resolver<'_>, decl: &ast::TypeDecl) -> RecordSig {
    let mut seen: BTreeMap<&str, Span> = BTreeMap::new();
    let mut fields = Vec::new();
    for field in &decl.fields {
        let ty = resolver.resolve_type(&field.ty);
        let labels = resolver.resolve_labels(&field.labels);
        if let Some(first) = seen.get(field.name.text.as_str()) {
            report_duplicate(resolver, "field", &field.name, *first);
            continue;
        }
        seen.insert(&field.name.text, field.name.span);
        fields.push(FieldSig {
            name: field.name.text.clone(),
            span: field.name.span,
            ty,
            labels,
            docs: field.docs.clone(),
        });
    }
    RecordSig { name: decl.name.text.clone(), fields }
}

fn params(resolver: &mut Resolver<'_>, params: &[ast::Param], what: &str) -> Vec<ParamSig> {
    let mut seen: BTreeMap<&str, Span> = BTreeMap::new();
    let mut result = Vec::new();
    for param in params {
        let ty = resolver.resolve_type(&param.ty);
        if let Some(first) = seen.get(param.name.text.as_str()) {
            report_duplicate(resolver, what, &param.name, *first);
            continue;
        }
        seen.insert(&param.name.text, param.name.span);
        result.push(ParamSig { name: param.name.text.clone(), span: param.name.span, ty });
    }
    result
}

fn source_sig(resolver: &mut Resolver<'_>, decl: &ast::SourceDecl) -> SourceSig {
    let ty = resolver.resolve_type(&decl.ty);
    let mut sig = SourceSig { name: decl.name.text.clone(), ty, authority: None, freshness: None, as_of: None };
    let mut seen: BTreeMap<&str, Span> = BTreeMap::new();
    for setting in &decl.settings {
        let (keyword, span) = match setting {
            SourceSetting::Authority(value) => ("authority", value.span),
            SourceSetting::Freshness(duration) => ("freshness", duration.span),
            SourceSetting::AsOf(field) => ("as_of", field.span),
        };
        if let Some(first) = seen.insert(keyword, span) {
            let file = resolver.file;
            resolver
                .error(Code::E1018, span, format!("source `{}` sets `{keyword}` twice", decl.name.text))
                .secondary
                .push(flow_diagnostics::Label::new(file, first, "first set here"));
            continue;
        }
        match setting {
            SourceSetting::Authority(value) if value.value.trim().is_empty() => {
                resolver.error(Code::E2007, value.span, "the authority of a source cannot be empty");
            }
            SourceSetting::Authority(value) => sig.authority = Some(value.value.clone()),
            SourceSetting::Freshness(duration) => sig.freshness = Some(duration.seconds),
            SourceSetting::AsOf(field) => sig.as_of = Some((field.text.clone(), field.span)),
        }
    }
    if !seen.contains_key("authority") {
        resolver
            .error(Code::E2007, decl.name.span, format!("source `{}` does not name its authority", decl.name.text))
            .help = Some("add the authoritative system it comes from: `authority \"mdm.vendors\"`".to_owned());
    }
    sig
}

fn model_sig(db: &dyn Db, file: SourceFile, resolver: &mut Resolver<'_>, decl: &ast::ModelDecl) -> ModelSig {
    let mut sig = ModelSig {
        name: decl.name.text.clone(),
        provider: None,
        model_name: None,
        version: None,
        digest: None,
        prompt: None,
        inputs: Vec::new(),
        output: Ty::Error,
        clearance: Vec::new(),
    };
    let mut seen: BTreeMap<&str, Span> = BTreeMap::new();
    let mut has_output = false;
    for setting in &decl.settings {
        let keyword = setting.kind.keyword();
        if let Some(first) = seen.insert(keyword, setting.span) {
            let file = resolver.file;
            resolver
                .error(Code::E1018, setting.span, format!("model `{}` sets `{keyword}` twice", decl.name.text))
                .secondary
                .push(flow_diagnostics::Label::new(file, first, "first set here"));
            continue;
        }
        match &setting.kind {
            ModelSettingKind::Provider(value) => sig.provider = Some(value.value.clone()),
            ModelSettingKind::Name(value) => sig.model_name = Some(value.value.clone()),
            ModelSettingKind::Version(value) => {
                if value.value.trim().is_empty() {
                    resolver.error(Code::E2005, value.span, format!("model `{}` has an empty version", decl.name.text));
                }
                sig.version = Some(value.value.clone());
            }
            ModelSettingKind::Digest(value) => {
                if !flow_ir::is_pinned_digest(&value.value) {
                    resolver
                        .error(Code::E2005, value.span, format!("`{}` is not a content digest", value.value))
                        .help =
                        Some("write `sha256:` followed by the 64 hexadecimal digits of the model's digest".to_owned());
                }
                sig.digest = Some(value.value.clone());
            }
            ModelSettingKind::Prompt(value) => {
                let path = resolve_relative(file.path(db), &value.value);
                let problem = match db.workspace().entry(db, &path) {
                    Some(Entry::Asset(_)) => None,
                    Some(Entry::Directory) => Some(format!("the prompt `{}` is a directory, not a file", value.value)),
                    Some(Entry::Unreadable(reason)) => {
                        Some(format!("cannot read the prompt `{}`: {reason}", value.value))
                    }
                    _ => Some(format!("cannot find the prompt file `{}`", value.value)),
                };
                if let Some(problem) = problem {
                    resolver
                        .error(Code::E2006, value.span, problem)
                        .notes
                        .push(format!("the path is read relative to this file, as `{path}`"));
                }
                sig.prompt = Some(PromptSig { path, span: value.span });
            }
            ModelSettingKind::Input(list) => sig.inputs = params(resolver, list, "model input"),
            ModelSettingKind::Output(ty) => {
                has_output = true;
                sig.output = resolver.resolve_type(ty);
            }
            ModelSettingKind::Clearance(labels) => sig.clearance = resolver.resolve_labels(labels),
        }
    }
    let name = &decl.name;
    for (keyword, example) in
        [("provider", "provider \"openai-compatible\""), ("name", "name \"acme-risk-classifier\"")]
    {
        if !seen.contains_key(keyword) {
            resolver
                .error(Code::E2011, name.span, format!("model `{}` does not say its `{keyword}`", name.text))
                .help = Some(format!("add `{example}`"));
        }
    }
    if !has_output {
        resolver
            .error(Code::E2011, name.span, format!("model `{}` does not declare its `output` type", name.text))
            .help = Some("add `output TypeName`: the record the model returns".to_owned());
    }
    for (keyword, example) in [("version", "version \"3.2.1\""), ("digest", "digest \"sha256:…\"")] {
        if !seen.contains_key(keyword) {
            resolver
                .error(Code::E2005, name.span, format!("model `{}` is not pinned: it has no `{keyword}`", name.text))
                .help = Some(format!("pin the exact model: `{example}`"));
        }
    }
    sig
}

fn corpus_sig(resolver: &mut Resolver<'_>, decl: &ast::CorpusDecl) -> CorpusSig {
    let name = &decl.name;
    let mut ty = resolver.resolve_type(&decl.ty);
    if !matches!(ty, Ty::Record(_) | Ty::Error) {
        resolver
            .error(Code::E1019, decl.ty.span, format!("the documents of corpus `{}` must be a record type", name.text))
            .help = Some("declare the fields of one document: `type Passage { id: Text, text: Text }`".to_owned());
        ty = Ty::Error;
    }
    let mut sig = CorpusSig {
        name: name.text.clone(),
        ty,
        retriever: None,
        authority: None,
        snapshot: None,
        labels: Vec::new(),
        clearance: Vec::new(),
        freshness: None,
        on_mismatch: MismatchPolicy::Refuse,
    };
    let mut seen: BTreeMap<&str, Span> = BTreeMap::new();
    for setting in &decl.settings {
        let keyword = setting.kind.keyword();
        if let Some(first) = seen.insert(keyword, setting.span) {
            let file = resolver.file;
            resolver
                .error(Code::E1018, setting.span, format!("corpus `{}` sets `{keyword}` twice", name.text))
                .secondary
                .push(flow_diagnostics::Label::new(file, first, "first set here"));
            continue;
        }
        match &setting.kind {
            CorpusSettingKind::Retriever(value) => sig.retriever = Some(value.value.clone()),
            CorpusSettingKind::Authority(value) if value.value.trim().is_empty() => {
                resolver.error(Code::E2007, value.span, "the authority of a corpus cannot be empty");
            }
            CorpusSettingKind::Authority(value) => sig.authority = Some(value.value.clone()),
            CorpusSettingKind::Snapshot(value) if !flow_ir::is_snapshot(&value.value) => {
                resolver.error(Code::E2027, value.span, format!("`{}` is not a snapshot", value.value)).help = Some(
                    "write a digest or a version: 1 to 128 letters, digits and `.`, `_`, `:`, `+`, `/`, `-`".to_owned(),
                );
            }
            CorpusSettingKind::Snapshot(value) => sig.snapshot = Some(value.value.clone()),
            CorpusSettingKind::Labels(labels) => sig.labels = resolver.resolve_labels(labels),
            CorpusSettingKind::Clearance(labels) => sig.clearance = resolver.resolve_labels(labels),
            CorpusSettingKind::Freshness(duration) if duration.seconds <= 0 => {
                resolver.error(Code::E0005, duration.span, "a freshness of 0s lets no snapshot through").help =
                    Some("write how old a snapshot may be, such as `freshness 90d`".to_owned());
            }
            CorpusSettingKind::Freshness(duration) => sig.freshness = Some(duration.seconds),
            CorpusSettingKind::OnMismatch(policy) => sig.on_mismatch = *policy,
        }
    }
    if !seen.contains_key("retriever") {
        resolver.error(Code::E2011, name.span, format!("corpus `{}` does not say its `retriever`", name.text)).help =
            Some("add the kind of retriever that searches it, such as `retriever \"folder\"`".to_owned());
    }
    if !seen.contains_key("authority") {
        resolver.error(Code::E2007, name.span, format!("corpus `{}` does not name its authority", name.text)).help =
            Some("add who publishes the documents: `authority \"policy-office.lending\"`".to_owned());
    }
    if !seen.contains_key("snapshot") {
        resolver
            .error(Code::E2027, name.span, format!("corpus `{}` is not pinned: it has no `snapshot`", name.text))
            .help = Some("pin the snapshot the flow was written against: `snapshot \"blake3:…\"`".to_owned());
    }
    sig
}

fn system_sig(resolver: &mut Resolver<'_>, decl: &ast::SystemDecl) -> SystemSig {
    let mut seen: BTreeMap<&str, Span> = BTreeMap::new();
    let mut actions = Vec::new();
    for action in &decl.actions {
        let params = params(resolver, &action.params, "parameter");
        let ret = action.ret.as_ref().map_or(Ty::Nothing, |ty| resolver.resolve_type(ty));
        if let Some(first) = seen.get(action.name.text.as_str()) {
            report_duplicate(resolver, "action", &action.name, *first);
            continue;
        }
        seen.insert(&action.name.text, action.name.span);
        actions.push(ActionSig {
            name: action.name.text.clone(),
            span: action.name.span,
            params,
            ret,
            docs: action.docs.clone(),
        });
    }
    SystemSig { name: decl.name.text.clone(), clearance: resolver.resolve_labels(&decl.clearance), actions }
}

//! Files to syntax trees, imports to files, and names to declarations.

use flow_syntax::ast::SmolStr;
use std::collections::{BTreeMap, BTreeSet};

use flow_diagnostics::{Code, Diagnostic, FileId, Span};
use flow_syntax::Parse;
use flow_syntax::ast::{self, ItemKind, ModelSettingKind};

use crate::db::{Db, DeclId, Entry, SourceFile};
use crate::load::{Request, resolve_relative};

/// The syntax tree of a file and its syntax diagnostics.
#[salsa::tracked(returns(ref))]
pub fn parse(db: &dyn Db, file: SourceFile) -> Parse {
    if let Some(at) = file.invalid_utf8_at(db) {
        let diagnostic =
            Diagnostic::new(Code::E0002, file.id(db), Span::at(at as usize), "this file is not valid UTF-8")
                .with_primary_message("the first byte that is not UTF-8 follows here")
                .with_help("save the file as UTF-8 text");
        return Parse { file: ast::File::default(), diagnostics: vec![diagnostic] };
    }
    flow_syntax::parse(file.text(db), file.id(db))
}

/// The other files a file names: its imports and its models' prompt files, as normalised
/// paths.
#[salsa::tracked(returns(ref))]
pub fn file_requests(db: &dyn Db, file: SourceFile) -> Vec<(Request, String)> {
    let from = file.path(db);
    let mut requests = Vec::new();
    for item in &parse(db, file).file.items {
        match &item.kind {
            ItemKind::Import(path) => {
                requests.push((Request::Import, resolve_relative(from, &path.value)));
            }
            ItemKind::Model(model) => {
                for setting in &model.settings {
                    if let ModelSettingKind::Prompt(path) = &setting.kind {
                        requests.push((Request::Prompt, resolve_relative(from, &path.value)));
                    }
                }
            }
            _ => {}
        }
    }
    requests
}

/// The kind of a top-level declaration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DefKind {
    Label,
    Enum,
    Record,
    Role,
    Source,
    Model,
    Corpus,
    System,
    Fn,
    Flow,
}

impl DefKind {
    /// The kind in the steward's words, with an article.
    pub fn described(self) -> &'static str {
        match self {
            DefKind::Label => "a label",
            DefKind::Enum => "an enum",
            DefKind::Record => "a record type",
            DefKind::Role => "a role",
            DefKind::Source => "a source",
            DefKind::Model => "a model",
            DefKind::Corpus => "a corpus",
            DefKind::System => "a system",
            DefKind::Fn => "a function",
            DefKind::Flow => "a flow",
        }
    }
}

/// A named top-level declaration of a file.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct NamedItem {
    pub name: SmolStr,
    pub kind: DefKind,
    pub index: u32,
    pub span: Span,
}

/// The named declarations of a file, in order.
#[salsa::tracked(returns(ref))]
pub fn item_names(db: &dyn Db, file: SourceFile) -> Vec<NamedItem> {
    let mut names = Vec::new();
    for (index, item) in parse(db, file).file.items.iter().enumerate() {
        let kind = match &item.kind {
            ItemKind::Label(_) => DefKind::Label,
            ItemKind::Enum(_) => DefKind::Enum,
            ItemKind::Type(_) => DefKind::Record,
            ItemKind::Role(_) => DefKind::Role,
            ItemKind::Source(_) => DefKind::Source,
            ItemKind::Model(_) => DefKind::Model,
            ItemKind::Corpus(_) => DefKind::Corpus,
            ItemKind::System(_) => DefKind::System,
            ItemKind::Fn(_) => DefKind::Fn,
            ItemKind::Flow(_) => DefKind::Flow,
            ItemKind::Import(_) | ItemKind::Test(_) | ItemKind::Error(_) => continue,
        };
        if let Some(name) = item.kind.name() {
            names.push(NamedItem { name: name.text.clone(), kind, index: index as u32, span: name.span });
        }
    }
    names
}

/// The names that declarations of a file would have declared had they parsed.
#[salsa::tracked(returns(ref))]
pub fn unparsed_names(db: &dyn Db, file: SourceFile) -> Vec<SmolStr> {
    let items = &parse(db, file).file.items;
    items
        .iter()
        .filter_map(|item| match &item.kind {
            ItemKind::Error(unparsed) => unparsed.name.as_ref().map(|name| name.text.clone()),
            _ => None,
        })
        .collect()
}

/// An `import` and the file it names.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Import {
    /// The span of the path string.
    pub span: Span,
    /// The normalised path.
    pub path: String,
    /// The file, when it was loaded as a `.flow` file.
    pub target: Option<SourceFile>,
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Imports {
    pub imports: Vec<Import>,
    pub diagnostics: Vec<Diagnostic>,
}

/// The imports of a file, resolved against the workspace.
#[salsa::tracked(returns(ref))]
pub fn imports(db: &dyn Db, file: SourceFile) -> Imports {
    let workspace = db.workspace();
    let id = file.id(db);
    let mut result = Imports::default();
    for item in &parse(db, file).file.items {
        let ItemKind::Import(path) = &item.kind else { continue };
        let resolved = resolve_relative(file.path(db), &path.value);
        let problem = match workspace.entry(db, &resolved) {
            Some(Entry::Flow(target)) => {
                result.imports.push(Import { span: path.span, path: resolved, target: Some(target) });
                continue;
            }
            Some(Entry::Directory) => format!("`{}` is a directory, not a `.flow` file", path.value),
            Some(Entry::Unreadable(reason)) => format!("cannot read `{}`: {reason}", path.value),
            Some(Entry::Asset(_)) | Some(Entry::Missing) | None => {
                format!("cannot find the imported file `{}`", path.value)
            }
        };
        result.diagnostics.push(
            Diagnostic::new(Code::E1004, id, path.span, problem)
                .with_note(format!("the path is read relative to this file, as `{resolved}`")),
        );
        result.imports.push(Import { span: path.span, path: resolved, target: None });
    }
    result
}

/// A name visible in a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Def {
    pub id: DeclId,
    pub kind: DefKind,
    /// The span of the declared name, in the declaring file.
    pub span: Span,
}

/// The names visible in a file: its own declarations and those of the files it imports.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Scope {
    pub defs: BTreeMap<SmolStr, Def>,
    /// Names of declarations that did not parse (and are not declared otherwise): their
    /// syntax errors are reported, so uses of them are not reported again.
    pub unparsed: BTreeSet<SmolStr>,
    pub diagnostics: Vec<Diagnostic>,
}

impl Scope {
    pub fn get(&self, name: &str) -> Option<&Def> {
        self.defs.get(name)
    }

    /// Whether `name` would be declared but for a syntax error.
    pub fn is_unparsed(&self, name: &str) -> bool {
        self.unparsed.contains(name)
    }

    /// The names of the declarations of the given kinds, for suggestions.
    pub fn names_of<'a>(&'a self, kinds: &'a [DefKind]) -> impl Iterator<Item = &'a str> + 'a {
        self.defs.iter().filter(|(_, def)| kinds.contains(&def.kind)).map(|(name, _)| name.as_str())
    }
}

#[salsa::tracked(returns(ref))]
pub fn scope(db: &dyn Db, file: SourceFile) -> Scope {
    let id = file.id(db);
    let mut result = Scope::default();
    for item in item_names(db, file) {
        let def = Def { id: DeclId { file: id, index: item.index }, kind: item.kind, span: item.span };
        match result.defs.get(&item.name) {
            Some(first) => result.diagnostics.push(
                Diagnostic::new(Code::E1003, id, item.span, format!("`{}` is declared more than once", item.name))
                    .with_primary_message(format!("declared again here as {}", item.kind.described()))
                    .with_label(id, first.span, format!("first declared here as {}", first.kind.described()))
                    .with_help("rename one of them; every top-level name in a file and its imports is unique"),
            ),
            None => {
                result.defs.insert(item.name.clone(), def);
            }
        }
    }
    let own: BTreeMap<SmolStr, Def> = result.defs.clone();
    let mut unparsed: BTreeSet<SmolStr> = unparsed_names(db, file).iter().cloned().collect();
    // Which import first brought each imported name, to report conflicts between imports.
    let mut imported_from: BTreeMap<SmolStr, Span> = BTreeMap::new();
    let mut imported_files: BTreeMap<FileId, Span> = BTreeMap::new();
    for import in &imports(db, file).imports {
        let Some(target) = import.target else { continue };
        let target_id = target.id(db);
        if let Some(first) = imported_files.get(&target_id) {
            result.diagnostics.push(
                Diagnostic::new(Code::W1001, id, import.span, format!("`{}` is imported twice", import.path))
                    .with_label(id, *first, "first imported here")
                    .with_help("remove this import"),
            );
            continue;
        }
        imported_files.insert(target_id, import.span);
        if target_id == id {
            continue;
        }
        for item in item_names(db, target) {
            let def = Def { id: DeclId { file: target_id, index: item.index }, kind: item.kind, span: item.span };
            if let Some(mine) = own.get(&item.name) {
                result.diagnostics.push(
                    Diagnostic::new(
                        Code::E1014,
                        id,
                        mine.span,
                        format!("`{}` is declared here and in the imported file `{}`", item.name, import.path),
                    )
                    .with_label(id, import.span, format!("`{}` is imported here", item.name))
                    .with_help("rename the declaration in this file"),
                );
                continue;
            }
            match imported_from.get(&item.name) {
                Some(first) if result.defs.get(&item.name).is_some_and(|d| d.id != def.id) => {
                    result.diagnostics.push(
                        Diagnostic::new(
                            Code::E1014,
                            id,
                            import.span,
                            format!("two imported files declare `{}`", item.name),
                        )
                        .with_primary_message(format!("this file declares `{}`", item.name))
                        .with_label(id, *first, "and so does this one".to_string()),
                    );
                }
                Some(_) => {}
                None => {
                    imported_from.insert(item.name.clone(), import.span);
                    result.defs.insert(item.name.clone(), def);
                }
            }
        }
        unparsed.extend(unparsed_names(db, target).iter().cloned());
    }
    unparsed.retain(|name| !result.defs.contains_key(name));
    result.unparsed = unparsed;
    result
}

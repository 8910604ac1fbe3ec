//! The semantic phases of the Flow compiler, as salsa queries.
//!
//! **API boundary.** The query surface is: [`parse`] (text → syntax tree), [`imports`] and
//! [`scope`] (names → declarations, across files), [`decls`] (declarations → signatures),
//! [`fn_bodies`] and [`check_file`] (typed functions and flows, with the flow
//! checks that need no plan graph), [`global_checks`] (cycles across files) and
//! [`file_diagnostics`] (everything about one file, sorted). `flowc check` and the language
//! server call the same queries, so they report the same diagnostics.
//!
//! No query does IO: [`Database::load`] takes a function that reads files ([`read_from_disk`]
//! for the disk, or one that prefers an editor's buffers), and an editor sets file texts
//! directly with [`Database::set_file`]. No query returns an error
//! or panics on bad input; every phase returns a value plus diagnostics.

mod constant;
mod db;
mod flows;
mod global;
/// The monitors' metrics, severities and channels the checks know (for editors).
pub use flow_ir::monitor;
pub mod hir;
mod ifc;
mod load;
mod matrix;
mod names;
pub mod print;
mod resolve;
mod signatures;
mod suggest;
pub mod test_blocks;
#[cfg(test)]
mod tests;
pub mod ty;
mod typeck;

use std::collections::BTreeSet;

use flow_diagnostics::{Code, Diagnostic};

pub use db::{Database, Db, DeclId, Entry, ExecutionLog, SourceFile, Workspace};
pub use flows::{CheckedFile, FnBodies, check_file, fn_bodies};
pub use global::{GlobalChecks, global_checks};
pub use load::{ReadError, Request, normalize, read_from_disk, resolve_relative};
pub use names::{Def, DefKind, Import, Imports, NamedItem, Scope, file_requests, imports, item_names, parse, scope};
pub use signatures::{Decl, Decls, decl, decl_name, decls, record};

/// Every diagnostic about one file, sorted by position.
#[salsa::tracked(returns(ref))]
pub fn file_diagnostics(db: &dyn Db, file: SourceFile) -> Vec<Diagnostic> {
    let id = file.id(db);
    let mut diagnostics = Vec::new();
    let syntax = &parse(db, file).diagnostics;
    diagnostics.extend(syntax.iter().cloned());
    diagnostics.extend(imports(db, file).diagnostics.iter().cloned());
    diagnostics.extend(scope(db, file).diagnostics.iter().cloned());
    let declarations = decls(db, file);
    diagnostics.extend(declarations.diagnostics.iter().cloned());
    let bodies = fn_bodies(db, file);
    diagnostics.extend(bodies.diagnostics.iter().cloned());
    let checked = check_file(db, file);
    diagnostics.extend(checked.diagnostics.iter().cloned());
    if let Some(global) = global_checks(db).by_file.get(&id) {
        diagnostics.extend(global.iter().cloned());
    }
    // Imports of which nothing is used. Text that did not parse may be what uses them, so
    // this waits until the file parses.
    let used: BTreeSet<_> =
        declarations.used_files.iter().chain(&bodies.used_files).chain(&checked.used_files).copied().collect();
    let mut seen = BTreeSet::new();
    let imports = if syntax.is_empty() { imports(db, file).imports.as_slice() } else { &[] };
    for import in imports {
        let Some(target) = import.target else { continue };
        let target_id = target.id(db);
        if target_id == id || !seen.insert(target_id) || used.contains(&target_id) {
            continue;
        }
        diagnostics.push(
            Diagnostic::new(Code::W1001, id, import.span, format!("nothing from `{}` is used", import.path))
                .with_help("remove this import"),
        );
    }
    flow_diagnostics::sort(&mut diagnostics);
    diagnostics
}

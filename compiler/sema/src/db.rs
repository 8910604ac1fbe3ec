//! The salsa database, its inputs, and the file identities shared by every phase.

use std::collections::BTreeMap;
use std::sync::Arc;

use flow_diagnostics::FileId;

/// The database every query runs against.
#[salsa::db]
pub trait Db: salsa::Database {
    /// The workspace: every file known to this session.
    fn workspace(&self) -> Workspace;
}

/// A `.flow` file's text, as loaded by the CLI or sent by an editor.
#[salsa::input(debug)]
pub struct SourceFile {
    #[returns(copy)]
    pub id: FileId,
    /// The normalised path, as shown in diagnostics.
    #[returns(ref)]
    pub path: String,
    #[returns(ref)]
    pub text: String,
    /// Where the file stops being valid UTF-8, if it does; the text then holds only the
    /// valid prefix's parse is skipped.
    #[returns(copy)]
    pub invalid_utf8_at: Option<u32>,
}

/// What a path in the workspace turned out to be when it was loaded.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Entry {
    Flow(SourceFile),
    /// A file read as bytes: a prompt.
    Asset(Arc<[u8]>),
    Missing,
    Directory,
    Unreadable(String),
}

/// Every file of the session, by normalised path and by id.
#[salsa::input(debug)]
pub struct Workspace {
    #[returns(ref)]
    pub entries: Arc<BTreeMap<String, Entry>>,
    #[returns(ref)]
    pub sources: Arc<Vec<SourceFile>>,
}

impl Workspace {
    /// The source file with this id.
    pub fn file(self, db: &dyn Db, id: FileId) -> Option<SourceFile> {
        self.sources(db).get(id.0 as usize).copied()
    }

    pub fn entry(self, db: &dyn Db, path: &str) -> Option<Entry> {
        self.entries(db).get(path).cloned()
    }
}

/// The concrete database of a compiler session.
#[salsa::db]
#[derive(Clone)]
pub struct Database {
    storage: salsa::Storage<Self>,
    workspace: Option<Workspace>,
}

impl Default for Database {
    fn default() -> Database {
        Database::with_storage(salsa::Storage::default())
    }
}

/// The queries a database executed, in order, as `name(input)` texts.
pub type ExecutionLog = Arc<std::sync::Mutex<Vec<String>>>;

impl Database {
    fn with_storage(storage: salsa::Storage<Database>) -> Database {
        let mut db = Database { storage, workspace: None };
        db.workspace = Some(Workspace::new(&db, Arc::default(), Arc::default()));
        db
    }

    /// A database that logs every query it executes: to see, and test, what an edit
    /// recomputes.
    pub fn logging() -> (Database, ExecutionLog) {
        let log = ExecutionLog::default();
        let sink = log.clone();
        let storage = salsa::Storage::new(Some(Box::new(move |event: salsa::Event| {
            if let salsa::EventKind::WillExecute { database_key } = event.kind
                && let Ok(mut log) = sink.lock()
            {
                log.push(format!("{database_key:?}"));
            }
        })));
        (Database::with_storage(storage), log)
    }
}

impl Database {
    /// The queries executed since `log` was last taken, as `name(path)` texts (for tests of
    /// what an edit recomputes).
    pub fn executed(&self, log: &ExecutionLog) -> Vec<String> {
        let entries = std::mem::take(&mut *log.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
        let paths: Vec<(String, String)> = self
            .workspace()
            .sources(self)
            .iter()
            .map(|f| (format!("{:?}", salsa::plumbing::AsId::as_id(f)), f.path(self).clone()))
            .collect();
        entries
            .into_iter()
            .map(|mut entry| {
                for (id, path) in &paths {
                    entry = entry.replace(&format!("({id})"), &format!("({path})"));
                }
                entry
            })
            .collect()
    }
}

#[salsa::db]
impl salsa::Database for Database {}

#[salsa::db]
impl Db for Database {
    fn workspace(&self) -> Workspace {
        // INVARIANT: `Database::default` sets the workspace before returning the database.
        self.workspace.unwrap_or_else(unreachable_workspace)
    }
}

#[cold]
fn unreachable_workspace() -> Workspace {
    panic!("the database was built without `Database::default`")
}

/// A declaration: the item at `index` of `file`'s syntax tree.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeclId {
    pub file: FileId,
    pub index: u32,
}

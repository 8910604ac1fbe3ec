//! Loading a workspace: the files named by the user and everything they import or prompt.
//!
//! The compiler does no IO of its own: the caller passes a function that reads a path
//! (`read_from_disk` for files on disk, or one that prefers an editor's buffers). Loading
//! follows imports and prompt files until every path that a loaded file names is known, as
//! a file, an asset, or a reason why it could not be read.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use flow_diagnostics::FileId;
use salsa::Setter;

use crate::db::{Database, Db, Entry, SourceFile};
use crate::names::file_requests;

/// Why a path could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReadError {
    NotFound,
    IsDirectory,
    Other(String),
}

/// Reads a file on disk for the loader: a missing file and a directory are told apart
/// from other failures, so that the loader's diagnostics say which it was.
pub fn read_from_disk(path: &str) -> Result<Vec<u8>, ReadError> {
    let metadata = std::fs::metadata(path).map_err(|error| match error.kind() {
        std::io::ErrorKind::NotFound => ReadError::NotFound,
        _ => ReadError::Other(error.to_string()),
    })?;
    if metadata.is_dir() {
        return Err(ReadError::IsDirectory);
    }
    std::fs::read(path).map_err(|error| ReadError::Other(error.to_string()))
}

/// Normalises a path lexically: `/` separators, no `.` components, `..` folded where it can
/// be.
pub fn normalize(path: &str) -> String {
    let absolute = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split(['/', '\\']) {
        match part {
            "" | "." => {}
            ".." if parts.last().is_some_and(|last| *last != "..") => {
                parts.pop();
            }
            ".." if absolute => {}
            _ => parts.push(part),
        }
    }
    let joined = parts.join("/");
    match (absolute, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_owned(),
        (false, false) => joined,
    }
}

/// The path `relative` names when written in the file at `from`.
pub fn resolve_relative(from: &str, relative: &str) -> String {
    if relative.starts_with('/') {
        return normalize(relative);
    }
    let dir = match from.rfind('/') {
        Some(slash) => &from[..slash],
        None => ".",
    };
    normalize(&format!("{dir}/{relative}"))
}

/// What a loaded file asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Request {
    /// `import "…"`: another `.flow` file.
    Import,
    /// A model's `prompt "…"`: bytes to hash.
    Prompt,
}

impl Database {
    /// Adds or replaces a `.flow` file's text and returns it.
    pub fn set_file(&mut self, path: &str, bytes: Vec<u8>) -> SourceFile {
        let path = normalize(path);
        let (text, invalid_utf8_at) = match String::from_utf8(bytes) {
            Ok(text) => (text, None),
            Err(error) => {
                let valid = error.utf8_error().valid_up_to();
                let mut bytes = error.into_bytes();
                bytes.truncate(valid);
                (String::from_utf8(bytes).unwrap_or_default(), Some(valid as u32))
            }
        };
        let workspace = self.workspace();
        if let Some(Entry::Flow(file)) = workspace.entry(self, &path) {
            if file.text(self) != &text {
                file.set_text(self).to(text);
            }
            if file.invalid_utf8_at(self) != invalid_utf8_at {
                file.set_invalid_utf8_at(self).to(invalid_utf8_at);
            }
            return file;
        }
        // Taken out of the input and grown in place (copied only where a clone of the
        // database still holds it), as the entries below.
        let mut sources = Arc::unwrap_or_clone(workspace.set_sources(self).to(Arc::default()));
        let id = FileId(sources.len() as u32);
        let file = SourceFile::new(self, id, path.clone(), text, invalid_utf8_at);
        sources.push(file);
        workspace.set_sources(self).to(Arc::new(sources));
        self.set_entry(path, Entry::Flow(file));
        file
    }

    /// Records what a path turned out to be.
    pub fn set_entry(&mut self, path: String, entry: Entry) {
        let workspace = self.workspace();
        if workspace.entries(self).get(&path) == Some(&entry) {
            return;
        }
        // The map taken out of the input and changed in place, copied only where a clone of
        // the database still holds it: loading n files costs n insertions, not n copies of
        // a growing map (no query runs between the two settings).
        let mut entries: BTreeMap<String, Entry> = Arc::unwrap_or_clone(workspace.set_entries(self).to(Arc::default()));
        entries.insert(path, entry);
        workspace.set_entries(self).to(Arc::new(entries));
    }

    /// Loads `roots` and, transitively, every file they import and every prompt their
    /// models name, reading each path once with `read`. Returns the root files that could
    /// be loaded, and the roots that could not with the reason.
    pub fn load(
        &mut self,
        roots: &[String],
        read: &mut dyn FnMut(&str) -> Result<Vec<u8>, ReadError>,
    ) -> (Vec<SourceFile>, Vec<(String, ReadError)>) {
        let mut loaded = Vec::new();
        let mut failed = Vec::new();
        let mut queue: VecDeque<(String, Request)> =
            roots.iter().map(|root| (normalize(root), Request::Import)).collect();
        let mut roots_left = roots.len();
        let mut seen = std::collections::HashSet::new();
        while let Some((path, request)) = queue.pop_front() {
            let is_root = roots_left > 0;
            roots_left = roots_left.saturating_sub(1);
            if !seen.insert((path.clone(), request)) {
                continue;
            }
            match (read(&path), request) {
                (Ok(bytes), Request::Import) => {
                    if bytes.len() >= u32::MAX as usize {
                        let reason = "the file is larger than 4 GiB".to_owned();
                        if is_root {
                            failed.push((path.clone(), ReadError::Other(reason.clone())));
                        }
                        self.set_entry(path, Entry::Unreadable(reason));
                        continue;
                    }
                    let file = self.set_file(&path, bytes);
                    if is_root {
                        loaded.push(file);
                    }
                    for (kind, target) in file_requests(self, file).iter() {
                        queue.push_back((target.clone(), *kind));
                    }
                }
                (Ok(bytes), Request::Prompt) => self.set_entry(path, Entry::Asset(bytes.into())),
                (Err(error), _) => {
                    if is_root {
                        failed.push((path.clone(), error.clone()));
                    }
                    let entry = match error {
                        ReadError::NotFound => Entry::Missing,
                        ReadError::IsDirectory => Entry::Directory,
                        ReadError::Other(reason) => Entry::Unreadable(reason),
                    };
                    self.set_entry(path, entry);
                }
            }
        }
        (loaded, failed)
    }
}

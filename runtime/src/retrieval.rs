//! Retrievers: what searches a corpus for a `retrieve` step. The trait an embedding
//! application implements, and the three kinds shipped: `folder` (documents in a local
//! directory, ranked by BM25), `command` (a local program speaking JSON on stdin and
//! stdout) and `http` (a service answering a JSON `POST`).
//!
//! A retriever says which snapshot of the corpus it searched; the run compares it with the
//! snapshot the flow pins (`docs/language.md`, "Corpora").

use std::path::{Path, PathBuf};
use std::time::Duration;

use flow_ir::expr::Timestamp;
use flow_ir::plan::Corpus;
use serde_json::{Value as Json, json};

use crate::provider::{ProviderError, run_command_bytes, send, shown_url};

/// What a `retrieve` step asks a retriever.
pub struct RetrievalRequest<'a> {
    /// The step of the flow that asks (not sent to the retriever).
    pub step: &'a str,
    pub corpus: &'a Corpus,
    pub query: &'a str,
    /// At most this many documents, best first.
    pub top: u32,
    /// The run's clock (not sent: a retriever in the process, a test's, may use it).
    pub clock: Timestamp,
}

impl RetrievalRequest<'_> {
    /// The request as a `command` or `http` retriever receives it.
    pub fn to_json(&self) -> Json {
        json!({
            "corpus": self.corpus.name,
            "authority": self.corpus.authority,
            "snapshot": self.corpus.snapshot,
            "query": self.query,
            "top": self.top,
        })
    }
}

/// One document found: its identifier in the corpus and its content, to be checked
/// against the corpus's document type.
#[derive(Clone, Debug, PartialEq)]
pub struct Found {
    pub id: String,
    pub document: Json,
}

/// A retriever's answer.
#[derive(Clone, Debug, PartialEq)]
pub struct RetrievalReply {
    /// The snapshot it searched: a digest or a version.
    pub snapshot: String,
    /// When that snapshot was published, when the retriever knows.
    pub as_of: Option<Timestamp>,
    /// Best first.
    pub documents: Vec<Found>,
    /// How many attempts it took (1 without retries).
    pub attempts: u32,
}

impl RetrievalReply {
    /// Reads an answer: `{"snapshot": "…", "as_of": "2026-…Z"?, "documents": [{"id": "…",
    /// "document": {…}}, …]}`.
    pub fn from_json(json: &Json) -> Result<RetrievalReply, String> {
        let object = json.as_object().ok_or("the answer is not a JSON object")?;
        if let Some(key) = object.keys().find(|k| !matches!(k.as_str(), "snapshot" | "as_of" | "documents")) {
            return Err(format!("the answer has an unknown field `{key}`"));
        }
        let snapshot = match object.get("snapshot") {
            Some(Json::String(s)) if flow_ir::is_snapshot(s) => s.clone(),
            Some(Json::String(_)) => {
                return Err("`snapshot` is not a digest or a version (1 to 128 letters, digits, `.:_+/-`)".to_owned());
            }
            _ => return Err("the answer does not say which snapshot was searched (`snapshot`)".to_owned()),
        };
        let as_of = match object.get("as_of") {
            None | Some(Json::Null) => None,
            Some(Json::String(text)) => {
                let (seconds, nanos) = flow_ir::time::parse_timestamp(text)
                    .ok_or_else(|| format!("`as_of` (`{text}`) is not a timestamp such as `2026-11-01T00:00:00Z`"))?;
                Some(Timestamp { seconds, nanos })
            }
            Some(_) => return Err("`as_of` is not a timestamp".to_owned()),
        };
        let list = object.get("documents").and_then(Json::as_array).ok_or("the answer has no `documents` list")?;
        let mut documents = Vec::with_capacity(list.len());
        for (i, entry) in list.iter().enumerate() {
            let (Some(Json::String(id)), Some(document)) = (entry.get("id"), entry.get("document")) else {
                return Err(format!("document {} has no `id` text and `document`", i + 1));
            };
            documents.push(Found { id: id.clone(), document: document.clone() });
        }
        Ok(RetrievalReply { snapshot, as_of, documents, attempts: 1 })
    }
}

/// Searches corpora.
pub trait Retriever: Send + Sync {
    /// What it is, for the evidence's environment (`folder policies/`).
    fn describe(&self) -> String;
    fn retrieve(&self, request: &RetrievalRequest<'_>) -> Result<RetrievalReply, ProviderError>;
}

/// The `command` retriever: a local program gets the request on stdin and prints the answer.
pub struct CommandRetriever {
    pub command: Vec<String>,
    /// Where it runs; the current directory when absent.
    pub dir: Option<PathBuf>,
    pub timeout: Duration,
}

impl Retriever for CommandRetriever {
    fn describe(&self) -> String {
        format!("command {}", self.command.join(" "))
    }

    fn retrieve(&self, request: &RetrievalRequest<'_>) -> Result<RetrievalReply, ProviderError> {
        let fail = |message: String| ProviderError { message, attempts: 1 };
        let shown = self.command.join(" ");
        let out =
            run_command_bytes(&self.command, self.dir.as_deref(), &request.to_json(), self.timeout).map_err(fail)?;
        // Read exactly, as inputs are: a number floating point would change is refused.
        let text = String::from_utf8(out).map_err(|_| fail(format!("`{shown}` did not print UTF-8 text")))?;
        let answer =
            crate::value::parse_exact(&text).map_err(|e| fail(format!("`{shown}` did not print exact JSON: {e}")))?;
        RetrievalReply::from_json(&answer).map_err(|e| fail(format!("`{shown}`: {e}")))
    }
}

/// The `http` retriever: each search is `POST url` with the request as JSON, with a secret
/// signed as a system's calls are (`Flow-Timestamp`, `Flow-Signature: v1=HEX`, the
/// HMAC-SHA256 of `TIMESTAMP.BODY`), so that the service can tell the search is the
/// deployment's; a `2xx` answer's JSON body is the answer. Transport errors, `408`, `429`
/// and `5xx` are tried again, with a growing pause, up to `retries` times.
pub struct HttpRetriever {
    pub url: String,
    pub secret: Option<Vec<u8>>,
    /// The variable that should hold the secret, when it is not set: every search fails,
    /// naming it, and nothing is sent unsigned.
    pub missing_secret: Option<String>,
    pub timeout: Duration,
    pub retries: u32,
}

impl Retriever for HttpRetriever {
    fn describe(&self) -> String {
        let signed = match (&self.secret, &self.missing_secret) {
            (Some(_), _) => ", signed",
            (None, Some(_)) => ", its secret not set",
            (None, None) => "",
        };
        format!("http {} (timeout {}s, {} retries{signed})", shown_url(&self.url), self.timeout.as_secs(), self.retries)
    }

    fn retrieve(&self, request: &RetrievalRequest<'_>) -> Result<RetrievalReply, ProviderError> {
        if let Some(var) = &self.missing_secret {
            return Err(ProviderError {
                message: format!(
                    "the variable `{var}` holding the secret that signs searches is not set: nothing sent"
                ),
                attempts: 0,
            });
        }
        let config =
            ureq::Agent::config_builder().timeout_global(Some(self.timeout)).http_status_as_error(false).build();
        let agent = ureq::Agent::new_with_config(config);
        let body = request.to_json().to_string();
        let url = shown_url(&self.url);
        let mut attempts = 0;
        loop {
            attempts += 1;
            let mut call = agent.post(&self.url).header("content-type", "application/json");
            if let Some(secret) = &self.secret {
                let timestamp =
                    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs();
                call = call
                    .header("flow-timestamp", &timestamp.to_string())
                    .header("flow-signature", &crate::provider::HttpSystem::signature(secret, timestamp, &body));
            }
            let outcome = match send(call, &url, body.as_bytes()) {
                Ok((status, text)) if (200..300).contains(&status) => crate::value::parse_exact(&text)
                    .map_err(|e| format!("`{url}` did not answer JSON: {e}"))
                    .and_then(|json| RetrievalReply::from_json(&json).map_err(|e| format!("`{url}`: {e}")))
                    .map_err(|e| (e, false)),
                Ok((status, text)) => {
                    let shown: String = text.chars().take(200).collect();
                    Err((
                        format!("`{url}` answered {status}: {shown}"),
                        status == 408 || status == 429 || status >= 500,
                    ))
                }
                Err(error) => Err(error),
            };
            match outcome {
                Ok(reply) => return Ok(RetrievalReply { attempts, ..reply }),
                Err((message, retry)) if !retry || attempts > self.retries => {
                    return Err(ProviderError { message: format!("{message} (after {attempts} attempts)"), attempts });
                }
                Err(_) => std::thread::sleep(Duration::from_millis(200 * u64::from(attempts))),
            }
        }
    }
}

/// The `folder` retriever: every `.md` and `.txt` file of a directory (not its
/// subdirectories) is a document `{"id": file name, "title": its first line without `#`,
/// "text": the whole text}`, ranked for the query by BM25 over lowercase words. The
/// snapshot is [`folder_snapshot`]: a digest of the files' names and contents, so that any
/// change to the folder is another snapshot.
pub struct FolderRetriever {
    pub dir: PathBuf,
    /// The folder as the deployment names it (relative to its configuration), for the
    /// evidence: the same deployment run from another directory is the same deployment.
    pub shown: String,
    /// When the folder's documents were published, as the deployment says.
    pub as_of: Option<Timestamp>,
}

/// The documents of a folder, by file name.
fn folder_documents(dir: &Path) -> Result<Vec<(String, String)>, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("cannot read the folder `{}`: {e}", dir.display()))?;
    let mut documents = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| format!("cannot read the folder `{}`: {e}", dir.display()))?;
        let path = entry.path();
        let is_text = path.extension().is_some_and(|e| e == "md" || e == "txt");
        if !is_text || !path.is_file() {
            continue;
        }
        let Some(name) = path.file_name().and_then(|n| n.to_str()).map(str::to_owned) else { continue };
        let text = std::fs::read_to_string(&path).map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
        documents.push((name, text));
    }
    documents.sort();
    Ok(documents)
}

/// The snapshot of a folder as the `folder` retriever reports it: `blake3:` and the hash of
/// each document's name and the hash of its text, in the order of the names.
pub fn folder_snapshot(dir: &Path) -> Result<String, String> {
    Ok(snapshot_of(&folder_documents(dir)?))
}

fn snapshot_of(documents: &[(String, String)]) -> String {
    let mut hasher = blake3::Hasher::new();
    for (name, text) in documents {
        hasher.update(name.as_bytes());
        hasher.update(&[0]);
        hasher.update(blake3::hash(text.as_bytes()).as_bytes());
        hasher.update(b"\n");
    }
    format!("blake3:{}", hasher.finalize().to_hex())
}

/// Words too common to tell documents apart.
const STOP_WORDS: &[&str] = &[
    "a", "an", "and", "are", "as", "at", "be", "by", "for", "from", "in", "is", "it", "its", "of", "on", "or", "that",
    "the", "this", "to", "up", "with",
];

/// The lowercase words of a text, but the commonest: runs of letters and digits.
fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .filter(|w| !STOP_WORDS.contains(&w.as_str()))
}

/// The documents best matching `query`, best first, at most `top`: BM25 (k1 = 1.2,
/// b = 0.75); documents sharing no word with the query are not found; ties go to the
/// first name.
fn rank<'d>(documents: &'d [(String, String)], query: &str, top: usize) -> Vec<&'d (String, String)> {
    let mut terms: Vec<String> = words(query).collect();
    terms.sort();
    terms.dedup();
    let bags: Vec<Vec<String>> = documents.iter().map(|(_, text)| words(text).collect()).collect();
    let count = documents.len() as f64;
    let average = bags.iter().map(Vec::len).sum::<usize>() as f64 / count.max(1.0);
    let mut scored: Vec<(f64, usize)> = Vec::new();
    for (i, bag) in bags.iter().enumerate() {
        let mut score = 0.0;
        for term in &terms {
            let frequency = bag.iter().filter(|w| *w == term).count() as f64;
            if frequency == 0.0 {
                continue;
            }
            let holding = bags.iter().filter(|b| b.contains(term)).count() as f64;
            let idf = (1.0 + (count - holding + 0.5) / (holding + 0.5)).ln();
            let length = bag.len() as f64 / average.max(1.0);
            score += idf * frequency * 2.2 / (frequency + 1.2 * (0.25 + 0.75 * length));
        }
        if score > 0.0 {
            scored.push((score, i));
        }
    }
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    scored.into_iter().take(top).map(|(_, i)| &documents[i]).collect()
}

impl Retriever for FolderRetriever {
    fn describe(&self) -> String {
        match &self.as_of {
            Some(as_of) => format!("folder {} (as of {as_of})", self.shown),
            None => format!("folder {}", self.shown),
        }
    }

    fn retrieve(&self, request: &RetrievalRequest<'_>) -> Result<RetrievalReply, ProviderError> {
        let documents = folder_documents(&self.dir).map_err(|message| ProviderError { message, attempts: 1 })?;
        let found = rank(&documents, request.query, request.top as usize)
            .into_iter()
            .map(|(name, text)| {
                let title = text
                    .lines()
                    .map(|l| l.trim_start_matches('#').trim())
                    .find(|l| !l.is_empty())
                    .unwrap_or(name.as_str());
                Found { id: name.clone(), document: json!({"id": name, "title": title, "text": text}) }
            })
            .collect();
        Ok(RetrievalReply { snapshot: snapshot_of(&documents), as_of: self.as_of, documents: found, attempts: 1 })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn docs(texts: &[(&str, &str)]) -> Vec<(String, String)> {
        texts.iter().map(|(n, t)| (n.to_string(), t.to_string())).collect()
    }

    #[test]
    fn the_folder_ranks_by_the_words_of_the_query_and_finds_nothing_without_them() {
        let documents = docs(&[
            ("a.md", "# Collateral\nLoans above the limit need collateral."),
            ("b.md", "# Travel\nTravel is booked through the desk."),
            ("c.md", "# Limits\nThe limit of a loan depends on the limit table and collateral collateral."),
        ]);
        let found: Vec<&str> = rank(&documents, "loan collateral", 5).iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(found, ["c.md", "a.md"]);
        assert_eq!(rank(&documents, "loan collateral", 1).len(), 1);
        assert!(rank(&documents, "weather", 5).is_empty());
    }

    #[test]
    fn a_folder_snapshot_changes_with_any_name_or_text() {
        let one = snapshot_of(&docs(&[("a.md", "x"), ("b.md", "y")]));
        assert_ne!(one, snapshot_of(&docs(&[("a.md", "x"), ("b.md", "z")])));
        assert_ne!(one, snapshot_of(&docs(&[("a.md", "x"), ("c.md", "y")])));
        assert_ne!(one, snapshot_of(&docs(&[("a.md", "x")])));
        assert_eq!(one, snapshot_of(&docs(&[("a.md", "x"), ("b.md", "y")])));
    }

    #[test]
    fn an_answer_must_say_its_snapshot_and_give_documents_with_ids() {
        let ok = json!({"snapshot": "v1", "documents": [{"id": "a", "document": {"x": 1}}]});
        assert_eq!(RetrievalReply::from_json(&ok).map(|r| r.documents[0].id.clone()), Ok("a".to_owned()));
        for bad in [
            json!({"documents": []}),
            json!({"snapshot": "", "documents": []}),
            json!({"snapshot": "v1"}),
            json!({"snapshot": "v1", "documents": [{"document": {}}]}),
            json!({"snapshot": "v1", "documents": [], "extra": 1}),
            json!({"snapshot": "v1 with the query's words", "documents": []}),
            json!({"snapshot": "v1", "as_of": "yesterday", "documents": []}),
            json!([]),
        ] {
            assert!(RetrievalReply::from_json(&bad).is_err(), "{bad}");
        }
    }
}

//! Several runtimes on one store, as several processes are: a run executing in one is not
//! changed by another (`E3005`, run-busy), and of two changes of one run made at once, the
//! second to commit is refused whole (`E3009`, run-conflict) instead of forking the run's
//! history. Each runtime here has its own connection to the store file, as a process has.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use flow_runtime::provider::{ModelProvider, ModelReply, ModelRequest, ProviderError};
use flow_runtime::store::SqliteStore;
use flow_runtime::{DecisionInput, ErrorKind, Runtime, StartOptions, Status};
use serde_json::json;

use crate::guarantees::principal;

/// Deciding the review `first` calls the model, which (in the test) lets another process
/// decide the same review before the first process commits, as when two reviewers answer
/// at once.
const FLOW: &str = r#"
role clerk
role manager

type Request {
  id: Text
}

type Score {
  low: Bool
}

model scorer {
  provider "command"
  name "scorer"
  version "1.0.0"
  digest "sha256:0000000000000000000000000000000000000000000000000000000000000001"
  input (approved: Bool)
  output Score
}

flow twice {
  version "1.0.0"
  owner manager
  steward manager

  input request: Request
  output done: Bool

  access {
    trigger by clerk
  }

  review first by manager
    outcomes approve, reject
    reasons ok

  review second by manager
    outcomes approve, reject
    reasons ok

  infer score = scorer(approved: first.outcome == approve)
    fallback Score { low: false }

  gate doubtful: info when degraded(score)

  emit done = second.outcome == approve
}
"#;

/// A model whose call runs `meanwhile` once, as another process would act while this one
/// waits for the model.
struct Meanwhile(Mutex<Option<Box<dyn FnOnce() + Send>>>);

impl ModelProvider for Meanwhile {
    fn describe(&self) -> String {
        "a model that is slow enough for another process".to_owned()
    }

    fn infer(&self, _request: &ModelRequest<'_>) -> Result<ModelReply, ProviderError> {
        if let Some(act) = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take() {
            act();
        }
        Ok(ModelReply { output: json!({"low": true}), attempts: 1 })
    }
}

fn store_path(name: &str) -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("flow-processes-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a directory for the stores");
        dir
    });
    dir.join(name)
}

/// A runtime on the store at `path`, with `model` as the flow's model.
fn runtime(path: &Path, model: Arc<dyn ModelProvider>) -> (Runtime, Arc<flow_runtime::analysis::Analysis>) {
    let checked = crate::check_fixture("main.flow", FLOW.as_bytes());
    assert!(checked.diagnostics.is_empty(), "{}", checked.render());
    let plan = crate::plans(&checked).into_iter().flatten().next().expect("the flow compiles");
    let mut runtime = Runtime::new(Box::new(SqliteStore::open(path).expect("the store opens")));
    runtime.register_model("scorer", model);
    let analysis = runtime.install(plan).expect("the plan installs");
    (runtime, analysis)
}

fn approve() -> DecisionInput {
    DecisionInput { outcome: "approve".to_owned(), reason: Some("ok".to_owned()), basis: None, edits: Vec::new() }
}

#[test]
fn of_two_changes_made_at_once_the_second_to_commit_is_refused() {
    let path = store_path("conflict.db");
    let other: Arc<OnceLock<Runtime>> = Arc::new(OnceLock::new());
    let run_id: Arc<OnceLock<String>> = Arc::new(OnceLock::new());
    let decided_meanwhile = Arc::new(Mutex::new(None));
    let meanwhile = {
        let (other, run_id, decided) = (other.clone(), run_id.clone(), decided_meanwhile.clone());
        Meanwhile(Mutex::new(Some(Box::new(move || {
            let (Some(other), Some(run)) = (other.get(), run_id.get()) else { return };
            let result = other.decide(run, "first", &principal("mia", &["manager"]), &approve());
            *decided.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(result.map(|v| v.status));
        }))))
    };
    let (first, analysis) = runtime(&path, Arc::new(meanwhile));
    let clerk = principal("cleo", &["clerk"]);
    let view = first.start(&analysis, &clerk, &[("request".to_owned(), json!({"id": "R1"}))], &StartOptions::default());
    let run = view.expect("the run starts").run;
    run_id.set(run.clone()).expect("set once");
    let second = runtime(&path, Arc::new(Meanwhile(Mutex::new(None)))).0;
    assert!(other.set(second).is_ok());

    // Deciding `first` calls the model; meanwhile the other process decides `first` too.
    let refused = first.decide(&run, "first", &principal("max", &["manager"]), &approve());
    let meanwhile = decided_meanwhile.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
    assert_eq!(meanwhile.map(|r| r.map_err(|e| e.to_string())), Some(Ok(Status::Pending)), "the other decided first");
    let error = refused.expect_err("the second commit is refused");
    assert_eq!(error.kind(), ErrorKind::Conflict, "{error}");
    assert_eq!(error.code(), "E3009");

    // The run holds the other's decision, once, and not the refused one: it waits for
    // `second`, and asked again, the first process finds `first` decided.
    let now = other.get().expect("set").status(&run, None).expect("the run loads");
    assert_eq!(now.status, Status::Pending);
    assert_eq!(now.pending.iter().map(|p| p.0.as_str()).collect::<Vec<_>>(), ["second"]);
    let decisions = crate::guarantees::path(&first, &run);
    assert_eq!(decisions.iter().filter(|e| e.starts_with("review_decided")).count(), 1, "{decisions:?}");
    let again = first.decide(&run, "first", &principal("max", &["manager"]), &approve());
    assert_eq!(again.expect_err("decided already").kind(), ErrorKind::Decision);
    let done = first.decide(&run, "second", &principal("max", &["manager"]), &approve()).expect("decides");
    assert_eq!(done.status, Status::Completed);
}

#[test]
fn a_run_executing_in_another_process_is_not_changed() {
    let path = store_path("busy.db");
    let (runtime, analysis) = runtime(&path, Arc::new(Meanwhile(Mutex::new(None))));
    let clerk = principal("cleo", &["clerk"]);
    let view =
        runtime.start(&analysis, &clerk, &[("request".to_owned(), json!({"id": "R2"}))], &StartOptions::default());
    let run = view.expect("the run starts").run;
    // As the store shows a run while a process on another host executes it: running, owned,
    // and heard from a moment ago.
    let db = rusqlite::Connection::open(&path).expect("the store opens");
    let now = flow_runtime::now().to_string();
    let changed = db
        .execute(
            "UPDATE runs SET status = 'running', owner = 'another-host/4711', heartbeat = ?1 WHERE id = ?2",
            rusqlite::params![now, run],
        )
        .expect("the record is updated");
    assert_eq!(changed, 1);
    let busy = runtime.decide(&run, "first", &principal("max", &["manager"]), &approve());
    let error = busy.expect_err("the run is busy");
    assert_eq!(error.kind(), ErrorKind::Busy, "{error}");
    assert!(error.to_string().contains("is executing in process another-host/4711"), "{error}");
}

//! Retrieval end to end: the lending exception example searching its policy folder (a
//! changed folder is another snapshot, refused), and a corpus searched by a real program
//! and a real HTTP service, with the evidence naming what was searched and a replay reading
//! what was recorded.

#![expect(clippy::unwrap_used, reason = "tests fail loudly")]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::Value as Json;

use crate::runs::{flowc, json_of, text};

/// A copy of `examples/` (its flows, policies, local models, deployment files).
fn examples(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("flowc-retrieval-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let from = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    for sub in ["", "common", "policies", "models", "inputs", "prompts"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
        for entry in std::fs::read_dir(from.join(sub)).unwrap() {
            let path = entry.unwrap().path();
            if path.is_file() {
                std::fs::copy(&path, dir.join(sub).join(path.file_name().unwrap())).unwrap();
            }
        }
    }
    dir
}

/// The view `flowc run … --format json` printed.
fn start(dir: &Path, args: &[&str]) -> Json {
    json_of(dir, args, 0)
}

#[test]
fn the_lending_exception_searches_its_pinned_policy_folder_and_refuses_another() {
    let dir = examples("folder");
    let run_args = ["run", "credit_exception.flow", "--input", "request=inputs/exception.json", "--as", "olga"];
    let view = start(&dir, &run_args);
    assert_eq!(view["status"], "completed", "{view}");
    let run = view["run"].as_str().unwrap().to_owned();

    // The pinned snapshot is the folder's.
    let snapshot = flowc(&dir, &["corpus", "snapshot", "policies"]);
    assert!(snapshot.status.success(), "{}", text(&snapshot));
    let snapshot = String::from_utf8_lossy(&snapshot.stdout).trim().to_owned();
    let source = std::fs::read_to_string(dir.join("credit_exception.flow")).unwrap();
    assert!(source.contains(&format!("snapshot \"{snapshot}\"")), "the example pins {snapshot}");

    // The evidence names the snapshot and each passage, for those who may see them.
    let shown = text(&flowc(&dir, &["show", &run, "--as", "aud"]));
    assert!(shown.contains(&format!("at snapshot {snapshot} (as pinned), via folder")), "{shown}");
    assert!(shown.contains("collateral.md (blake3:"), "{shown}");
    let hidden = text(&flowc(&dir, &["show", &run, "--as", "olga"]));
    assert!(!hidden.contains("collateral.md (blake3:") && hidden.contains("[redacted: confidential]"), "{hidden}");
    let replay = flowc(&dir, &["replay", &run, "--as", "aud"]);
    assert!(text(&replay).contains("replayed exactly"), "{}", text(&replay));
    let export = flowc(&dir, &["evidence", &run, "--as", "aud", "-o", "bundle.json"]);
    assert!(export.status.success(), "{}", text(&export));
    let verified = flowc(&dir, &["verify", "bundle.json"]);
    assert!(verified.status.success(), "{}", text(&verified));
    // The deployment digest covers the retriever: another folder is another deployment.
    let bundle: Json = serde_json::from_str(&std::fs::read_to_string(dir.join("bundle.json")).unwrap()).unwrap();
    let first = &bundle["events"][0]["event"];
    assert_eq!(first["environment"]["providers"]["corpus lending_policy"], "folder policies", "{first}");

    // Any change of the folder is another snapshot, which the corpus refuses.
    let travel = dir.join("policies/travel.md");
    let amended = format!("{}\nAmended.\n", std::fs::read_to_string(&travel).unwrap());
    std::fs::write(&travel, amended).unwrap();
    let refused = start(&dir, &run_args);
    assert_eq!(refused["status"], "failed", "{refused}");
    let summary = refused["summary"].as_str().unwrap();
    assert!(summary.contains(&format!("but the flow pins `{snapshot}`")), "{summary}");
    let again = flowc(&dir, &["replay", refused["run"].as_str().unwrap(), "--as", "aud"]);
    assert!(text(&again).contains("replayed exactly"), "{}", text(&again));

    // Pinning another snapshot is a material change of the flow.
    let other = source.replace(&snapshot, "blake3:0000000000000000000000000000000000000000000000000000000000000000");
    std::fs::write(dir.join("other.flow"), other).unwrap();
    let diff = flowc(&dir, &["diff", "credit_exception.flow", "other.flow"]);
    assert_eq!(diff.status.code(), Some(3), "{}", text(&diff));
    assert!(text(&diff).contains("corpus `lending_policy`: snapshot"), "{}", text(&diff));

    // A folder that cannot be read.
    let missing = flowc(&dir, &["corpus", "snapshot", "no-such-folder"]);
    assert_eq!(missing.status.code(), Some(2), "{}", text(&missing));
}

/// Kills the process when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A deployment of `tests/runs/lending.flow` whose corpus `policy` is searched as `corpus`
/// (a `[corpora.policy]` table's body).
fn lending(name: &str, corpus: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("flowc-retrieval-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/runs");
    for file in ["lending.flow", "retriever.py"] {
        std::fs::copy(fixtures.join(file), dir.join(file)).unwrap();
    }
    std::fs::write(dir.join("flow-principals.toml"), "[principals]\ncleo = [\"clerk\"]\naud = [\"auditor\"]\n")
        .unwrap();
    std::fs::write(dir.join("flow.toml"), format!("[corpora.policy]\n{corpus}\n")).unwrap();
    std::fs::write(dir.join("request.json"), r#"{"id": "R1", "purpose": "audited loan"}"#).unwrap();
    dir
}

/// Starts a run of the lending flow; its view (as the clerk sees it).
fn search(dir: &Path) -> Json {
    json_of(dir, &["run", "lending.flow", "--input", "request=request.json", "--as", "cleo"], 0)
}

/// Starts a run of the lending flow with `RETRIEVER_SECRET` set to `secret`.
fn with_secret(dir: &Path, secret: &str) -> Json {
    let output = Command::new(env!("CARGO_BIN_EXE_flowc"))
        .args(["run", "lending.flow", "--input", "request=request.json", "--as", "cleo", "--format", "json"])
        .current_dir(dir)
        .env("RETRIEVER_SECRET", secret)
        .env_remove("FLOW_STORE")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    serde_json::from_slice(&output.stdout).unwrap()
}

#[test]
fn a_corpus_searched_by_a_program_and_over_http() {
    // A program.
    let dir = lending("command", "command = [\"python3\", \"retriever.py\"]");
    let view = search(&dir);
    assert_eq!(view["status"], "completed", "{view}");
    assert_eq!(view["outputs"]["result"]["stale"], false, "{view}");
    let run = view["run"].as_str().unwrap();
    let shown = text(&flowc(&dir, &["show", run, "--as", "aud"]));
    assert!(shown.contains("via command python3 retriever.py") && shown.contains("ltv (blake3:"), "{shown}");
    assert!(shown.contains("result = {count: 1, stale: false}"), "{shown}");
    assert!(text(&flowc(&dir, &["replay", run, "--as", "aud"])).contains("replayed exactly"));

    // A service that is down for a moment, tried again; it searched another snapshot, which
    // this corpus takes, degraded.
    let dir = lending("http", "");
    let mut service = Command::new("python3")
        .args(["retriever.py", "serve"])
        .current_dir(&dir)
        .env("FAIL_FIRST", "2")
        .env("SNAPSHOT", "v8")
        .env("SECRET", "s3cret")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = service.stdout.take().unwrap();
    let _service = Killed(service);
    let mut port = String::new();
    BufReader::new(stdout).read_line(&mut port).unwrap();
    let url = format!("http://127.0.0.1:{}/search", port.trim());
    let config = format!("[corpora.policy]\nurl = \"{url}\"\nsecret_env = \"RETRIEVER_SECRET\"\nretries = 3\n");
    std::fs::write(dir.join("flow.toml"), config).unwrap();
    // Signed with another secret, the search is refused (401, not tried again).
    let refused = with_secret(&dir, "not-the-secret");
    assert_eq!(refused["status"], "failed", "{refused}");
    let view = with_secret(&dir, "s3cret");
    assert_eq!(view["status"], "completed", "{view}");
    assert_eq!(view["outputs"]["result"]["stale"], true, "{view}");
    let run = view["run"].as_str().unwrap();
    let shown = text(&flowc(&dir, &["show", run, "--as", "aud"]));
    assert!(shown.contains(&format!("via http {url} (timeout 30s, 3 retries, signed)")), "{shown}");
    assert!(shown.contains("DEGRADED — corpus `policy`: it searched snapshot `v8`, but the flow pins `v7`"), "{shown}");
    assert!(text(&flowc(&dir, &["replay", run, "--as", "aud"])).contains("replayed exactly"));

    // A program whose answer does not say what it searched fails the step, saying why.
    let dir = lending("broken", "command = [\"python3\", \"retriever.py\"]");
    let config = std::fs::read_to_string(dir.join("flow.toml")).unwrap();
    std::fs::write(dir.join("flow.toml"), config.replace("command = [", "command = [\"env\", \"BROKEN=1\", ")).unwrap();
    let view = search(&dir);
    assert_eq!(view["status"], "failed", "{view}");
    let run = view["run"].as_str().unwrap();
    let shown = text(&flowc(&dir, &["show", run, "--as", "aud"]));
    assert!(shown.contains("does not say which snapshot was searched"), "{shown}");

    // A corpus configured two ways, or not at all, is refused with what to write.
    let dir = lending("twice", "folder = \"docs\"\nurl = \"http://127.0.0.1:1/\"");
    let output = flowc(&dir, &["run", "lending.flow", "--input", "request=request.json", "--as", "cleo"]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(text(&output).contains("corpus `policy` needs one of `folder"), "{}", text(&output));
    let dir = lending("none", "");
    std::fs::write(dir.join("flow.toml"), "").unwrap();
    let view = search(&dir);
    assert_eq!(view["status"], "failed", "{view}");
    assert!(view["summary"].as_str().unwrap().contains("no retriever is configured"), "{view}");
}

/// A search that failed (the retriever was down) is tried again when the run is resumed:
/// the evidence keeps both searches, and the replay reads each as it was.
#[test]
fn a_failed_search_is_tried_again_on_resume_and_replays_exactly() {
    let dir = lending("resume", "command = [\"python3\", \"not-there.py\"]");
    let view = search(&dir);
    assert_eq!(view["status"], "failed", "{view}");
    let run = view["run"].as_str().unwrap().to_owned();
    std::fs::write(dir.join("flow.toml"), "[corpora.policy]\ncommand = [\"python3\", \"retriever.py\"]\n").unwrap();
    let resumed = json_of(&dir, &["resume", &run, "--as", "aud", "--reason", "retriever_back"], 0);
    assert_eq!(resumed["status"], "completed", "{resumed}");
    let shown = text(&flowc(&dir, &["show", &run, "--as", "aud"]));
    assert!(
        shown.contains("via command python3 not-there.py") && shown.contains("via command python3 retriever.py"),
        "{shown}"
    );
    assert!(text(&flowc(&dir, &["replay", &run, "--as", "aud"])).contains("replayed exactly"));

    // A corpus configured only after its first search found no retriever: the replay finds
    // none again at that attempt, and the recorded search at the next.
    let dir = lending("unconfigured", "");
    std::fs::write(dir.join("flow.toml"), "").unwrap();
    let view = search(&dir);
    assert_eq!(view["status"], "failed", "{view}");
    let run = view["run"].as_str().unwrap().to_owned();
    std::fs::write(dir.join("flow.toml"), "[corpora.policy]\ncommand = [\"python3\", \"retriever.py\"]\n").unwrap();
    let resumed = json_of(&dir, &["resume", &run, "--as", "aud", "--reason", "configured"], 0);
    assert_eq!(resumed["status"], "completed", "{resumed}");
    let replay = flowc(&dir, &["replay", &run, "--as", "aud"]);
    assert!(text(&replay).contains("replayed exactly"), "{}", text(&replay));
}

//! `flowc release` end to end on a deployment whose `flow.toml` says it is `prod`, under
//! release control: nothing runs before a release is published; a plan reaches prod only
//! through dev, as the same hash, approved by two people other than its author who hold
//! the approvers' roles; the run names its release and approvers; a changed source is
//! refused until its own release is published; the exported release log verifies, and
//! fails once changed. On SQLite and PostgreSQL.

#![expect(clippy::unwrap_used, reason = "tests fail loudly")]

use std::path::Path;

use serde_json::{Value as Json, json};

use crate::runs::{AT, deployment_on, evidence_verifies, flowc, json_of, request, stores, text};

const RULES: &str = r#"
[[environments]]
name = "dev"
approvals = 0

[[environments]]
name = "prod"
controlled = true

[[rules]]
flows = ["loan"]
authors = ["officer"]
approvers = ["manager", "director"]
approvals = 2
"#;

/// `flowc release ARGS --format json`, which must exit `code`.
fn release(dir: &Path, args: &[&str], code: i32) -> Json {
    let mut all = vec!["release"];
    all.extend(args);
    json_of(dir, &all, code)
}

/// A step that must fail with `code` and say `said`.
fn refused(dir: &Path, args: &[&str], said: &str) {
    let mut all = vec!["release"];
    all.extend(args);
    let output = flowc(dir, &all);
    assert_eq!(output.status.code(), Some(1), "{args:?}: {}", text(&output));
    assert!(text(&output).contains(said), "{args:?}: {}", text(&output));
}

fn start(dir: &Path, id: &str) -> std::process::Output {
    let input = request(dir, id, "800", "carl");
    flowc(dir, &["run", "loan.flow", "--input", &input, "--as", "carl", "--at", AT, "--format", "json"])
}

#[test]
fn a_change_reaches_prod_only_through_an_approved_release() {
    for postgres in stores("releases") {
        let dir = deployment_on("releases", postgres.as_deref());
        std::fs::write(dir.join("flow-governance.toml"), RULES).unwrap();
        let mut config = std::fs::read_to_string(dir.join("flow.toml")).unwrap();
        config.push_str("\n[release]\nenvironment = \"prod\"\n");
        std::fs::write(dir.join("flow.toml"), config).unwrap();

        // Nothing is published: no run starts, and the refusal is recorded.
        let output = start(&dir, "L1");
        assert_eq!(output.status.code(), Some(1), "{}", text(&output));
        assert!(text(&output).contains("no release of `loan` is published in prod"), "{}", text(&output));
        let refusals = json_of(&dir, &["refusals"], 0);
        assert!(refusals.to_string().contains("\"grant\":\"release\""), "{refusals}");

        // Prod takes only what is live in dev; only an author proposes.
        refused(
            &dir,
            &["propose", "loan.flow", "--env", "prod", "--as", "olga", "--reason", "first"],
            "not live in dev",
        );
        refused(&dir, &["propose", "loan.flow", "--env", "dev", "--as", "max", "--reason", "first"], "may not author");
        let dev = release(&dir, &["propose", "loan.flow", "--env", "dev", "--as", "olga", "--reason", "first"], 0);
        assert_eq!((dev["release"].clone(), dev["approvals_needed"].clone()), (json!("rel-1"), json!(0)), "{dev}");
        assert_eq!(dev["source"], "loan.flow");
        assert_eq!(release(&dir, &["publish", "rel-1", "--as", "olga"], 0)["state"], "live");

        // Promoted to prod as the same hash; two approvers besides the author.
        let prod = release(&dir, &["propose", "--flow", "loan", "--env", "prod", "--as", "olga", "--reason", "go"], 0);
        assert_eq!((prod["release"].clone(), prod["plan"].clone()), (json!("rel-2"), dev["plan"].clone()));
        assert_eq!((prod["promoted_from"].clone(), prod["approvals_needed"].clone()), (json!("rel-1"), json!(2)));
        refused(&dir, &["approve", "rel-2", "--as", "olga", "--reason", "mine"], "four eyes");
        refused(&dir, &["approve", "rel-2", "--as", "carl", "--reason", "ok"], "may not approve");
        refused(&dir, &["publish", "rel-2", "--as", "olga"], "has 0 of the 2 approvals");
        release(&dir, &["approve", "rel-2", "--as", "max", "--reason", "limits checked"], 0);
        refused(&dir, &["approve", "rel-2", "--as", "max", "--reason", "again"], "approved `rel-2` already");
        let approved = release(&dir, &["approve", "rel-2", "--as", "dora", "--reason", "fine"], 0);
        assert_eq!(approved["state"], "approved");
        refused(&dir, &["publish", "rel-2", "--as", "max"], "may not publish");
        assert_eq!(release(&dir, &["publish", "rel-2", "--as", "olga"], 0)["state"], "live");

        // The run names the release that made its plan live, and who approved it.
        let output = start(&dir, "L2");
        assert_eq!(output.status.code(), Some(0), "{}", text(&output));
        let run: Json = serde_json::from_slice(&output.stdout).unwrap();
        let bundle = evidence_verifies(&dir, run["run"].as_str().unwrap());
        let bundle: Json = serde_json::from_str(&std::fs::read_to_string(bundle).unwrap()).unwrap();
        assert!(bundle["events"][0]["event"]["deployment"].as_str().unwrap().starts_with("blake3:"));
        let named = &bundle["events"][0]["event"]["release"];
        assert_eq!(
            *named,
            json!({
                "environment": "prod", "release": "rel-2", "author": "olga", "approvers": ["max", "dora"],
                "published_by": "olga", "entry": named["entry"], "hash": named["hash"],
            })
        );

        // A changed source is not what prod runs until its own release is published.
        let source = std::fs::read_to_string(dir.join("loan.flow")).unwrap();
        std::fs::write(dir.join("loan.flow"), source.replace("= 5_000 USD", "= 6_000 USD")).unwrap();
        let output = start(&dir, "L3");
        assert_eq!(output.status.code(), Some(1), "{}", text(&output));
        assert!(text(&output).contains("is not the version published in prod: rel-2"), "{}", text(&output));
        release(&dir, &["propose", "loan.flow", "--env", "dev", "--as", "olga", "--reason", "raise"], 0);
        release(&dir, &["publish", "rel-3", "--as", "olga"], 0);
        let change = release(&dir, &["propose", "--flow", "loan", "--env", "prod", "--as", "olga", "--reason", "r"], 0);
        assert_eq!(change["material"], true);
        assert_eq!(change["changes"][0]["subject"], "param `limit`", "{change}");
        let shown = flowc(&dir, &["release", "show", "rel-4"]);
        assert!(text(&shown).contains("replaces rel-2"), "{}", text(&shown));
        assert!(text(&shown).contains("waiting for 2 more approvals"), "{}", text(&shown));
        // Rejected by an approver: nothing more happens to it.
        assert_eq!(
            release(&dir, &["reject", "rel-4", "--as", "dora", "--reason", "not this quarter"], 0)["state"],
            "rejected"
        );
        refused(&dir, &["approve", "rel-4", "--as", "max", "--reason", "ok"], "rejected already");

        // The log, exported, verifies without the store; changed, it does not.
        let exported = dir.join("releases.json");
        let output = flowc(&dir, &["release", "log", "--export", exported.to_str().unwrap(), "--as", "aud"]);
        assert_eq!(output.status.code(), Some(0), "{}", text(&output));
        let output = flowc(&dir, &["verify", exported.to_str().unwrap()]);
        assert_eq!(output.status.code(), Some(0), "{}", text(&output));
        assert!(text(&output).contains("verified release log: 10 entries, 4 releases"), "{}", text(&output));
        assert!(text(&output).contains("live in prod: loan by rel-2"), "{}", text(&output));
        let log = std::fs::read_to_string(&exported).unwrap();
        std::fs::write(&exported, log.replace("limits checked", "limits ignored")).unwrap();
        let output = flowc(&dir, &["verify", exported.to_str().unwrap()]);
        assert_eq!(output.status.code(), Some(1), "{}", text(&output));
        let listed = flowc(&dir, &["release", "log", "--env", "prod"]);
        assert!(text(&listed).contains("rel-2 loan 1.0.0 → prod: live"), "{}", text(&listed));
        let audit = flowc(&dir, &["audit"]);
        assert_eq!(audit.status.code(), Some(0), "{}", text(&audit));
    }
}

/// Two runs whose deployments differ — a model's timeout, the engine — and whose plans
/// differ: `flowc diff --runs` says each difference in words; each run's evidence carries
/// the digest of its deployment, which `flowc verify` computes again.
#[test]
fn the_deployments_of_two_runs_differ_in_words() {
    let dir = deployment_on("deployments", None);
    let first = start(&dir, "D1");
    assert_eq!(first.status.code(), Some(0), "{}", text(&first));
    let first: Json = serde_json::from_slice(&first.stdout).unwrap();
    let config = std::fs::read_to_string(dir.join("flow.toml")).unwrap();
    std::fs::write(dir.join("flow.toml"), config.replace("timeout = \"10s\"", "timeout = \"30s\"")).unwrap();
    let source = std::fs::read_to_string(dir.join("loan.flow")).unwrap();
    std::fs::write(dir.join("loan.flow"), source.replace("= 5_000 USD", "= 6_000 USD")).unwrap();
    let input = request(&dir, "D2", "800", "carl");
    let second =
        json_of(&dir, &["run", "loan.flow", "--input", &input, "--as", "carl", "--at", AT, "--engine", "interp"], 0);
    let (a, b) = (first["run"].as_str().unwrap(), second["run"].as_str().unwrap());

    let output = flowc(&dir, &["diff", "--runs", a, b]);
    assert_eq!(output.status.code(), Some(3), "a material change of the plan: {}", text(&output));
    let said = text(&output);
    for part in [
        "  engine: jit → interpreter\n",
        "  model scorer: command python3 scorer.py (timeout 10s) → command python3 scorer.py (timeout 30s)\n",
        "  param `limit`: default 5,000 USD → 6,000 USD\n",
    ] {
        assert!(said.contains(part), "`{part}` missing: {said}");
    }
    assert!(!said.contains("  release:"), "{said}");
    let json = json_of(&dir, &["diff", "--runs", a, b], 3);
    assert_ne!(json["old"]["deployment"], json["new"]["deployment"], "{json}");
    assert!(json["old"]["deployment"].as_str().unwrap().starts_with("blake3:"), "{json}");
    let same = flowc(&dir, &["diff", "--runs", a, a]);
    assert!(text(&same).contains("deployment: the same"), "{}", text(&same));
    let unknown = flowc(&dir, &["diff", "--runs", a, "r-000000000000000000000000"]);
    assert_eq!(unknown.status.code(), Some(1), "{}", text(&unknown));

    // The digest is of what the start records: changed with it, the bundle does not verify.
    let bundle = evidence_verifies(&dir, b);
    let mut json: Json = serde_json::from_str(&std::fs::read_to_string(&bundle).unwrap()).unwrap();
    json["events"][0]["event"]["deployment"] =
        json!(json["events"][0]["event"]["deployment"].as_str().unwrap().replace('a', "b"));
    let event = json["events"][0]["event"].clone();
    let hash = flow_runtime::digest::event_hash(
        flow_runtime::digest::GENESIS,
        0,
        json["events"][0]["at"].as_str().unwrap(),
        &event,
    );
    json["events"][0]["hash"] = json!(hash);
    // The rest of the chain is left: the first problem named is the digest.
    crate::runs::redigest(&mut json);
    std::fs::write(&bundle, flow_runtime::evidence::render(&json)).unwrap();
    let output = flowc(&dir, &["verify", bundle.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    assert!(text(&output).contains("deployment digest is not the digest"), "{}", text(&output));
}

/// `examples/release-demo.sh`: the spend approval reaching prod through releases, as the
/// docs tell it.
#[test]
fn the_release_demo_runs() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/release-demo.sh");
    let output = std::process::Command::new("bash")
        .arg(script)
        .env("FLOWC", env!("CARGO_BIN_EXE_flowc"))
        .env("NO_COLOR", "1")
        .env_remove("FLOW_STORE")
        .output()
        .unwrap();
    let said = text(&output);
    assert!(output.status.success(), "{said}");
    for line in [
        "no release of `spend_approval` is published in prod",
        "pat proposed `rel-2` and may not approve it (four eyes)",
        "release rel-3: spend_approval 2.1.0 → prod, live",
        "\"release\": \"rel-3\"",
        "verified release log: 9 entries, 3 releases",
        "waiting runs: those on the old version migrate to the new one",
        "MIGRATED, waiting, to version 2.2.0",
        "made live in prod by rel-6 (published by pat)",
        ", migrated to plan blake3:",
        "replayed exactly: 16 events",
    ] {
        assert!(said.contains(line), "`{line}` missing: {said}");
    }
}

/// Waiting runs and a new version: a run waiting at a review on 1.0.0 stays on it when 1.1.0
/// does not say `migrate waiting`, and when 1.2.0, which says so, replaces 1.1.0; `flowc diff`
/// and `flowc release propose` refuse a version that says so but removes what runs wait at;
/// a run waiting on 1.1.0 continues on 1.2.0 at its next decision — recorded, shown, verified
/// and replayed exactly across the switch. On SQLite and PostgreSQL.
#[test]
fn a_waiting_run_migrates_to_a_version_that_says_so() {
    const ONE_APPROVER: &str = r#"
[[environments]]
name = "prod"
controlled = true

[[rules]]
flows = ["loan"]
authors = ["officer"]
approvers = ["manager"]
approvals = 1
"#;
    for postgres in stores("migration") {
        let dir = deployment_on("migration", postgres.as_deref());
        std::fs::write(dir.join("flow-governance.toml"), ONE_APPROVER).unwrap();
        let mut config = std::fs::read_to_string(dir.join("flow.toml")).unwrap();
        config.push_str("\n[release]\nenvironment = \"prod\"\n");
        std::fs::write(dir.join("flow.toml"), config).unwrap();
        let publish = |file: &str, id: &str| {
            release(&dir, &["propose", file, "--env", "prod", "--as", "olga", "--reason", "new"], 0);
            release(&dir, &["approve", id, "--as", "max", "--reason", "ok"], 0);
            assert_eq!(release(&dir, &["publish", id, "--as", "olga"], 0)["state"], "live");
        };
        publish("loan.flow", "rel-1");
        // 5,000 USD: the scorer is not sure, the review waits.
        let input = request(&dir, "M1", "5000", "carl");
        let run = json_of(&dir, &["run", "loan.flow", "--input", &input, "--as", "carl", "--at", AT], 0);
        let run = run["run"].as_str().unwrap().to_owned();
        assert_eq!(json_of(&dir, &["status", &run], 0)["status"], "pending");

        let source = std::fs::read_to_string(dir.join("loan.flow")).unwrap();
        let version = |v: &str| source.replace("version \"1.0.0\"", &format!("version \"{v}\""));
        std::fs::write(dir.join("pinned.flow"), version("1.1.0").replace("= 5_000 USD", "= 4_000 USD")).unwrap();
        let migrating = |v: &str| version(v).replace("  steward officer\n", "  steward officer\n  migrate waiting\n");
        let broken = migrating("1.2.0").replace("outcomes approve, reject", "outcomes approve, reject, defer");
        std::fs::write(dir.join("broken.flow"), broken).unwrap();
        let added = "  gate notable: info when big\n  gate over_four: info when request.amount > 4_000 USD\n";
        std::fs::write(dir.join("next.flow"), migrating("1.2.0").replace("  gate notable: info when big\n", added))
            .unwrap();

        // Compile-time: a version that says it migrates must be one runs can migrate to.
        let output = flowc(&dir, &["diff", "loan.flow", "broken.flow"]);
        assert_eq!(output.status.code(), Some(1), "{}", text(&output));
        assert!(text(&output).contains("review `check` changes its outcomes"), "{}", text(&output));
        let output = flowc(&dir, &["diff", "loan.flow", "next.flow"]);
        assert_eq!(output.status.code(), Some(3), "{}", text(&output));
        for said in
            ["waiting runs: stay on their version → migrate to a new version", "those on the old version migrate"]
        {
            assert!(text(&output).contains(said), "{said}: {}", text(&output));
        }
        let json = json_of(&dir, &["diff", "loan.flow", "next.flow"], 3);
        assert_eq!(json["migration"], json!({"allowed": true, "problems": []}), "{json}");
        // Between two versions that say it, the changes say it once; where runs cannot
        // migrate, only the error says what they do.
        let later = std::fs::read_to_string(dir.join("next.flow")).unwrap().replace("= 5_000 USD", "= 4_500 USD");
        std::fs::write(dir.join("later.flow"), &later).unwrap();
        let output = flowc(&dir, &["diff", "next.flow", "later.flow"]);
        assert_eq!(output.status.code(), Some(3), "{}", text(&output));
        assert_eq!(text(&output).matches("migrate").count(), 1, "{}", text(&output));
        assert!(text(&output).contains("the new version says they migrate, as the old one did"), "{}", text(&output));
        std::fs::write(dir.join("later.flow"), later.replace("reasons ok, doubtful", "reasons ok, doubtful, unsure"))
            .unwrap();
        let output = flowc(&dir, &["diff", "next.flow", "later.flow"]);
        assert_eq!(output.status.code(), Some(1), "{}", text(&output));
        assert!(text(&output).contains("cannot migrate to it"), "{}", text(&output));

        // 1.1.0 does not migrate: the run stays on 1.0.0. A run on 1.1.0 waits too.
        publish("pinned.flow", "rel-2");
        let old = run;
        let input = request(&dir, "M2", "5000", "carl");
        let run = json_of(&dir, &["run", "pinned.flow", "--input", &input, "--as", "carl", "--at", AT], 0);
        let run = run["run"].as_str().unwrap().to_owned();
        refused(
            &dir,
            &["propose", "broken.flow", "--env", "prod", "--as", "olga", "--reason", "defer"],
            "cannot migrate to it",
        );
        publish("next.flow", "rel-3");
        let pinned = json_of(&dir, &["release", "show", "rel-2"], 0)["plan"].clone();
        let status = json_of(&dir, &["status", &run], 0);
        assert_eq!(status["status"], "pending", "{status}");

        // The run on 1.0.0 stays there: 1.2.0 replaced 1.1.0, the difference its approvers saw.
        let output = flowc(&dir, &["decide", &old, "check", "--as", "max", "--outcome", "approve", "--reason", "ok"]);
        assert_eq!(output.status.code(), Some(0), "{}", text(&output));
        assert!(!text(&flowc(&dir, &["show", &old, "--as", "aud"])).contains("MIGRATED"));
        // The run on 1.1.0, decided, migrates to 1.2.0 and goes on there.
        let output = flowc(&dir, &["decide", &run, "check", "--as", "max", "--outcome", "approve", "--reason", "ok"]);
        assert_eq!(output.status.code(), Some(0), "{}", text(&output));
        let shown = flowc(&dir, &["show", &run, "--as", "aud"]);
        let shown = text(&shown);
        assert!(shown.contains("MIGRATED, waiting, to version 1.2.0"), "{shown}");
        assert!(shown.contains("made live in prod by rel-3 (published by olga)"), "{shown}");
        assert!(shown.contains("gate over_four (info): held"), "{shown}");
        for who in ["max", "mia"] {
            let output = flowc(&dir, &["decide", &run, "sign", "--as", who, "--outcome", "approve", "--reason", "ok"]);
            assert_eq!(output.status.code(), Some(0), "{}", text(&output));
        }
        assert_eq!(json_of(&dir, &["status", &run], 0)["status"], "completed");
        let bundle = evidence_verifies(&dir, &run);
        let mut json: Json = serde_json::from_str(&std::fs::read_to_string(&bundle).unwrap()).unwrap();
        assert_eq!(json["plan_hash"], pinned, "the bundle names the plan the run started on");
        assert_eq!(json["later_plans"].as_array().map(Vec::len), Some(1), "{}", json["later_plans"]);
        let migrated = json["events"].as_array().unwrap().iter().find(|e| e["event"]["event"] == "migrated").unwrap();
        assert_eq!(migrated["event"]["from"], pinned);
        assert_eq!(migrated["event"]["release"]["release"], "rel-3");
        // Its deployment is the one it migrated in.
        let deployment = flowc(&dir, &["diff", "--runs", &run, &run]);
        assert!(text(&deployment).contains("deployment: the same"), "{}", text(&deployment));
        // Without the plan it migrated to, the evidence does not verify.
        json.as_object_mut().unwrap().remove("later_plans");
        crate::runs::redigest(&mut json);
        std::fs::write(&bundle, flow_runtime::evidence::render(&json)).unwrap();
        let output = flowc(&dir, &["verify", bundle.to_str().unwrap()]);
        assert_eq!(output.status.code(), Some(1), "{}", text(&output));
        assert!(text(&output).contains("which the evidence does not carry"), "{}", text(&output));
        // Every stored run replays exactly; the store audits clean.
        let replayed = json_of(&dir, &["replay", "--all", "--as", "aud"], 0);
        assert_eq!(replayed["exact"], 2, "{replayed}");
        let audit = flowc(&dir, &["audit"]);
        assert_eq!(audit.status.code(), Some(0), "{}", text(&audit));
    }
}

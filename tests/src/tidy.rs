//! Tidy checks of the workspace itself: every Rust file says what it is for, and the crate
//! graph keeps its architecture invariants (ARCHITECTURE.md).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The workspace's root directory, without `..` in it (tests match on path parts).
pub(crate) fn root() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    root.canonicalize().unwrap_or(root)
}

/// The Rust files under `dir`, leaving out build output and hidden directories.
pub(crate) fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.filter_map(Result::ok) {
        let path = entry.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if path.is_dir() && name != "target" && !name.starts_with('.') {
            rust_files(&path, out);
        } else if name.ends_with(".rs") {
            out.push(path);
        }
    }
}

/// The folders that hold the workspace's crates (examples aside).
pub(crate) const WORKSPACE_DIRS: [&str; 10] =
    ["compiler", "ir", "runtime", "bench", "lsp", "test-runner", "server", "cli", "tests/src", "fuzz/fuzz_targets"];

#[test]
fn every_rust_file_starts_with_a_module_comment() {
    let mut files = Vec::new();
    for dir in WORKSPACE_DIRS {
        rust_files(&root().join(dir), &mut files);
    }
    assert!(!files.is_empty());
    let missing: Vec<String> = files
        .iter()
        .filter(|f| !std::fs::read_to_string(f).is_ok_and(|t| t.starts_with("//!")))
        .map(|f| f.display().to_string())
        .collect();
    assert!(missing.is_empty(), "files without a `//!` comment: {missing:?}");
}

/// Each workspace package with the names of its normal dependencies, and its directory.
fn packages() -> BTreeMap<String, (BTreeSet<String>, PathBuf)> {
    let output = std::process::Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--no-deps", "--offline"])
        .current_dir(root())
        .output()
        .expect("cargo metadata runs");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout).expect("cargo metadata prints JSON");
    let mut packages = BTreeMap::new();
    for package in metadata["packages"].as_array().into_iter().flatten() {
        let name = package["name"].as_str().unwrap_or("").to_owned();
        let deps: BTreeSet<String> = package["dependencies"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|d| d["kind"].is_null())
            .filter_map(|d| d["name"].as_str().map(str::to_owned))
            .collect();
        let dir = PathBuf::from(package["manifest_path"].as_str().unwrap_or(""))
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        packages.insert(name, (deps, dir));
    }
    packages
}

#[test]
fn crate_graph_keeps_its_invariants() {
    let packages = packages();
    assert!(packages.contains_key("flow-sema"), "{:?}", packages.keys());
    for (name, (deps, dir)) in &packages {
        let uses = |dep: &str| deps.contains(dep);
        if uses("pest") || uses("pest_derive") {
            assert_eq!(name, "flow-grammar", "only flow-grammar may use pest");
        }
        if uses("salsa") {
            assert!(["flow-sema", "flow-lower", "flow-lsp"].contains(&name.as_str()), "{name} may not use salsa");
        }
        if uses("ariadne") {
            assert_eq!(name, "flow-diagnostics", "only flow-diagnostics renders with ariadne");
        }
        if deps.iter().any(|d| d.starts_with("cranelift")) {
            assert_eq!(name, "flow-runtime", "only the runtime compiles to native code");
        }
        if uses("cedar-policy") || uses("cel-interpreter") {
            assert_eq!(name, "flow-bench", "peers are benchmarked against, never used");
        }
        let workspace: BTreeSet<&str> = deps.iter().map(String::as_str).filter(|d| packages.contains_key(*d)).collect();
        // Every crate's workspace dependencies, from the bottom up: an arrow never runs back
        // up (the plan format and the runtime below the compiler; the application above all).
        let allowed: &[&str] = match name.as_str() {
            "flow-grammar" | "flow-diagnostics" | "flow-ir" => &[],
            "flow-syntax" => &["flow-grammar", "flow-diagnostics", "flow-ir"],
            "flow-sema" => &["flow-syntax", "flow-diagnostics", "flow-ir"],
            "flow-lower" => &["flow-syntax", "flow-sema", "flow-diagnostics", "flow-ir"],
            "flow-runtime" => &["flow-ir"],
            "flow-lsp" => &["flow-diagnostics", "flow-syntax", "flow-sema", "flow-lower"],
            "flow-test-runner" => &["flow-diagnostics", "flow-sema", "flow-lower", "flow-ir", "flow-runtime"],
            "flow-cli" => &[
                "flow-diagnostics",
                "flow-syntax",
                "flow-sema",
                "flow-lower",
                "flow-ir",
                "flow-runtime",
                "flow-lsp",
                "flow-test-runner",
                "flow-server",
            ],
            // The service knows the runtime and the plan format; compiling sources is the
            // application's to give it.
            "flow-server" => &["flow-ir", "flow-runtime"],
            "flow-bench" | "flow-embed" => &["flow-ir", "flow-runtime"],
            "flow-tests" => &[
                "flow-diagnostics",
                "flow-grammar",
                "flow-syntax",
                "flow-sema",
                "flow-lower",
                "flow-ir",
                "flow-runtime",
            ],
            other => panic!("{other} is a new crate: give it its allowed dependencies here"),
        };
        let extra: Vec<&&str> = workspace.iter().filter(|d| !allowed.contains(d)).collect();
        assert!(extra.is_empty(), "{name} may not depend on {extra:?}");
        // The plan format and the runtime know nothing about source text.
        let below_the_wall = ["ir", "runtime", "server", "bench"].map(|d| root().join(d));
        if below_the_wall.iter().any(|d| dir.starts_with(d)) {
            for forbidden in ["flow-grammar", "flow-syntax", "flow-sema", "pest", "salsa", "ariadne"] {
                assert!(!uses(forbidden), "{name} (runtime) may not depend on {forbidden}");
            }
        }
    }
}

/// `unsafe` code lives in one module: the runtime's native code (`runtime/src/jit`).
#[test]
fn unsafe_code_stays_in_the_native_code_module() {
    let allowed = root().join("runtime/src/jit");
    let mut offenders = Vec::new();
    for dir in WORKSPACE_DIRS.iter().chain(&["examples"]) {
        let mut files = Vec::new();
        rust_files(&root().join(dir), &mut files);
        for path in files {
            if path.starts_with(&allowed) {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            // Spelled in parts, so that this file does not match itself.
            let needles = [" {", " fn", " impl"].map(|rest| ["unsafe", rest].concat());
            let mut lines = text.lines().filter(|l| !l.trim_start().starts_with("//"));
            if lines.any(|l| needles.iter().any(|n| l.contains(n.as_str()))) {
                offenders.push(path.display().to_string());
            }
        }
    }
    assert!(offenders.is_empty(), "unsafe code outside runtime/src/jit: {offenders:?}");
}

/// The fuzz targets start from valid inputs: the seed plan verifies, and the seed bundles
/// verify and conform to their plan (a bundle made before a change of the evidence format
/// would only exercise refusals).
#[test]
fn fuzz_seeds_are_valid() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/seeds");
    for seed in ["spend_approval.plan.json", "credit_exception.plan.json"] {
        let plan = std::fs::read(root.join(seed)).expect("the seed plan");
        assert!(flow_ir::load(&plan).is_ok(), "the seed plan {seed} verifies");
    }
    for answer in ["pinned.json", "other.json"] {
        let text = std::fs::read_to_string(root.join("retrieval").join(answer)).expect("a seed answer");
        let json = flow_runtime::value::parse_exact(&text).expect("exact JSON");
        assert!(flow_runtime::retrieval::RetrievalReply::from_json(&json).is_ok(), "{answer} is an answer");
    }
    for bundle in ["approved.json", "redacted.json"] {
        let bytes = std::fs::read(root.join("evidence").join(bundle)).expect("a seed bundle");
        let verified = flow_runtime::evidence::verify(&bytes);
        assert!(verified.is_ok(), "{bundle}: {:?}", verified.err());
    }
    let log = std::fs::read_to_string(root.join("releases/log.json")).expect("the seed release log");
    let verified = flow_runtime::release::verify_bundle(&log, &[], false);
    assert!(verified.is_ok(), "the seed release log: {:?}", verified.err());
}

/// The runtime's modules form no import circle: each module (a file, or a folder with its
/// files) names the others it uses as `crate::module`, and following those names never
/// leads back to where it started. A circle means two jobs are tangled in one another,
/// which is what the layout of ARCHITECTURE.md keeps apart.
#[test]
fn the_runtimes_modules_import_each_other_in_no_circle() {
    let src = root().join("runtime/src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let module_of = |path: &Path| -> Option<String> {
        let first = path.strip_prefix(&src).ok()?.components().next()?.as_os_str().to_str()?.to_owned();
        let name = first.trim_end_matches(".rs").to_owned();
        (!["lib", "tests"].contains(&name.as_str())).then_some(name)
    };
    let modules: BTreeSet<String> = files.iter().filter_map(|f| module_of(f)).collect();
    assert!(modules.len() > 10, "{modules:?}");
    let mut uses: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in &files {
        let Some(module) = module_of(file) else { continue };
        let text = std::fs::read_to_string(file).unwrap_or_default();
        // Unit tests inside a module may use anything.
        let text = text.split("\n#[cfg(test)]\nmod tests").next().unwrap_or_default();
        let code: String =
            text.lines().map(|l| l.split("//").next().unwrap_or_default()).collect::<Vec<_>>().join("\n");
        let mut named = BTreeSet::new();
        for (at, _) in code.match_indices("crate::") {
            let rest = &code[at + "crate::".len()..];
            if let Some(list) = rest.strip_prefix('{') {
                let list = list.split('}').next().unwrap_or_default();
                named.extend(list.split(',').map(|item| item.trim().split("::").next().unwrap_or_default().to_owned()));
            } else {
                named.insert(rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect::<String>());
            }
        }
        named.retain(|name| modules.contains(name) && *name != module);
        uses.entry(module).or_default().extend(named);
    }
    // A depth-first search that reports the first circle it meets, as a path.
    fn circle(
        at: &str,
        uses: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(start) = path.iter().position(|m| m == at) {
            let mut found = path[start..].to_vec();
            found.push(at.to_owned());
            return Some(found);
        }
        if done.contains(at) {
            return None;
        }
        path.push(at.to_owned());
        for next in uses.get(at).into_iter().flatten() {
            if let Some(found) = circle(next, uses, path, done) {
                return Some(found);
            }
        }
        path.pop();
        done.insert(at.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    for module in &modules {
        let found = circle(module, &uses, &mut Vec::new(), &mut done);
        assert!(
            found.is_none(),
            "the runtime's modules import each other in a circle: {}",
            found.unwrap_or_default().join(" → ")
        );
    }
}

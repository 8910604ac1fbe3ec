//! The build script of `flowc`: records the commit it is built from, so that `flowc
//! --version` names it (`unknown` when it is not built from a git checkout).

use std::path::PathBuf;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let output = Command::new("git").args(args).output().ok()?;
    output.status.success().then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

fn main() {
    let commit = git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=FLOWC_COMMIT={commit}");
    // Built again when the checkout moves to another commit: when HEAD changes, or the
    // branch it names does.
    // (A path that does not exist would make Cargo run this script at every build.)
    println!("cargo:rerun-if-changed=build.rs");
    if let Some(dir) = git(&["rev-parse", "--absolute-git-dir"]).map(PathBuf::from) {
        let branch = git(&["symbolic-ref", "-q", "HEAD"]).map(|branch| dir.join(branch));
        for path in [Some(dir.join("HEAD")), branch, Some(dir.join("packed-refs"))].into_iter().flatten() {
            if path.exists() {
                println!("cargo:rerun-if-changed={}", path.display());
            }
        }
    }
}

//! A real editor: headless Neovim, set up as `docs/editors.md` says, runs `flowc lsp` on a
//! copy of the spend approval example with a mistake typed into it, and must show the
//! diagnostic on the right line, go to a definition in an imported file, and complete
//! fields.
//!
//! Needs `nvim` (0.7 or later), which `.ci/run` installs; elsewhere the test says it was
//! skipped, unless `CI` is set, where a missing editor fails it.

#![expect(clippy::unwrap_used, reason = "tests fail loudly")]

use std::path::Path;
use std::process::Command;

/// What the test does once the set-up of `docs/editors.md` is loaded.
const SCRIPT: &str = r#"
vim.cmd("edit spend_approval.flow")
vim.wait(30000, function() return #vim.diagnostic.get(0) > 0 end, 20)
for _, d in ipairs(vim.diagnostic.get(0)) do
  io.stdout:write(string.format("diagnostic %d:%d %s\n", d.lnum + 1, d.col + 1, d.message:gsub("\n.*", "")))
end
local function at(line, col)
  vim.api.nvim_win_set_cursor(0, { line, col })
  return vim.lsp.util.make_position_params()
end
-- `finance_director` in `owner finance_director`, declared in common/org.flow.
for _, r in pairs(vim.lsp.buf_request_sync(0, "textDocument/definition", at(LINE_OWNER, 10), 10000) or {}) do
  io.stdout:write(string.format("definition %s %d\n", vim.fn.fnamemodify(vim.uri_to_fname(r.result.uri), ":t"), r.result.range.start.line + 1))
end
-- Fields after `request.` in `let over_limit = request.amount …`.
for _, r in pairs(vim.lsp.buf_request_sync(0, "textDocument/completion", at(LINE_LET, COL_FIELD), 10000) or {}) do
  local labels = {}
  for _, item in ipairs(r.result.items) do table.insert(labels, item.label) end
  table.sort(labels)
  io.stdout:write("completion " .. table.concat(labels, ",") .. "\n")
end
vim.cmd("qa!")
"#;

/// `PATH` with the directory of the `flowc` under test first.
fn path_with_flowc() -> std::ffi::OsString {
    let bin = Path::new(env!("CARGO_BIN_EXE_flowc")).parent().unwrap().to_path_buf();
    let rest = std::env::var_os("PATH").unwrap_or_default();
    std::env::join_paths(std::iter::once(bin).chain(std::env::split_paths(&rest))).unwrap()
}

#[test]
fn neovim_shows_diagnostics_definitions_and_completions() {
    if Command::new("nvim").arg("--version").output().is_err() {
        assert!(std::env::var_os("CI").is_none(), "CI needs `nvim` for this test (`.ci/run` installs it)");
        crate::postgres::skipped("`nvim` is not installed");
        return;
    }
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let dir = std::env::temp_dir().join(format!("flowc-editor-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("common")).unwrap();
    std::fs::create_dir_all(dir.join("prompts")).unwrap();
    std::fs::copy(examples.join("common/org.flow"), dir.join("common/org.flow")).unwrap();
    std::fs::copy(examples.join("prompts/spend_risk_v3.md"), dir.join("prompts/spend_risk_v3.md")).unwrap();
    let text = std::fs::read_to_string(examples.join("spend_approval.flow")).unwrap();
    let broken = text.replace("when risk.tier == high", "when risk.tier == hihg");
    std::fs::write(dir.join("spend_approval.flow"), &broken).unwrap();
    let line_of = |needle: &str| broken.lines().position(|l| l.contains(needle)).unwrap() + 1;
    let (line_typo, line_owner, line_let) =
        (line_of("== hihg"), line_of("owner finance_director"), line_of("let over_limit"));
    let col_field = broken.lines().nth(line_let - 1).unwrap().find("request.").unwrap() + "request.".len();
    // The set-up `docs/editors.md` gives for Neovim, as it is written there.
    let docs = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/editors.md")).unwrap();
    let neovim = &docs[docs.find("## Neovim").unwrap()..];
    let setup = neovim.split("```lua\n").nth(1).and_then(|rest| rest.split("```").next()).unwrap();
    let script = format!("{setup}{SCRIPT}")
        .replace("LINE_OWNER", &line_owner.to_string())
        .replace("LINE_LET", &line_let.to_string())
        .replace("COL_FIELD", &col_field.to_string());
    std::fs::write(dir.join("test.lua"), script).unwrap();
    let output = Command::new("nvim")
        .args(["--headless", "-u", "NONE", "-c", "luafile test.lua"])
        .current_dir(&dir)
        // The set-up runs `flowc` from the PATH, as after `cargo install`.
        .env("PATH", path_with_flowc())
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&output.stdout).into_owned();
    let column = broken.lines().nth(line_typo - 1).unwrap().find("hihg").unwrap() + 1;
    assert!(
        printed.contains(&format!("diagnostic {line_typo}:{column} cannot find `hihg`")),
        "{printed}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(printed.contains("definition org.flow "), "{printed}");
    assert!(
        printed.contains("completion amount,category,cost_center,id,justification,requester,submitted_at"),
        "{printed}"
    );
}

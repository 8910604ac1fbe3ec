// Starts the Flow language server (`flowc lsp`, or a `flow-lsp` binary) for `.flow` files.
const path = require("path");
const vscode = require("vscode");
const { LanguageClient } = require("vscode-languageclient/node");

let client;

function activate(context) {
  const configured = vscode.workspace.getConfiguration("flow").get("server.path") || "flowc";
  const isFlowLsp = path.basename(configured).startsWith("flow-lsp");
  const server = { command: configured, args: isFlowLsp ? [] : ["lsp"] };
  client = new LanguageClient(
    "flow",
    "Flow",
    { run: server, debug: server },
    { documentSelector: [{ scheme: "file", language: "flow" }] }
  );
  context.subscriptions.push({ dispose: () => client && client.stop() });
  return client.start();
}

function deactivate() {
  return client ? client.stop() : undefined;
}

module.exports = { activate, deactivate };

//! Model providers and action handlers: the traits an embedding application implements, and
//! the two kinds shipped, `command` (a local program speaking JSON on stdin and stdout) and
//! `openai-compatible` (HTTP chat completions asking for JSON output).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use flow_ir::plan::Model;
use serde_json::{Value as Json, json};

/// What an `infer` step asks a provider.
pub struct ModelRequest<'a> {
    /// The `infer` step of the flow that asks (not sent to the provider).
    pub step: &'a str,
    pub model: &'a Model,
    /// The pinned prompt's text, when the model has one.
    pub prompt: Option<&'a str>,
    /// The named arguments, as JSON.
    pub input: Json,
}

impl ModelRequest<'_> {
    /// The request as the `command` provider writes it on stdin.
    pub fn to_json(&self) -> Json {
        json!({
            "model": {"name": self.model.model_name, "version": self.model.version, "digest": self.model.digest},
            "prompt": self.prompt,
            "input": self.input,
        })
    }
}

/// A provider's answer.
pub struct ModelReply {
    /// The model's output, to be checked against the model's declared output type.
    pub output: Json,
    /// How many attempts it took (1 without retries).
    pub attempts: u32,
}

/// A provider's failure, after its retries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderError {
    pub message: String,
    pub attempts: u32,
}

/// Runs inferences for models.
pub trait ModelProvider: Send + Sync {
    /// What it is, for the evidence's environment (`command python3 models/risk.py`).
    fn describe(&self) -> String;
    fn infer(&self, request: &ModelRequest<'_>) -> Result<ModelReply, ProviderError>;
}

/// What an action step asks a handler.
pub struct ActionRequest<'a> {
    /// The action step of the flow that calls the action.
    pub step: &'a str,
    pub system: &'a str,
    pub action: &'a str,
    /// The named arguments, as JSON.
    pub args: Json,
    /// The same key for every attempt of one action: the handler must not repeat the effect
    /// for a key it has seen (the runtime calls again only when a crash came between the
    /// handler's effect and the durable record of its result).
    pub idempotency_key: &'a str,
}

impl ActionRequest<'_> {
    pub fn to_json(&self) -> Json {
        json!({"system": self.system, "action": self.action, "args": self.args, "idempotency_key": self.idempotency_key})
    }
}

/// Performs the actions of one system.
pub trait ActionHandler: Send + Sync {
    fn describe(&self) -> String;
    /// The action's result, as JSON (`null` for an action without result).
    fn call(&self, request: &ActionRequest<'_>) -> Result<Json, String>;

    /// [`ActionHandler::call`], and how many tries it took: a handler that tries again
    /// itself (a system over HTTP) says so, and the run's evidence records it.
    fn call_counted(&self, request: &ActionRequest<'_>) -> (Result<Json, String>, u32) {
        (self.call(request), 1)
    }
}

/// Runs a program (in `dir`, when given) with `input` on stdin and reads its stdout as
/// JSON, within `timeout`.
pub fn run_command(command: &[String], dir: Option<&Path>, input: &Json, timeout: Duration) -> Result<Json, String> {
    let out = run_command_bytes(command, dir, input, timeout)?;
    // Read as every JSON from outside is: its numbers exactly, or refused.
    let text =
        std::str::from_utf8(&out).map_err(|e| format!("`{}` did not print UTF-8 text: {e}", command.join(" ")))?;
    crate::value::parse_exact(text)
        .map_err(|e| format!("`{}` did not print JSON Flow reads exactly: {e}", command.join(" ")))
}

/// [`run_command`], its standard output as it printed it.
pub fn run_command_bytes(
    command: &[String],
    dir: Option<&Path>,
    input: &Json,
    timeout: Duration,
) -> Result<Vec<u8>, String> {
    let (program, args) = command.split_first().ok_or("the command is empty")?;
    let shown = command.join(" ");
    let mut process = Command::new(program);
    if let Some(dir) = dir.filter(|d| !d.as_os_str().is_empty()) {
        process.current_dir(dir);
    }
    let mut child = process
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start `{shown}`: {e}"))?;
    let body = input.to_string();
    let mut stdin = child.stdin.take().ok_or("no stdin")?;
    // Writing and reading on threads: a program may print before it has read everything.
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(body.as_bytes());
    });
    let mut stdout = child.stdout.take().ok_or("no stdout")?;
    let stderr = child.stderr.take().ok_or("no stderr")?;
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        let _ = stdout.read_to_end(&mut out);
        out
    });
    let err_reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        let _ = stderr.take(64 * 1024).read_to_end(&mut out);
        out
    });
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() >= timeout => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("`{shown}` did not answer within {}", humantime(timeout)));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(2)),
            Err(e) => return Err(format!("cannot wait for `{shown}`: {e}")),
        }
    };
    let _ = writer.join();
    let out = reader.join().unwrap_or_default();
    let err = err_reader.join().unwrap_or_default();
    if !status.success() {
        let err = String::from_utf8_lossy(&err);
        let last = err.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").trim();
        return Err(format!(
            "`{shown}` failed ({status}){}",
            if last.is_empty() { String::new() } else { format!(": {last}") }
        ));
    }
    Ok(out)
}

fn humantime(d: Duration) -> String {
    if d.as_millis().is_multiple_of(1000) { format!("{}s", d.as_secs()) } else { format!("{}ms", d.as_millis()) }
}

/// The `command` provider: a local program gets the request on stdin and prints the output.
pub struct CommandModel {
    pub command: Vec<String>,
    /// Where it runs; the current directory when absent.
    pub dir: Option<PathBuf>,
    pub timeout: Duration,
}

impl ModelProvider for CommandModel {
    fn describe(&self) -> String {
        format!("command {} (timeout {})", self.command.join(" "), humantime(self.timeout))
    }

    fn infer(&self, request: &ModelRequest<'_>) -> Result<ModelReply, ProviderError> {
        run_command(&self.command, self.dir.as_deref(), &request.to_json(), self.timeout)
            .map(|output| ModelReply { output, attempts: 1 })
            .map_err(|message| ProviderError { message, attempts: 1 })
    }
}

/// The `command` handler: a local program gets `{system, action, args, idempotency_key}`.
pub struct CommandSystem {
    pub command: Vec<String>,
    /// Where it runs; the current directory when absent.
    pub dir: Option<PathBuf>,
    pub timeout: Duration,
}

impl ActionHandler for CommandSystem {
    fn describe(&self) -> String {
        format!("command {} (timeout {})", self.command.join(" "), humantime(self.timeout))
    }

    fn call(&self, request: &ActionRequest<'_>) -> Result<Json, String> {
        run_command(&self.command, self.dir.as_deref(), &request.to_json(), self.timeout)
    }
}

/// Sends `body` and reads the answer (at most 16 MiB) as its status and text; a transport
/// error is worth trying again.
pub(crate) fn send(
    call: ureq::RequestBuilder<ureq::typestate::WithBody>,
    url: &str,
    body: &[u8],
) -> Result<(u16, String), (String, bool)> {
    let mut response = call.send(body).map_err(|e| (format!("`{url}`: {e}"), true))?;
    let status = response.status().as_u16();
    let text = response
        .body_mut()
        .with_config()
        .limit(16 * 1024 * 1024)
        .read_to_string()
        .map_err(|e| (format!("`{url}`: {e}"), true))?;
    Ok((status, text))
}

/// A system reached over HTTP: each call is `POST url` with the request as JSON (system,
/// action, arguments, idempotency key), the key also as the `Idempotency-Key` header, and,
/// with a secret, `Flow-Timestamp` (Unix seconds) and `Flow-Signature: v1=HEX`, the
/// HMAC-SHA256 of `TIMESTAMP.BODY` under the secret, so that the system can tell the call
/// is the deployment's and fresh. A `2xx` answer's JSON body is the result (an empty body:
/// `null`); transport errors, `408`, `429` and `5xx` are tried again, with the same key and
/// a growing pause, up to `retries` times; any other answer fails the action at once.
pub struct HttpSystem {
    pub url: String,
    pub secret: Option<Vec<u8>>,
    /// The variable that should hold the secret, when it is not set: every call fails,
    /// naming it, and nothing is sent unsigned (commands that call nothing still work).
    pub missing_secret: Option<String>,
    pub timeout: Duration,
    pub retries: u32,
}

impl HttpSystem {
    /// The signature headers of `body` at `timestamp`.
    pub fn signature(secret: &[u8], timestamp: u64, body: &str) -> String {
        use hmac::{KeyInit, Mac};
        let mut mac =
            hmac::Hmac::<sha2::Sha256>::new_from_slice(secret).unwrap_or_else(|_| unreachable!("HMAC takes any key"));
        mac.update(format!("{timestamp}.{body}").as_bytes());
        let tag = mac.finalize().into_bytes();
        format!("v1={}", tag.iter().map(|b| format!("{b:02x}")).collect::<String>())
    }

    fn attempt(&self, agent: &ureq::Agent, request: &ActionRequest<'_>, body: &str) -> Result<Json, (String, bool)> {
        let mut call = agent
            .post(&self.url)
            .header("content-type", "application/json")
            .header("idempotency-key", request.idempotency_key);
        if let Some(secret) = &self.secret {
            let timestamp =
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs();
            call = call
                .header("flow-timestamp", &timestamp.to_string())
                .header("flow-signature", &HttpSystem::signature(secret, timestamp, body));
        }
        let url = &self.url;
        let (status, text) = send(call, url, body.as_bytes())?;
        if !(200..300).contains(&status) {
            let retry = status == 408 || status == 429 || status >= 500;
            let shown: String = text.chars().take(200).collect();
            return Err((format!("`{url}` answered {status}: {shown}"), retry));
        }
        if text.trim().is_empty() {
            return Ok(Json::Null);
        }
        crate::value::parse_exact(&text).map_err(|e| (format!("`{url}` did not answer JSON: {e}"), false))
    }
}

impl ActionHandler for HttpSystem {
    fn describe(&self) -> String {
        let signed = match (&self.secret, &self.missing_secret) {
            (Some(_), _) => ", signed",
            (None, Some(_)) => ", its secret not set",
            (None, None) => "",
        };
        // Recorded in every run's environment: without credentials a URL may carry.
        let shown = shown_url(&self.url);
        format!("http {shown} (timeout {}, {} retries{signed})", humantime(self.timeout), self.retries)
    }

    fn call(&self, request: &ActionRequest<'_>) -> Result<Json, String> {
        self.call_counted(request).0
    }

    fn call_counted(&self, request: &ActionRequest<'_>) -> (Result<Json, String>, u32) {
        if let Some(var) = &self.missing_secret {
            return (
                Err(format!("the variable `{var}` holding the secret that signs calls is not set: nothing sent")),
                0,
            );
        }
        let config =
            ureq::Agent::config_builder().timeout_global(Some(self.timeout)).http_status_as_error(false).build();
        let agent = ureq::Agent::new_with_config(config);
        let body = request.to_json().to_string();
        let mut attempts = 0;
        loop {
            attempts += 1;
            match self.attempt(&agent, request, &body) {
                Ok(result) => return (Ok(result), attempts),
                Err((message, retry)) if !retry || attempts > self.retries => {
                    return (Err(format!("{message} (after {attempts} attempts)")), attempts);
                }
                Err(_) => std::thread::sleep(Duration::from_millis(200 * u64::from(attempts))),
            }
        }
    }
}

/// A URL as it may be recorded or shown: without the credentials it may carry.
pub(crate) fn shown_url(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = rest.split_once('/').map_or((rest, ""), |(a, p)| (a, p));
            let host = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
            format!("{scheme}://{host}/{path}")
        }
        None => url.to_owned(),
    }
}

/// The `openai-compatible` provider: `POST {base_url}/chat/completions` with the prompt as
/// the system message and the input as a JSON user message, asking for a JSON object.
pub struct OpenAiCompatible {
    pub base_url: String,
    pub api_key: Option<String>,
    pub timeout: Duration,
    /// Attempts after the first, on transport errors and 5xx/429 answers.
    pub retries: u32,
}

impl OpenAiCompatible {
    fn attempt(&self, agent: &ureq::Agent, body: &Json) -> Result<Json, (String, bool)> {
        let url = format!("{}/chat/completions", self.base_url.trim_end_matches('/'));
        let mut call = agent.post(&url).header("content-type", "application/json");
        if let Some(key) = &self.api_key {
            call = call.header("authorization", &format!("Bearer {key}"));
        }
        let (status, text) = send(call, &url, body.to_string().as_bytes())?;
        if status != 200 {
            let retry = status == 429 || status >= 500;
            let shown: String = text.chars().take(200).collect();
            return Err((format!("`{url}` answered {status}: {shown}"), retry));
        }
        let reply: Json =
            serde_json::from_str(&text).map_err(|e| (format!("`{url}` did not answer JSON: {e}"), false))?;
        let content = reply
            .pointer("/choices/0/message/content")
            .and_then(Json::as_str)
            .ok_or_else(|| ("the answer has no `choices[0].message.content`".to_owned(), false))?;
        crate::value::parse_exact(content)
            .map_err(|e| (format!("the model's content is not JSON Flow reads exactly: {e}"), false))
    }
}

impl ModelProvider for OpenAiCompatible {
    fn describe(&self) -> String {
        // Recorded in every run's environment: without credentials a URL may carry.
        let shown = shown_url(&self.base_url);
        format!("openai-compatible {shown} (timeout {}, {} retries)", humantime(self.timeout), self.retries)
    }

    fn infer(&self, request: &ModelRequest<'_>) -> Result<ModelReply, ProviderError> {
        let config =
            ureq::Agent::config_builder().timeout_global(Some(self.timeout)).http_status_as_error(false).build();
        let agent = ureq::Agent::new_with_config(config);
        let mut messages = Vec::new();
        if let Some(prompt) = request.prompt {
            messages.push(json!({"role": "system", "content": prompt}));
        }
        messages.push(json!({"role": "user", "content": request.input.to_string()}));
        let body = json!({
            "model": request.model.model_name,
            "messages": messages,
            "response_format": {"type": "json_object"},
            "temperature": 0,
        });
        let mut attempts = 0;
        loop {
            attempts += 1;
            match self.attempt(&agent, &body) {
                Ok(output) => return Ok(ModelReply { output, attempts }),
                Err((message, retry)) if !retry || attempts > self.retries => {
                    return Err(ProviderError { message, attempts });
                }
                Err(_) => std::thread::sleep(Duration::from_millis(100 * u64::from(attempts))),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_http_systems_url_is_described_without_its_credentials() {
        let system = |url: &str| HttpSystem {
            url: url.to_owned(),
            secret: None,
            missing_secret: None,
            timeout: Duration::from_secs(5),
            retries: 1,
        };
        let described = system("https://flow:p4ss@ledger.internal:8443/book?x=1").describe();
        assert!(!described.contains("p4ss") && !described.contains("flow:"), "{described}");
        assert!(described.contains("https://ledger.internal:8443/book?x=1"), "{described}");
        assert!(system("http://ledger").describe().contains("http://ledger/"));
    }
}

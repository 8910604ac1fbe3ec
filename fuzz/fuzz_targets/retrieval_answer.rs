//! A retriever's answer: whatever bytes a retriever prints, the `retrieve` step of the
//! lending exception example reads them as exact JSON and an answer, checks each document
//! against the corpus's type, and the run ends — completed, degraded, or failed with the
//! reason — never a panic; a document the step takes writes back to JSON that reads as the
//! same value.
#![no_main]

use std::sync::{Arc, LazyLock, Mutex};

use flow_runtime::provider::{ModelProvider, ModelReply, ModelRequest, ProviderError};
use flow_runtime::retrieval::{RetrievalReply, RetrievalRequest, Retriever};

/// The answer of the current input.
static ANSWER: Mutex<String> = Mutex::new(String::new());

struct Fuzzed;

impl Retriever for Fuzzed {
    fn describe(&self) -> String {
        "the fuzzer".to_owned()
    }

    fn retrieve(&self, _request: &RetrievalRequest<'_>) -> Result<RetrievalReply, ProviderError> {
        let text = ANSWER.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        let fail = |message: String| ProviderError { message, attempts: 1 };
        let json = flow_runtime::value::parse_exact(&text).map_err(|e| fail(e.to_string()))?;
        let reply = RetrievalReply::from_json(&json).map_err(fail)?;
        for found in &reply.documents {
            let body = PLAN.plan.body();
            let ty = &body.corpora[0].document;
            if let Ok(value) = flow_runtime::value::decode(body, &found.document, ty, "$") {
                let again = flow_runtime::value::decode(body, &value.to_json(), ty, "$").expect("writes back");
                assert_eq!(again, value);
            }
        }
        Ok(reply)
    }
}

struct Advisor;

impl ModelProvider for Advisor {
    fn describe(&self) -> String {
        "a fixed advice".to_owned()
    }

    fn infer(&self, _request: &ModelRequest<'_>) -> Result<ModelReply, ProviderError> {
        let output = serde_json::json!({"within_policy": true, "cites": "", "rationale": ""});
        Ok(ModelReply { output, attempts: 1 })
    }
}

static PLAN: LazyLock<Arc<flow_runtime::analysis::Analysis>> = LazyLock::new(|| {
    let plan = flow_ir::load(include_bytes!("../seeds/credit_exception.plan.json")).expect("the seed plan verifies");
    Arc::new(flow_runtime::analysis::Analysis::new(plan))
});

static RUNTIME: LazyLock<flow_runtime::Runtime> = LazyLock::new(|| {
    let store = flow_runtime::store::SqliteStore::open(std::path::Path::new(":memory:")).expect("a store");
    let mut runtime = flow_runtime::Runtime::new(Box::new(store));
    runtime.register_retriever("lending_policy", Arc::new(Fuzzed));
    runtime.register_model("exception_advisor", Arc::new(Advisor));
    runtime.set_testing(true);
    runtime
});

libfuzzer_sys::fuzz_target!(|text: &str| {
    *ANSWER.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = text.to_owned();
    let request = serde_json::json!({
        "id": "EX-1", "applicant": "A", "purpose": "equipment", "amount": "1000.00 EUR",
        "loan_to_value": "0.8", "requested_by": "olga"
    });
    let who = flow_runtime::Principal::new("olga".to_owned(), vec!["credit_officer".to_owned()]);
    let options = flow_runtime::StartOptions {
        clock: Some(flow_ir::expr::Timestamp { seconds: 1_796_040_000, nanos: 0 }),
        params: Vec::new(),
    };
    let _ = RUNTIME.evaluate(&PLAN, &who, &[("request".to_owned(), request)], &options);
});

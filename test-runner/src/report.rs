//! The reports of a test run: for people (failures with the path each failing run took,
//! the counts, and the coverage of each flow with the branches no test reached), JSON, and
//! JUnit XML for CI services.

use std::collections::BTreeMap;

use serde_json::{Value as Json, json};

use crate::run::{Coverage, Outcome};

pub fn human(
    outcomes: &[Outcome],
    coverage: &BTreeMap<(String, String), Coverage>,
    percent: f64,
    min: Option<f64>,
) -> String {
    let mut text = String::new();
    for outcome in outcomes {
        if outcome.failures.is_empty() {
            text.push_str(&format!("ok      {} ({})\n", outcome.name, outcome.flow));
            continue;
        }
        text.push_str(&format!("FAILED  {} ({}) at {}\n", outcome.name, outcome.flow, outcome.at));
        for failure in &outcome.failures {
            text.push_str(&format!("    {failure}\n"));
        }
        text.push_str("    the run:\n");
        for step in &outcome.path {
            text.push_str(&format!("      {step}\n"));
        }
    }
    let failed = outcomes.iter().filter(|o| !o.failures.is_empty()).count();
    text.push_str(&format!("\n{} tests: {} passed, {failed} failed\n", outcomes.len(), outcomes.len() - failed));
    for ((file, flow), cover) in coverage {
        let hit = cover.hit.intersection(&cover.all).count();
        text.push_str(&format!("coverage of flow `{flow}` ({file}): {hit} of {} branches\n", cover.all.len()));
        for missing in cover.all.difference(&cover.hit) {
            text.push_str(&format!("    never: {missing}\n"));
        }
    }
    text.push_str(&format!("coverage: {percent:.1}%"));
    if let Some(min) = min
        && percent + 1e-9 < min
    {
        text.push_str(&format!(", below the minimum of {min}%"));
    }
    text.push('\n');
    text
}

pub fn to_json(outcomes: &[Outcome], coverage: &BTreeMap<(String, String), Coverage>, percent: f64) -> Json {
    let tests: Vec<Json> = outcomes
        .iter()
        .map(|o| {
            json!({
                "name": o.name, "flow": o.flow, "file": o.file, "at": o.at,
                "passed": o.failures.is_empty(), "failures": o.failures, "path": o.path,
            })
        })
        .collect();
    let flows: Vec<Json> = coverage
        .iter()
        .map(|((file, flow), cover)| {
            json!({
                "flow": flow, "file": file, "branches": cover.all.len(),
                "covered": cover.hit.intersection(&cover.all).count(),
                "never": cover.all.difference(&cover.hit).collect::<Vec<_>>(),
            })
        })
        .collect();
    let failed = outcomes.iter().filter(|o| !o.failures.is_empty()).count();
    json!({
        "tests": tests, "passed": outcomes.len() - failed, "failed": failed,
        "coverage": {"percent": (percent * 10.0).round() / 10.0, "flows": flows},
    })
}

pub fn junit(outcomes: &[Outcome]) -> String {
    let escape =
        |text: &str| text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;");
    let failed = outcomes.iter().filter(|o| !o.failures.is_empty()).count();
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    xml.push_str(&format!("<testsuites name=\"flowc test\" tests=\"{}\" failures=\"{failed}\">\n", outcomes.len()));
    let mut by_flow: BTreeMap<(&str, &str), Vec<&Outcome>> = BTreeMap::new();
    for outcome in outcomes {
        by_flow.entry((&outcome.file, &outcome.flow)).or_default().push(outcome);
    }
    for ((file, flow), tests) in by_flow {
        let failures = tests.iter().filter(|o| !o.failures.is_empty()).count();
        xml.push_str(&format!(
            "  <testsuite name=\"{}\" file=\"{}\" tests=\"{}\" failures=\"{failures}\">\n",
            escape(flow),
            escape(file),
            tests.len()
        ));
        for test in tests {
            xml.push_str(&format!("    <testcase name=\"{}\" classname=\"{}\"", escape(&test.name), escape(flow)));
            if test.failures.is_empty() {
                xml.push_str("/>\n");
                continue;
            }
            xml.push_str(">\n");
            let message = escape(&test.failures[0]);
            let detail = escape(&[test.failures.join("\n"), test.path.join("\n")].join("\n\nthe run:\n"));
            xml.push_str(&format!("      <failure message=\"{message}\">{detail}</failure>\n    </testcase>\n"));
        }
        xml.push_str("  </testsuite>\n");
    }
    xml.push_str("</testsuites>\n");
    xml
}

//! Random well-typed flows, for the properties that hold over every plan (governance
//! dominance, noninterference): each flow has labelled inputs, lets, gates of every level,
//! a model and a system with random clearances, reviews with and without conditions, an
//! approval matrix, actions with and without conditions, and an output whose fields carry
//! random labels. Expressions are random over what the flow has computed so far: field
//! reads, arithmetic, comparisons, `and`/`not`, interpolation, `if`, function calls, model
//! answers, review outcomes and `degraded`.
//!
//! A random flow may leak a label or break another rule; only the flows that check clean are
//! kept, and their share is asserted, so the generator cannot quietly stop producing flows.

use crate::runtime::Rng;

const PREAMBLE: &str = r#"label pii
label secret
role clerk
role officer
role manager
role auditor
type Applicant { name: Text @pii  note: Text @secret  income: Money[USD] @secret  age: Int  city: Text  vip: Bool }
type Score { value: Int  reason: Text @pii }
type Receipt { number: Text }
fn shout(t: Text) -> Text = "{t}!"
fn older(a: Applicant, years: Int) -> Int = a.age + years
fn guess(a: Applicant) -> Score = Score { value: a.age, reason: a.name }
"#;

/// A value the flow has, by type: the expression that reads it.
#[derive(Default)]
struct Scope {
    ints: Vec<String>,
    bools: Vec<String>,
    texts: Vec<String>,
    money: Vec<String>,
}

struct Generator {
    rng: Rng,
    scope: Scope,
    steps: Vec<String>,
    overrides: Vec<String>,
    approvals: Vec<String>,
    degraded: Vec<String>,
    count: usize,
}

impl Generator {
    fn chance(&mut self, percent: usize) -> bool {
        self.rng.below(100) < percent
    }

    fn name(&mut self, prefix: &str) -> String {
        self.count += 1;
        format!("{prefix}{}", self.count)
    }

    fn labels(&mut self, percent: usize) -> String {
        ["pii", "secret"].into_iter().filter(|_| self.chance(percent)).collect::<Vec<_>>().join(", ")
    }

    fn int(&mut self, depth: usize) -> String {
        match self.rng.below(if depth == 0 { 3 } else { 6 }) {
            0 if !self.scope.ints.is_empty() => self.rng.pick(&self.scope.ints).clone(),
            0 | 1 => format!("{}", self.rng.below(100)),
            2 => "applicant.age".to_owned(),
            3 => format!("{} + {}", self.int(depth - 1), self.int(depth - 1)),
            4 => format!("older(applicant, {})", self.int(depth - 1)),
            _ => format!("({}) * 2", self.int(depth - 1)),
        }
    }

    fn bool(&mut self, depth: usize) -> String {
        match self.rng.below(if depth == 0 { 3 } else { 8 }) {
            0 if !self.scope.bools.is_empty() => self.rng.pick(&self.scope.bools).clone(),
            0 | 1 => "applicant.vip".to_owned(),
            2 => format!("{} > {}", self.int(0), self.rng.below(80)),
            3 => format!("{} == \"{}\"", self.text(depth - 1), self.rng.pick(&["x", "Paris", "a!"])),
            4 => format!("{} > {} USD", self.money(), self.rng.below(2000)),
            5 => format!("{} and {}", self.bool(depth - 1), self.bool(depth - 1)),
            6 => format!("not ({})", self.bool(depth - 1)),
            _ => format!("{} < {}", self.int(depth - 1), self.int(depth - 1)),
        }
    }

    fn text(&mut self, depth: usize) -> String {
        match self.rng.below(if depth == 0 { 3 } else { 7 }) {
            0 if !self.scope.texts.is_empty() => self.rng.pick(&self.scope.texts).clone(),
            0 => "applicant.city".to_owned(),
            1 => self.rng.pick(&["applicant.name", "applicant.note", "applicant.city"]).to_string(),
            2 => format!("\"{}\"", self.rng.pick(&["x", "Paris", "none"])),
            3 => format!("\"{{{}}}-{{{}}}\"", self.text(depth - 1), self.int(depth - 1)),
            4 => format!("shout({})", self.text(depth - 1)),
            5 => format!("if {} then {} else {}", self.bool(depth - 1), self.text(depth - 1), self.text(depth - 1)),
            _ => format!("\"{{{}}}\"", self.money()),
        }
    }

    fn money(&mut self) -> String {
        match self.rng.below(4) {
            0 if !self.scope.money.is_empty() => self.rng.pick(&self.scope.money).clone(),
            0 | 1 => "amount".to_owned(),
            2 => "applicant.income".to_owned(),
            _ => "amount + applicant.income".to_owned(),
        }
    }

    fn step(&mut self) {
        match self.rng.below(9) {
            0 | 1 => {
                let name = self.name("l");
                let (value, into) = match self.rng.below(4) {
                    0 => (self.int(2), 0),
                    1 => (self.bool(2), 1),
                    2 => (self.text(2), 2),
                    _ => (format!("{} + {} USD", self.money(), self.rng.below(500)), 3),
                };
                self.steps.push(format!("  let {name} = {value}"));
                [&mut self.scope.ints, &mut self.scope.bools, &mut self.scope.texts, &mut self.scope.money][into]
                    .push(name);
            }
            2 => {
                let name = self.name("g");
                let condition = self.bool(2);
                match self.rng.below(3) {
                    0 => self.steps.push(format!("  gate {name}: info when {condition}")),
                    1 => self.steps.push(format!("  gate {name}: soft when {condition}\n    approve by officer")),
                    _ => {
                        self.steps.push(format!("  gate {name}: block when {condition}"));
                        if self.chance(50) {
                            self.overrides.push(name);
                        }
                    }
                }
            }
            3 => {
                let name = self.name("s");
                let (age, note) = (self.int(1), self.text(1));
                let fallback = self.chance(50);
                let fallback_clause = if fallback { "\n    fallback guess(applicant)" } else { "" };
                self.steps.push(format!("  infer {name} = scorer(age: {age}, note: {note}){fallback_clause}"));
                if fallback {
                    self.degraded.push(format!("degraded({name})"));
                }
                self.scope.ints.push(format!("{name}.value"));
                self.scope.texts.push(format!("{name}.reason"));
            }
            4 | 5 => {
                let name = self.name("r");
                let condition = if self.chance(50) { format!("\n    when {}", self.bool(1)) } else { String::new() };
                self.steps.push(format!(
                    "  review {name} by officer{condition}\n    outcomes fine, doubtful\n    reasons seen, unsure"
                ));
                self.scope.bools.push(format!("{name}.outcome == fine"));
            }
            6 if self.approvals.is_empty() => {
                let name = self.name("a");
                let row = self.bool(1);
                self.steps
                    .push(format!("  approval {name} {{\n    when {row} => auto\n    otherwise => 1 of manager\n  }}"));
                self.approvals.push(name.clone());
                self.scope.bools.push(format!("{name}.approved"));
            }
            _ => {
                let name = self.name("b");
                let (id, who) = (self.text(1), self.text(1));
                let mut clauses = String::new();
                if let Some(approval) = self.approvals.first() {
                    clauses.push_str(&format!("\n    when {approval}.approved"));
                    if self.chance(50) {
                        clauses.push_str(&format!(" and {}", self.bool(1)));
                    }
                } else if self.chance(50) {
                    clauses.push_str(&format!("\n    when {}", self.bool(1)));
                }
                if self.chance(25) {
                    clauses.push_str(&format!("\n    idempotency {}", self.rng.pick(&["applicant.city", "\"k\""])));
                }
                self.steps.push(format!("  action {name} = ledger.book({id}, {who}){clauses}"));
            }
        }
    }

    fn flow(mut self) -> String {
        let steps = 2 + self.rng.below(9);
        for _ in 0..steps {
            self.step();
        }
        let (model, system) = (self.labels(60), self.labels(60));
        let clearance =
            |labels: &str| if labels.is_empty() { String::new() } else { format!("\n  clearance {labels}") };
        let fields: Vec<(String, &str, String)> = vec![
            ("count".to_owned(), "Int", self.int(2)),
            ("flag".to_owned(), "Bool", self.bool(2)),
            ("words".to_owned(), "Text", self.text(2)),
        ];
        let mut declared = Vec::new();
        let mut values = Vec::new();
        for (field, ty, value) in &fields {
            let labels = self.labels(70);
            let labels: String = labels.split(", ").filter(|l| !l.is_empty()).map(|l| format!(" @{l}")).collect();
            declared.push(format!("{field}: {ty}{labels}"));
            values.push(format!("{field}: {value}"));
        }
        for approval in &self.approvals {
            declared.push(format!("{approval}: Bool"));
            values.push(format!("{approval}: {approval}.approved"));
        }
        for (i, degraded) in self.degraded.iter().enumerate() {
            declared.push(format!("fell{i}: Bool"));
            values.push(format!("fell{i}: {degraded}"));
        }
        let overrides: String = self.overrides.iter().map(|g| format!("\n    override {g} by officer")).collect();
        format!(
            "{PREAMBLE}type Out {{ {} }}
model scorer {{
  provider \"command\"
  name \"scorer\"
  version \"1\"
  digest \"sha256:0000000000000000000000000000000000000000000000000000000000000001\"
  input (age: Int, note: Text)
  output Score{}
}}
system ledger {{{}
  action book(id: Text, who: Text) -> Receipt
}}
flow random {{
  version \"1.0.0\"
  owner auditor
  steward clerk
  input applicant: Applicant
  input amount: Money[USD]
  output out: Out
  access {{
    trigger by clerk
    view pii, secret by auditor
    read evidence by auditor, clerk
    replay by auditor{overrides}
  }}
{}
  emit out = Out {{ {} }}
}}
",
            declared.join("  "),
            clearance(&model),
            clearance(&system),
            self.steps.join("\n"),
            values.join(", "),
        )
    }
}

/// `count` random flows that check clean, from `seed`; the texts of those that did not
/// check clean are counted in the second value.
pub(crate) fn random_flows(count: usize, seed: u64) -> (Vec<String>, usize) {
    let mut rng = Rng(seed | 1);
    let mut kept = Vec::new();
    let mut refused = 0;
    while kept.len() < count && refused < count * 50 {
        let generator = Generator {
            rng: Rng(rng.next() | 1),
            scope: Scope::default(),
            steps: Vec::new(),
            overrides: Vec::new(),
            approvals: Vec::new(),
            degraded: Vec::new(),
            count: 0,
        };
        let text = generator.flow();
        let checked = crate::check_fixture("main.flow", text.as_bytes());
        if checked.diagnostics.iter().any(flow_diagnostics::Diagnostic::is_error) {
            refused += 1;
        } else {
            kept.push(text);
        }
    }
    (kept, refused)
}

/// The plans of random flows that check clean.
pub(crate) fn random_plans(count: usize, seed: u64) -> Vec<flow_ir::VerifiedPlan> {
    let (flows, refused) = random_flows(count, seed);
    assert_eq!(flows.len(), count, "only {} of {} random flows checked clean", flows.len(), flows.len() + refused);
    flows
        .iter()
        .flat_map(|text| crate::plans(&crate::check_fixture("main.flow", text.as_bytes())).into_iter().flatten())
        .collect()
}

/// The generator makes flows of every kind of step, and enough of them check clean; the
/// diagnostics of those that do not are only of the rules a random flow may break.
#[test]
fn random_flows_check_clean_often_enough_and_use_every_kind_of_step() {
    let (flows, refused) = random_flows(40, 0x5eed);
    assert_eq!(flows.len(), 40, "{refused} refused");
    for step in
        ["let ", "gate ", ": soft", ": block", ": info", "infer ", "review ", "approval ", "action ", "fallback"]
    {
        assert!(flows.iter().any(|f| f.contains(step)), "no kept flow has `{step}`");
    }
    eprintln!("40 random flows kept, {refused} refused");
    assert!(refused < 40 * 20, "{refused} refused for 40 kept");
}

//! Generated workspaces for the front-end benchmark: realistic flows (imports, records
//! with labels, models, systems, sources, functions, gates, reviews, approval matrices,
//! actions) that check clean, in any size.

const DIGEST: &str = "sha256:7d865e959b2466918c9863afca942d0fb89d7c9ac0c99bafc3749504ded97730";

/// A shared declarations file.
pub fn common(index: usize) -> String {
    let mut out = String::new();
    out.push_str(&format!("// Shared declarations, part {index}.\n\n"));
    out.push_str(&format!("label pii_{index}\nlabel confidential_{index}\n\n"));
    out.push_str(&format!(
        "role clerk_{index}\nrole manager_{index} extends clerk_{index}\nrole director_{index} extends manager_{index}\nrole auditor_{index}\n\n"
    ));
    out.push_str(&format!("enum Tier{index} {{ low, medium, high }}\n"));
    out.push_str(&format!("enum Region{index} {{ emea, americas, apac }}\n\n"));
    out.push_str(&format!(
        "/// A request.\ntype Request{index} {{\n  id: Text\n  requester: Principal\n  amount: Money[USD]\n  region: Region{index}\n  note: Text @confidential_{index}\n  contact: Text @pii_{index}\n  submitted_at: Timestamp\n  center: Text?\n  priority: Int\n}}\n\n"
    ));
    out.push_str(&format!(
        "type Party{index} {{\n  id: Text\n  blocked: Bool\n  limit: Money[USD]\n  rating: Int\n  updated_at: Timestamp\n}}\n\n"
    ));
    out.push_str(&format!(
        "type Assessment{index} {{\n  tier: Tier{index}\n  confidence: Decimal\n  rationale: Text @confidential_{index}\n}}\n\n"
    ));
    out.push_str(&format!(
        "type Outcome{index} {{\n  approved: Bool\n  tier: Tier{index}\n  explanation: Text @confidential_{index}\n}}\n\ntype Receipt{index} {{ reference: Text }}\n\n"
    ));
    out.push_str(&format!(
        "source parties_{index}: Party{index} {{\n  authority \"mdm.parties\"\n  freshness 24h\n  as_of updated_at\n}}\n\n"
    ));
    out.push_str(&format!(
        "model assess_{index} {{\n  provider \"command\"\n  name \"assessor\"\n  version \"1.0.{index}\"\n  digest \"{DIGEST}\"\n  input (amount: Money[USD], rating: Int, note: Text)\n  output Assessment{index}\n  clearance confidential_{index}\n}}\n\n"
    ));
    out.push_str(&format!(
        "system ledger_{index} {{\n  clearance confidential_{index}, pii_{index}\n  action post(request: Request{index}, tier: Tier{index}) -> Receipt{index}\n}}\n\n"
    ));
    out.push_str(&format!(
        "fn rules_{index}(r: Request{index}, p: Party{index}) -> Assessment{index} =\n  Assessment{index} {{\n    tier: if r.amount > 100_000 USD or p.rating <= 2 then high\n          else if r.amount > 25_000 USD then medium\n          else low,\n    confidence: 1.0,\n    rationale: \"rules for {{r.id}}\",\n  }}\n"
    ));
    out
}

/// One flow of about `lets + 70` lines, using shared part `c`.
pub fn flow(name: &str, c: usize, lets: usize, rows: usize) -> String {
    let mut out = String::new();
    out.push_str(&format!("/// Generated flow `{name}`.\nflow {name} {{\n  version \"1.2.3\"\n  owner director_{c}\n  steward auditor_{c}\n\n"));
    out.push_str(&format!(
        "  input request: Request{c}\n  input party: Party{c} from parties_{c}\n  output outcome: Outcome{c}\n\n"
    ));
    out.push_str("  param small: Money[USD] = 1_000 USD\n  param large: Money[USD] = 50_000 USD\n\n");
    out.push_str(&format!(
        "  access {{\n    trigger by clerk_{c}\n    view confidential_{c} by manager_{c}, auditor_{c}\n    view pii_{c} by auditor_{c}\n    override blocked by director_{c}\n    replay by auditor_{c}\n    read evidence by auditor_{c}\n  }}\n\n"
    ));
    out.push_str("  let over_limit = request.amount > party.limit\n");
    for i in 0..lets {
        let line = match i % 5 {
            0 => format!("  let v{i} = request.amount * {} + {} USD\n", i % 7 + 1, i * 10),
            1 => format!("  let v{i} = v{} > large or request.priority > {}\n", i - 1, i % 9),
            2 => format!("  let v{i} = if v{} then \"flag {i}\" else \"ok {{request.id}}\"\n", i - 1),
            3 => format!("  let v{i} = (request.priority + {}) * 2 - party.rating\n", i),
            _ => format!("  let v{i} = is_present(request.center) and request.center != \"x{i}\"\n"),
        };
        out.push_str(&line);
    }
    out.push('\n');
    out.push_str("  gate blocked: block when party.blocked\n    message \"The party is blocked\"\n");
    out.push_str(&format!("  gate stale_party: block when stale(party)\n  gate over: soft when over_limit\n    approve by director_{c}\n    within 48h otherwise reject\n  gate big: info when request.amount > 250_000 USD\n\n"));
    out.push_str(&format!(
        "  infer risk = assess_{c}(amount: request.amount, rating: party.rating, note: request.note)\n    fallback rules_{c}(request, party)\n\n"
    ));
    out.push_str(&format!(
        "  review triage by manager_{c}\n    when risk.confidence < 0.7 or degraded(risk)\n    outcomes approve, reject, escalate\n    reasons fine, risky, missing\n    may edit risk.tier\n    within 5d otherwise reject because missing\n    remind 1d before\n\n"
    ));
    out.push_str("  approval sign {\n");
    let regions = ["emea", "americas", "apac"];
    for row in 0..rows {
        let region = regions[row % 3];
        let requirement = match row % 4 {
            0 => format!("1 of clerk_{c}"),
            1 => format!("1 of manager_{c}"),
            2 => format!("1 of manager_{c}, 1 of director_{c}"),
            _ => format!("all of director_{c}, auditor_{c}"),
        };
        let low = (row / 3) * 1_000;
        let high = low + 1_000;
        out.push_str(&format!(
            "    when request.region == {region} and request.amount >= {low} USD and request.amount < {high} USD and risk.tier != high => {requirement}\n"
        ));
    }
    out.push_str(&format!("    when risk.tier == high => all of director_{c}, auditor_{c}\n    otherwise => 1 of director_{c}\n    distinct from request.requester\n    within 7d otherwise escalate to director_{c}\n    within 14d otherwise block\n  }}\n\n"));
    out.push_str("  let approved = sign.approved and triage.outcome != reject\n\n");
    out.push_str(&format!(
        "  action posted = ledger_{c}.post(request, risk.tier)\n    when approved\n    idempotency request.id\n\n"
    ));
    out.push_str(&format!(
        "  emit outcome = Outcome{c} {{\n    approved: approved,\n    tier: risk.tier,\n    explanation: \"{{risk.tier}}: {{risk.rationale}}\",\n  }}\n\n  evidence {{\n    retain 7y\n  }}\n}}\n"
    ));
    out
}

/// A workspace of `files` flow files (each with two flows) and shared declarations:
/// `(path, text)` pairs, and the total number of lines.
pub fn workspace(files: usize) -> (Vec<(String, String)>, usize) {
    let commons = 5;
    let mut out: Vec<(String, String)> = (0..commons).map(|i| (format!("common/part_{i}.flow"), common(i))).collect();
    for f in 0..files {
        let c = f % commons;
        let mut text = format!("import \"../common/part_{c}.flow\"\n\n");
        text.push_str(&flow(&format!("flow_{f}_a"), c, 150, 24));
        text.push('\n');
        text.push_str(&flow(&format!("flow_{f}_b"), c, 150, 24));
        out.push((format!("flows/file_{f}.flow"), text));
    }
    let lines = out.iter().map(|(_, t)| t.lines().count()).sum();
    (out, lines)
}

/// One file with a single flow of about 1,000 lines.
pub fn single_flow() -> (Vec<(String, String)>, usize) {
    let mut text = common(0);
    text.push('\n');
    text.push_str(&flow("big", 0, 860, 60));
    let lines = text.lines().count();
    (vec![("big.flow".to_owned(), text)], lines)
}

/// A prompt file: its path and bytes.
pub type Prompt = (String, Vec<u8>);

/// The example flows of the repository (`examples/`), copied into `copies` directories:
/// realistic flows as people write them, with comments, blank lines, records and
/// multi-line calls. Returns the `.flow` files, the prompt files, and the number of lines.
pub fn examples_workspace(copies: usize) -> (Vec<(String, String)>, Vec<Prompt>, usize) {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let mut flows = Vec::new();
    let mut prompts = Vec::new();
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.filter_map(Result::ok) {
            let path = entry.path();
            // Not what a run left there (`.flow`, a store of runs and their evidence).
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let relative = path.strip_prefix(&root).unwrap_or(&path).to_string_lossy().replace('\\', "/");
            let Ok(bytes) = std::fs::read(&path) else { continue };
            if relative.ends_with(".flow") {
                flows.push((relative, String::from_utf8_lossy(&bytes).into_owned()));
            } else {
                prompts.push((relative, bytes));
            }
        }
    }
    flows.sort();
    prompts.sort();
    let mut out_flows = Vec::new();
    let mut out_prompts = Vec::new();
    for copy in 0..copies {
        for (path, text) in &flows {
            out_flows.push((format!("copy_{copy}/{path}"), text.clone()));
        }
        for (path, bytes) in &prompts {
            out_prompts.push((format!("copy_{copy}/{path}"), bytes.clone()));
        }
    }
    let lines = out_flows.iter().map(|(_, t)| t.lines().count()).sum();
    (out_flows, out_prompts, lines)
}

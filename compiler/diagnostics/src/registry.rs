//! The registry of diagnostic codes: one table, stable forever.
//!
//! Ranges: E0xxx syntax, E1xxx names and types, E2xxx flows and governance (E21xx a plan
//! file the verifier refuses), E3xxx the runtime's errors (`flow_runtime::ErrorKind`, one
//! code per kind); warnings use W and the same ranges. The kebab-case name describes the problem,
//! not its fix. A code is never reused or deleted: a retired code keeps its entry and its
//! explanation starts with "This code is no longer emitted".

use std::fmt;

/// How serious a diagnostic is. Errors make `flowc check` fail; warnings do not, unless
/// `--strict` promotes them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Severity {
    Error,
    Warning,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        }
    }
}

macro_rules! codes {
    ($($code:ident = $name:literal,)*) => {
        /// A stable diagnostic code.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Code {
            $($code,)*
        }

        impl Code {
            /// Every code, in registry order.
            pub const ALL: &'static [Code] = &[$(Code::$code,)*];

            /// The code as written in output, e.g. `E1002`.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Code::$code => stringify!($code),)*
                }
            }

            /// The kebab-case name of the problem, e.g. `type-mismatch`.
            pub fn name(self) -> &'static str {
                match self {
                    $(Code::$code => $name,)*
                }
            }

            /// The long explanation printed by `flowc explain`, in Markdown.
            pub fn explanation(self) -> &'static str {
                match self {
                    $(Code::$code => include_str!(concat!("../explanations/", stringify!($code), ".md")),)*
                }
            }
        }
    };
}

codes! {
    E0001 = "unexpected-token",
    E0002 = "invalid-encoding",
    E0003 = "unterminated-string",
    E0004 = "unclosed-block",
    E0005 = "invalid-literal",
    E0006 = "nesting-too-deep",
    E0007 = "unknown-escape",
    E0008 = "unknown-currency",
    E0009 = "interpolation-not-allowed",
    E1001 = "unresolved-name",
    E1002 = "type-mismatch",
    E1003 = "duplicate-definition",
    E1004 = "import-not-found",
    E1005 = "import-cycle",
    E1006 = "role-cycle",
    E1007 = "unknown-field",
    E1008 = "missing-field",
    E1009 = "currency-mismatch",
    E1010 = "unchecked-optional",
    E1011 = "invalid-operands",
    E1012 = "argument-mismatch",
    E1013 = "unknown-variant",
    E1014 = "conflicting-imports",
    E1015 = "wrong-kind",
    E1016 = "recursive-definition",
    E1017 = "non-constant-default",
    E1018 = "repeated-clause",
    E1019 = "invalid-type",
    E1020 = "list-in-flow",
    E1021 = "failing-default",
    E2001 = "dependency-cycle",
    E2002 = "output-not-emitted",
    E2003 = "matrix-not-exhaustive",
    E2004 = "matrix-dead-row",
    E2005 = "model-not-pinned",
    E2006 = "prompt-not-found",
    E2007 = "source-without-authority",
    E2008 = "label-leak",
    E2009 = "gate-without-approvers",
    E2010 = "invalid-override",
    E2011 = "missing-setting",
    E2012 = "invalid-edit",
    E2013 = "freshness-unknown",
    E2014 = "misplaced-clause",
    E2015 = "invalid-requirement",
    E2016 = "invalid-version",
    E2017 = "unreachable-item",
    E2018 = "governance-bypassed",
    E2019 = "separation-unsatisfiable",
    E2020 = "invalid-prompt",
    E2021 = "approval-outcome-unread",
    E2022 = "declassify-not-permitted",
    E2023 = "invalid-deadline",
    E2024 = "unknown-metric",
    E2025 = "invalid-monitor-threshold",
    E2026 = "invalid-alert-route",
    E2027 = "corpus-not-pinned",
    E2101 = "plan-unreadable",
    E2102 = "plan-version-unsupported",
    E2103 = "plan-hash-mismatch",
    E2104 = "plan-malformed",
    E2105 = "plan-ill-typed",
    E2106 = "plan-missing-edge",
    E3001 = "refused",
    E3002 = "input-mismatch",
    E3003 = "unknown-run",
    E3004 = "decision-mismatch",
    E3005 = "run-busy",
    E3006 = "plan-refused",
    E3007 = "store-changed",
    E3008 = "store-unusable",
    E3009 = "run-conflict",
    E3010 = "evidence-keys",
    E3011 = "already-settled",
    W1001 = "unused-import",
    W2001 = "matrix-too-complex",
    W2002 = "silent-fallback",
    W2003 = "may-wait-forever",
}

impl Code {
    pub fn severity(self) -> Severity {
        if self.as_str().starts_with('W') { Severity::Warning } else { Severity::Error }
    }

    /// Looks a code up by its code (`E1002`, any case) or its name (`type-mismatch`).
    pub fn lookup(text: &str) -> Option<Code> {
        let text = text.trim();
        Code::ALL.iter().copied().find(|code| code.as_str().eq_ignore_ascii_case(text) || code.name() == text)
    }

    /// The first line of the explanation: what the problem is, in one sentence.
    pub fn summary(self) -> &'static str {
        self.explanation()
            .lines()
            .map(|line| line.trim_start_matches('#').trim())
            .find(|line| !line.is_empty())
            .unwrap_or("")
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

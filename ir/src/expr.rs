//! The typed expression IR: what gates, `let`s, functions, arguments and approval rows
//! compute. Every expression carries its type; conversions are explicit ([`ExprKind::Widen`]
//! turns whole numbers into decimals, [`ExprKind::Unwrap`] reads an optional that a
//! condition proved present), so an interpreter and a compiler to native code can execute
//! it without inferring anything.

use std::fmt;

use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use smol_str::SmolStr;

use crate::time;
use crate::ty::{Currency, Ty};

/// An amount of money in a currency, written `"12.50 EUR"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Money {
    pub amount: Decimal,
    pub currency: Currency,
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.amount, self.currency)
    }
}

impl Money {
    /// Reads `"12.50 EUR"`.
    pub fn parse(text: &str) -> Option<Money> {
        if let Some(money) = Money::parse_plain(text) {
            return Some(money);
        }
        let (amount, currency) = text.trim().rsplit_once(' ')?;
        let amount = amount.trim();
        // Exactly, or not at all: an amount is never rounded to fit.
        let amount = if amount.contains('_') {
            Decimal::from_str_exact(&amount.chars().filter(|c| *c != '_').collect::<String>()).ok()?
        } else {
            Decimal::from_str_exact(amount).ok()?
        };
        Some(Money { amount, currency: Currency::new(currency)? })
    }

    /// The shape most amounts are written in, read without searching the text: digits,
    /// perhaps a point and more digits (18 digits at most), a space and the currency;
    /// `None` for anything else, which [`Money::parse`] reads the general way (to the same
    /// amount, scale included).
    fn parse_plain(text: &str) -> Option<Money> {
        let bytes = text.as_bytes();
        let (amount, currency) = bytes.split_at_checked(bytes.len().checked_sub(4)?)?;
        let [b' ', code @ ..] = currency else { return None };
        let currency = Currency::new(std::str::from_utf8(code).ok()?)?;
        let (mut mantissa, mut digits, mut scale, mut point) = (0u64, 0u32, 0u32, false);
        for &byte in amount {
            match byte {
                b'0'..=b'9' => {
                    mantissa = mantissa * 10 + u64::from(byte - b'0');
                    digits += 1;
                    scale += u32::from(point);
                    if digits > 18 {
                        return None;
                    }
                }
                b'.' if !point && digits > 0 => point = true,
                _ => return None,
            }
        }
        if digits == 0 || (point && scale == 0) {
            return None;
        }
        Some(Money { amount: Decimal::from_i128_with_scale(i128::from(mantissa), scale), currency })
    }
}

/// An instant: seconds and nanoseconds since the Unix epoch, in UTC. Written as RFC 3339.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Timestamp {
    pub seconds: i64,
    pub nanos: u32,
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&time::format_timestamp(self.seconds, self.nanos))
    }
}

macro_rules! serde_as_text {
    ($ty:ty, $parse:expr, $what:literal) => {
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<$ty, D::Error> {
                let crate::ty::Text(text) = crate::ty::Text::deserialize(deserializer)?;
                let parse: fn(&str) -> Option<$ty> = $parse;
                parse(&text).ok_or_else(|| serde::de::Error::custom(format!(concat!("`{}` is not ", $what), text)))
            }
        }
    };
}

serde_as_text!(Money, Money::parse, "an amount such as `12.50 EUR`");
serde_as_text!(
    Timestamp,
    |text| time::parse_timestamp(text).map(|(seconds, nanos)| Timestamp { seconds, nanos }),
    "an RFC 3339 instant"
);

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Literal {
    Int(i64),
    Decimal(Decimal),
    Money(Money),
    /// Seconds.
    Duration(i64),
    Timestamp(Timestamp),
    Bool(bool),
    Text(String),
}

impl Literal {
    pub fn ty(&self) -> Ty {
        match self {
            Literal::Int(_) => Ty::Int,
            Literal::Decimal(_) => Ty::Decimal,
            Literal::Money(money) => Ty::Money(Some(money.currency)),
            Literal::Duration(_) => Ty::Duration,
            Literal::Timestamp(_) => Ty::Timestamp,
            Literal::Bool(_) => Ty::Bool,
            Literal::Text(_) => Ty::Text,
        }
    }
}

/// A prefix operator of the language: `not`, and `-` (negation). A plan writes them as
/// expressions of their own (`ExprKind::Not`, `ExprKind::Neg`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum UnaryOp {
    Not,
    Neg,
}

impl UnaryOp {
    pub fn as_str(self) -> &'static str {
        match self {
            UnaryOp::Not => "not",
            UnaryOp::Neg => "-",
        }
    }
}

/// An infix operator of the language, shared by the compiler and plans.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BinaryOp {
    Or,
    And,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Add,
    Sub,
    Mul,
    Div,
}

impl BinaryOp {
    pub fn as_str(self) -> &'static str {
        match self {
            BinaryOp::Or => "or",
            BinaryOp::And => "and",
            BinaryOp::Eq => "==",
            BinaryOp::Ne => "!=",
            BinaryOp::Lt => "<",
            BinaryOp::Le => "<=",
            BinaryOp::Gt => ">",
            BinaryOp::Ge => ">=",
            BinaryOp::Add => "+",
            BinaryOp::Sub => "-",
            BinaryOp::Mul => "*",
            BinaryOp::Div => "/",
        }
    }

    /// Every operator.
    pub const ALL: [BinaryOp; 12] = [
        BinaryOp::Or,
        BinaryOp::And,
        BinaryOp::Eq,
        BinaryOp::Ne,
        BinaryOp::Lt,
        BinaryOp::Le,
        BinaryOp::Gt,
        BinaryOp::Ge,
        BinaryOp::Add,
        BinaryOp::Sub,
        BinaryOp::Mul,
        BinaryOp::Div,
    ];

    pub fn is_comparison(self) -> bool {
        matches!(self, BinaryOp::Eq | BinaryOp::Ne | BinaryOp::Lt | BinaryOp::Le | BinaryOp::Gt | BinaryOp::Ge)
    }

    /// How tightly the operator binds: higher binds tighter.
    pub fn precedence(self) -> u8 {
        match self {
            BinaryOp::Or => 1,
            BinaryOp::And => 2,
            BinaryOp::Eq | BinaryOp::Ne | BinaryOp::Lt | BinaryOp::Le | BinaryOp::Gt | BinaryOp::Ge => 4,
            BinaryOp::Add | BinaryOp::Sub => 5,
            BinaryOp::Mul | BinaryOp::Div => 6,
        }
    }
}

/// A part of a text with interpolation.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Part {
    Text(String),
    Expr(Expr),
}

/// A field initialiser of a record value, or a named argument.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Named {
    pub name: SmolStr,
    pub value: Expr,
}

/// A built-in function that computes from its arguments only.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Builtin {
    /// `len(list)` or `len(text)`: `Int`.
    Len,
    /// `contains(text, part)`: `Bool`.
    Contains,
    /// `lower(text)`: `Text`.
    Lower,
    /// `is_present(optional)`: `Bool`.
    IsPresent,
}

impl Builtin {
    pub const ALL: [Builtin; 4] = [Builtin::Len, Builtin::Contains, Builtin::Lower, Builtin::IsPresent];

    pub fn name(self) -> &'static str {
        match self {
            Builtin::Len => "len",
            Builtin::Contains => "contains",
            Builtin::Lower => "lower",
            Builtin::IsPresent => "is_present",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ExprKind {
    Lit(Literal),
    /// A text with `{…}` parts.
    Interpolate(Vec<Part>),
    /// The value of the node of this name (an input, param, `let`, `infer`, review,
    /// approval or action).
    Node(SmolStr),
    /// A parameter of the function being defined, by position.
    Param(u32),
    /// The item of an `any`/`all` condition, counted from the innermost outwards.
    Local(u32),
    /// A variant of the expression's (enum) type.
    Variant(SmolStr),
    Field {
        base: Box<Expr>,
        field: SmolStr,
    },
    /// An optional value that an enclosing condition proved present (`is_present`).
    Unwrap(Box<Expr>),
    /// Whole numbers widened to decimals, to the expression's type.
    Widen(Box<Expr>),
    /// A call of a function of the plan, with its arguments in parameter order.
    Call {
        function: SmolStr,
        args: Vec<Expr>,
    },
    Builtin {
        builtin: Builtin,
        args: Vec<Expr>,
    },
    /// `now()`: the run's recorded clock.
    Now,
    /// `started_by()`: the principal who started the run.
    StartedBy,
    /// `declassify(value, "why")`: the value, without the labels it carries (the flow's
    /// owner is granted to view them), with the reason the flow gives.
    Declassify {
        value: Box<Expr>,
        reason: SmolStr,
    },
    /// `age(input)`: how old the input's record is, by its source's `as_of` field.
    Age(SmolStr),
    /// `stale(input)`: whether the input's record is older than its source's freshness.
    Stale(SmolStr),
    /// `degraded(step)`: whether the `infer` step used its fallback.
    Degraded(SmolStr),
    /// `any(list, var => body)`, or `all(…)` when `all`.
    Quantifier {
        all: bool,
        var: SmolStr,
        list: Box<Expr>,
        body: Box<Expr>,
    },
    /// A value of the expression's record type; fields by name, in name order, absent
    /// optional fields left out.
    Record(Vec<Named>),
    /// A list of values, written in a test (a flow's lists come from its inputs).
    List(Vec<Expr>),
    Not(Box<Expr>),
    Neg(Box<Expr>),
    Binary {
        op: BinaryOp,
        lhs: Box<Expr>,
        rhs: Box<Expr>,
    },
    If {
        branches: Vec<Branch>,
        otherwise: Box<Expr>,
    },
}

/// Calls `$f` on each direct subexpression of the expression kind `$kind` (a shared
/// reference, or a mutable one with `mut`).
macro_rules! children {
    ($kind:expr, $f:ident $(, $m:tt)?) => {
        match $kind {
            ExprKind::Lit(_)
            | ExprKind::Node(_)
            | ExprKind::Param(_)
            | ExprKind::Local(_)
            | ExprKind::Variant(_)
            | ExprKind::Now
            | ExprKind::StartedBy
            | ExprKind::Age(_)
            | ExprKind::Stale(_)
            | ExprKind::Degraded(_) => {}
            ExprKind::Interpolate(parts) => {
                for part in parts {
                    if let Part::Expr(e) = part {
                        $f(e);
                    }
                }
            }
            ExprKind::Field { base: inner, .. }
            | ExprKind::Declassify { value: inner, .. }
            | ExprKind::Unwrap(inner)
            | ExprKind::Widen(inner)
            | ExprKind::Not(inner)
            | ExprKind::Neg(inner) => $f(inner),
            ExprKind::Call { args, .. } | ExprKind::Builtin { args, .. } | ExprKind::List(args) => {
                for arg in args {
                    $f(arg);
                }
            }
            ExprKind::Quantifier { list, body, .. } => {
                $f(list);
                $f(body);
            }
            ExprKind::Record(fields) => {
                for field in fields {
                    $f(&$($m)? field.value);
                }
            }
            ExprKind::Binary { lhs, rhs, .. } => {
                $f(lhs);
                $f(rhs);
            }
            ExprKind::If { branches, otherwise } => {
                for branch in branches {
                    $f(&$($m)? branch.condition);
                    $f(&$($m)? branch.then);
                }
                $f(otherwise);
            }
        }
    };
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Branch {
    pub condition: Expr,
    pub then: Expr,
}

/// An expression and its type. In a plan file, a JSON array: the operation, the type, and
/// the operands (`docs/plan-format.md`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Expr {
    pub ty: Ty,
    pub kind: ExprKind,
}

impl Expr {
    pub fn new(ty: Ty, kind: ExprKind) -> Expr {
        Expr { ty, kind }
    }

    /// Calls `f` on each direct subexpression, in evaluation order.
    pub fn for_each_child<'a>(&'a self, mut f: impl FnMut(&'a Expr)) {
        children!(&self.kind, f)
    }

    /// Calls `f` on each direct subexpression, mutably, in evaluation order.
    pub fn for_each_child_mut(&mut self, mut f: impl FnMut(&mut Expr)) {
        children!(&mut self.kind, f, mut)
    }

    /// Calls `f` on this expression and every expression inside it, outermost first.
    pub fn walk<'a>(&'a self, f: &mut dyn FnMut(&'a Expr)) {
        let mut stack = vec![self];
        while let Some(expr) = stack.pop() {
            f(expr);
            let at = stack.len();
            expr.for_each_child(|child| stack.push(child));
            stack[at..].reverse();
        }
    }

    /// The nodes this expression reads: values, and the record age, staleness or
    /// degradation of a node.
    pub fn nodes_read(&self) -> Vec<&SmolStr> {
        let mut nodes = Vec::new();
        self.walk(&mut |e| match &e.kind {
            ExprKind::Node(n) | ExprKind::Age(n) | ExprKind::Stale(n) | ExprKind::Degraded(n) => nodes.push(n),
            _ => {}
        });
        nodes
    }

    /// The places rooted at node values that this expression reads: the node and the path
    /// of fields read from it (empty when the value is read whole).
    pub fn places_read(&self) -> Vec<(&SmolStr, Vec<&SmolStr>)> {
        let mut places = Vec::new();
        let mut stack = vec![self];
        while let Some(expr) = stack.pop() {
            if let Some((node, path)) = expr.place() {
                places.push((node, path));
                continue;
            }
            expr.for_each_child(|child| stack.push(child));
        }
        places
    }

    /// The node and field path this expression reads, when it is a place (`risk.tier`,
    /// `request.cost_center`, through proofs of presence).
    pub fn place(&self) -> Option<(&SmolStr, Vec<&SmolStr>)> {
        match &self.kind {
            ExprKind::Node(node) => Some((node, Vec::new())),
            ExprKind::Field { base, field } => {
                let (node, mut path) = base.place()?;
                path.push(field);
                Some((node, path))
            }
            ExprKind::Unwrap(inner) => inner.place(),
            _ => None,
        }
    }
}

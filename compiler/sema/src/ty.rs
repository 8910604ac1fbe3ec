//! Types of the Flow language.

use std::fmt;
use std::sync::Arc;

use crate::db::DeclId;

/// An ISO 4217 currency code: the plan's own (`flow-ir`), so that the compiler and the
/// runtime read and write currencies alike.
pub use flow_ir::ty::Currency;

/// Which enumeration an enum type is.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EnumKind {
    /// An `enum` declaration.
    Decl(DeclId),
    /// The outcomes of a review (plus `skipped` when the review has a `when`).
    Outcome { flow: DeclId, step: u32 },
    /// The reason codes of a review.
    Reason { flow: DeclId, step: u32 },
}

/// An enum type: its identity and the name to show.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EnumRef {
    pub kind: EnumKind,
    pub name: Arc<str>,
}

/// Which kind of step a [`Ty::Step`] is the result of.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StepResult {
    Review,
    Approval,
}

/// The result of a review or approval step.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StepRef {
    pub flow: DeclId,
    pub step: u32,
    pub kind: StepResult,
    pub name: Arc<str>,
    /// Whether the step runs only when a condition holds (a review with `when`).
    pub conditional: bool,
    /// Whether a deadline may decide it (`within 48h otherwise reject because …`), so that
    /// a review may have no reviewer.
    pub timed: bool,
}

/// A record type declared with `type`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RecordRef {
    pub id: DeclId,
    pub name: Arc<str>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Ty {
    Bool,
    Int,
    Decimal,
    /// Money in one currency (`Money[USD]`), or in a currency known at run time (`Money`).
    Money(Option<Currency>),
    Text,
    Timestamp,
    Duration,
    Principal,
    List(Box<Ty>),
    Optional(Box<Ty>),
    Record(RecordRef),
    Enum(EnumRef),
    /// The result of a review or an approval step: only its fields can be read.
    Step(StepRef),
    /// The result of an action that returns nothing.
    Nothing,
    /// The type of something already reported as wrong; compatible with everything, so
    /// one mistake is reported once.
    Error,
}

impl Ty {
    pub fn is_error(&self) -> bool {
        matches!(self, Ty::Error)
    }

    /// Whether the type is a number: `Int` or `Decimal`.
    pub fn is_number(&self) -> bool {
        matches!(self, Ty::Int | Ty::Decimal)
    }

    pub fn is_optional(&self) -> bool {
        matches!(self, Ty::Optional(_))
    }

    /// The type without its optional marker.
    pub fn unwrap_optional(&self) -> &Ty {
        match self {
            Ty::Optional(inner) => inner,
            other => other,
        }
    }

    pub fn optional(self) -> Ty {
        match self {
            Ty::Optional(_) | Ty::Error => self,
            other => Ty::Optional(Box::new(other)),
        }
    }

    /// Whether a value of type `self` may be used where `expected` is wanted.
    ///
    /// `Money[USD]` fits `Money`; `T` fits `T?`; `Int` fits `Decimal` (widening); the error
    /// type fits everything both ways.
    pub fn fits(&self, expected: &Ty) -> bool {
        match (self, expected) {
            (Ty::Error, _) | (_, Ty::Error) => true,
            (Ty::Int, Ty::Decimal) => true,
            (Ty::Money(_), Ty::Money(None)) => true,
            (Ty::Money(Some(a)), Ty::Money(Some(b))) => a == b,
            (Ty::Money(None), Ty::Money(Some(_))) => false,
            (Ty::List(a), Ty::List(b)) => a.fits(b),
            (Ty::Optional(a), Ty::Optional(b)) => a.fits(b),
            (actual, Ty::Optional(inner)) => actual.fits(inner),
            (a, b) => a == b,
        }
    }
}

impl fmt::Display for Ty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ty::Bool => f.write_str("Bool"),
            Ty::Int => f.write_str("Int"),
            Ty::Decimal => f.write_str("Decimal"),
            Ty::Money(Some(currency)) => write!(f, "Money[{currency}]"),
            Ty::Money(None) => f.write_str("Money"),
            Ty::Text => f.write_str("Text"),
            Ty::Timestamp => f.write_str("Timestamp"),
            Ty::Duration => f.write_str("Duration"),
            Ty::Principal => f.write_str("Principal"),
            Ty::List(inner) => write!(f, "List[{inner}]"),
            Ty::Optional(inner) => write!(f, "{inner}?"),
            Ty::Record(record) => f.write_str(&record.name),
            Ty::Enum(e) => f.write_str(&e.name),
            Ty::Step(step) => match step.kind {
                StepResult::Review => write!(f, "review {}", step.name),
                StepResult::Approval => write!(f, "approval {}", step.name),
            },
            Ty::Nothing => f.write_str("nothing"),
            Ty::Error => f.write_str("?"),
        }
    }
}

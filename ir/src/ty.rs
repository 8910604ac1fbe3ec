//! Types of plan values, written in the plan as the language writes them (`Money[USD]`,
//! `List[Text]?`, `RiskTier`, `triage.outcome`).
//!
//! A plan names its records and enums in one namespace, as the language does, so a
//! declared type is just a name ([`Ty::Named`]); the plan's tables say what it is.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use smol_str::SmolStr;

/// An ISO 4217 currency code: three capital letters.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Currency([u8; 3]);

impl Currency {
    /// ISO 4217's code for "no currency".
    pub const XXX: Currency = Currency(*b"XXX");

    pub fn new(code: &str) -> Option<Currency> {
        let bytes: [u8; 3] = code.as_bytes().try_into().ok()?;
        bytes.iter().all(u8::is_ascii_uppercase).then_some(Currency(bytes))
    }

    /// The code's three letters.
    pub fn code(&self) -> [u8; 3] {
        self.0
    }

    pub fn as_str(&self) -> &str {
        // INVARIANT: `Currency::new` admits only ASCII capitals.
        std::str::from_utf8(&self.0).unwrap_or("???")
    }
}

impl fmt::Debug for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The type of a value in a plan.
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
    /// A record or an enum declared in the plan.
    Named(SmolStr),
    /// The outcomes of the review step of this name (`triage.outcome`).
    Outcome(SmolStr),
    /// The reason codes of the review step of this name (`triage.reason`).
    Reason(SmolStr),
    /// The result of the review step of this name: only its fields are values.
    Review(SmolStr),
    /// The result of the approval step of this name: only its fields are values.
    Approval(SmolStr),
    /// What a gate, an emit, or an action without result gives.
    Nothing,
}

impl Ty {
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

    /// `T?`; an optional stays as it is.
    pub fn optional(self) -> Ty {
        match self {
            Ty::Optional(_) => self,
            other => Ty::Optional(Box::new(other)),
        }
    }

    pub fn is_number(&self) -> bool {
        matches!(self, Ty::Int | Ty::Decimal)
    }

    /// Whether a value of type `self` may stand where `expected` is wanted, with no
    /// conversion: `Money[USD]` fits `Money`, `T` fits `T?`, and lists of fitting items fit.
    /// (`Int` does not fit `Decimal`: a plan widens explicitly.)
    pub fn fits(&self, expected: &Ty) -> bool {
        match (self, expected) {
            (Ty::Money(_), Ty::Money(None)) => true,
            (Ty::List(a), Ty::List(b)) => a.fits(b),
            (Ty::Optional(a), Ty::Optional(b)) => a.fits(b),
            (actual, Ty::Optional(inner)) => actual.fits(inner),
            (a, b) => a == b,
        }
    }

    /// Whether `self` converts to `target` by widening whole numbers to decimals,
    /// structurally (`Int` to `Decimal`, `List[Int]` to `List[Decimal]`, `Int` to
    /// `Decimal?`), with at least one `Int` widened.
    pub fn widens_to(&self, target: &Ty) -> bool {
        match (self, target) {
            (Ty::Int, Ty::Decimal) => true,
            (Ty::List(a), Ty::List(b)) => a.widens_to(b),
            (Ty::Optional(a), Ty::Optional(b)) => a.widens_to(b),
            (a, Ty::Optional(b)) if !a.is_optional() => a.widens_to(b),
            _ => false,
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
            Ty::Named(name) => f.write_str(name),
            Ty::Outcome(step) => write!(f, "{step}.outcome"),
            Ty::Reason(step) => write!(f, "{step}.reason"),
            Ty::Review(step) => write!(f, "review {step}"),
            Ty::Approval(step) => write!(f, "approval {step}"),
            Ty::Nothing => f.write_str("Nothing"),
        }
    }
}

/// A type written in the plan could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TypeSyntaxError(pub String);

impl fmt::Display for TypeSyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}` is not a type", self.0)
    }
}

fn is_name(text: &str) -> bool {
    let mut chars = text.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '@' || c == '/' || c == '.' || c == '-')
}

/// The longest type text a plan may write.
const MAX_TYPE_TEXT: usize = 1024;

impl FromStr for Ty {
    type Err = TypeSyntaxError;

    fn from_str(text: &str) -> Result<Ty, TypeSyntaxError> {
        // The common types first: plans write a type on every expression.
        match text {
            "Bool" => return Ok(Ty::Bool),
            "Int" => return Ok(Ty::Int),
            "Decimal" => return Ok(Ty::Decimal),
            "Text" => return Ok(Ty::Text),
            "Money[USD]" => return Ok(Ty::Money(Currency::new("USD"))),
            _ => {}
        }
        let error = || TypeSyntaxError(text.to_owned());
        // A type is written in a few words; a longer text (types nested hundreds deep)
        // would be read by recursion as deep.
        if text.len() > MAX_TYPE_TEXT {
            return Err(error());
        }
        if let Some(inner) = text.strip_suffix('?') {
            let inner: Ty = inner.parse().map_err(|_| error())?;
            return if inner.is_optional() { Err(error()) } else { Ok(Ty::Optional(Box::new(inner))) };
        }
        if let Some(inner) = text.strip_prefix("List[").and_then(|t| t.strip_suffix(']')) {
            return Ok(Ty::List(Box::new(inner.parse().map_err(|_| error())?)));
        }
        if let Some(code) = text.strip_prefix("Money[").and_then(|t| t.strip_suffix(']')) {
            return Currency::new(code).map(|c| Ty::Money(Some(c))).ok_or_else(error);
        }
        if let Some(step) = text.strip_prefix("review ") {
            return is_name(step).then(|| Ty::Review(step.into())).ok_or_else(error);
        }
        if let Some(step) = text.strip_prefix("approval ") {
            return is_name(step).then(|| Ty::Approval(step.into())).ok_or_else(error);
        }
        if let Some(step) = text.strip_suffix(".outcome").filter(|s| is_name(s)) {
            return Ok(Ty::Outcome(step.into()));
        }
        if let Some(step) = text.strip_suffix(".reason").filter(|s| is_name(s)) {
            return Ok(Ty::Reason(step.into()));
        }
        Ok(match text {
            "Bool" => Ty::Bool,
            "Int" => Ty::Int,
            "Decimal" => Ty::Decimal,
            "Money" => Ty::Money(None),
            "Text" => Ty::Text,
            "Timestamp" => Ty::Timestamp,
            "Duration" => Ty::Duration,
            "Principal" => Ty::Principal,
            "Nothing" => Ty::Nothing,
            name if is_name(name) && name.starts_with(|c: char| c.is_ascii_uppercase()) => Ty::Named(name.into()),
            _ => return Err(error()),
        })
    }
}

impl Serialize for Ty {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // Without formatting where the text is at hand: every expression writes a type.
        let simple = match self {
            Ty::Bool => "Bool",
            Ty::Int => "Int",
            Ty::Decimal => "Decimal",
            Ty::Money(None) => "Money",
            Ty::Text => "Text",
            Ty::Timestamp => "Timestamp",
            Ty::Duration => "Duration",
            Ty::Principal => "Principal",
            Ty::Nothing => "Nothing",
            Ty::Named(name) => name,
            _ => return serializer.collect_str(self),
        };
        serializer.serialize_str(simple)
    }
}

/// A string read from a plan, borrowed from the file where it has no escapes (serde's
/// `Cow<str>` always copies).
pub(crate) struct Text<'de>(pub std::borrow::Cow<'de, str>);

impl<'de> Deserialize<'de> for Text<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Text<'de>, D::Error> {
        struct TextVisitor;
        impl<'de> serde::de::Visitor<'de> for TextVisitor {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: serde::de::Error>(self, text: &'de str) -> Result<Text<'de>, E> {
                Ok(Text(std::borrow::Cow::Borrowed(text)))
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Text<'de>, E> {
                Ok(Text(std::borrow::Cow::Owned(text.to_owned())))
            }
            fn visit_string<E: serde::de::Error>(self, text: String) -> Result<Text<'de>, E> {
                Ok(Text(std::borrow::Cow::Owned(text)))
            }
        }
        deserializer.deserialize_str(TextVisitor)
    }
}

impl<'de> Deserialize<'de> for Ty {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Ty, D::Error> {
        let text = Text::deserialize(deserializer)?;
        text.0.parse().map_err(serde::de::Error::custom)
    }
}

impl Serialize for Currency {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Currency, D::Error> {
        let Text(text) = Text::deserialize(deserializer)?;
        Currency::new(&text).ok_or_else(|| serde::de::Error::custom(format!("`{text}` is not a currency code")))
    }
}

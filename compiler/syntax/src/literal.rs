//! Decoding of literal text into values. Each function returns a steward-readable reason
//! when the text is well-formed for the grammar but not a valid value.

use std::str::FromStr;

use flow_ir::time::{days_from_civil, days_in_month};
use rust_decimal::Decimal;

/// The ISO 4217 codes of current currencies (and the precious metals and special drawing
/// rights that treasury systems use).
pub const CURRENCIES: &[&str] = &[
    "AED", "AFN", "ALL", "AMD", "ANG", "AOA", "ARS", "AUD", "AWG", "AZN", "BAM", "BBD", "BDT", "BGN", "BHD", "BIF",
    "BMD", "BND", "BOB", "BRL", "BSD", "BTN", "BWP", "BYN", "BZD", "CAD", "CDF", "CHF", "CLP", "CNY", "COP", "CRC",
    "CUP", "CVE", "CZK", "DJF", "DKK", "DOP", "DZD", "EGP", "ERN", "ETB", "EUR", "FJD", "FKP", "GBP", "GEL", "GHS",
    "GIP", "GMD", "GNF", "GTQ", "GYD", "HKD", "HNL", "HTG", "HUF", "IDR", "ILS", "INR", "IQD", "IRR", "ISK", "JMD",
    "JOD", "JPY", "KES", "KGS", "KHR", "KMF", "KPW", "KRW", "KWD", "KYD", "KZT", "LAK", "LBP", "LKR", "LRD", "LSL",
    "LYD", "MAD", "MDL", "MGA", "MKD", "MMK", "MNT", "MOP", "MRU", "MUR", "MVR", "MWK", "MXN", "MYR", "MZN", "NAD",
    "NGN", "NIO", "NOK", "NPR", "NZD", "OMR", "PAB", "PEN", "PGK", "PHP", "PKR", "PLN", "PYG", "QAR", "RON", "RSD",
    "RUB", "RWF", "SAR", "SBD", "SCR", "SDG", "SEK", "SGD", "SHP", "SLE", "SOS", "SRD", "SSP", "STN", "SVC", "SYP",
    "SZL", "THB", "TJS", "TMT", "TND", "TOP", "TRY", "TTD", "TWD", "TZS", "UAH", "UGX", "USD", "UYU", "UZS", "VES",
    "VND", "VUV", "WST", "XAF", "XAG", "XAU", "XCD", "XDR", "XOF", "XPD", "XPF", "XPT", "YER", "ZAR", "ZMW", "ZWG",
];

pub fn is_currency(code: &str) -> bool {
    CURRENCIES.binary_search(&code).is_ok()
}

/// The known currency closest to a mistyped code, if one is close.
pub fn suggest_currency(code: &str) -> Option<&'static str> {
    CURRENCIES
        .iter()
        .map(|candidate| (strsim::damerau_levenshtein(code, candidate), *candidate))
        .filter(|&(distance, _)| distance <= 1)
        .min()
        .map(|(_, candidate)| candidate)
}

fn strip_underscores(text: &str) -> String {
    text.chars().filter(|&c| c != '_').collect()
}

pub fn integer(text: &str) -> Result<i64, String> {
    strip_underscores(text)
        .parse::<i64>()
        .map_err(|_| format!("the number `{text}` is too large; whole numbers go up to 9,223,372,036,854,775,807"))
}

pub fn decimal(text: &str) -> Result<Decimal, String> {
    Decimal::from_str(&strip_underscores(text))
        .map_err(|_| format!("the number `{text}` has more digits than an exact decimal can hold (28)"))
}

/// `24h` → seconds. A year is 365 days, a week 7 days.
pub fn duration(text: &str) -> Result<i64, String> {
    let (digits, unit) = text.split_at(text.len() - 1);
    let per_unit: i64 = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => 365 * 86_400,
    };
    integer(digits)
        .ok()
        .and_then(|count| count.checked_mul(per_unit))
        .ok_or_else(|| format!("the duration `{text}` is too long"))
}

/// `@2026-04-11T13:35:00Z` → seconds and nanoseconds since the Unix epoch (UTC).
pub fn timestamp(text: &str) -> Result<(i64, u32), String> {
    let body = text.trim_start_matches('@');
    let number =
        |range: std::ops::Range<usize>| -> i64 { body.get(range).and_then(|digits| digits.parse().ok()).unwrap_or(-1) };
    let (year, month, day) = (number(0..4), number(5..7), number(8..10));
    if !(1..=12).contains(&month) {
        return Err(format!("`{text}` has no month {month}; months go from 01 to 12"));
    }
    // The calendar is the plan's (`flow_ir::time`), so that literals and plans agree on it.
    let days_in_month = u32::try_from(month).map_or(0, |month| days_in_month(year, month));
    if day < 1 || day > i64::from(days_in_month) {
        return Err(format!("`{text}` names a day that does not exist in {year}-{month:02}"));
    }
    let mut seconds_of_day = 0i64;
    let mut nanos = 0u32;
    let mut offset_seconds = 0i64;
    if body.len() > 10 {
        let (hour, minute) = (number(11..13), number(14..16));
        let mut rest = &body[16..];
        let mut second = 0;
        if let Some(after) = rest.strip_prefix(':') {
            second = after.get(0..2).and_then(|s| s.parse().ok()).unwrap_or(-1);
            rest = &after[2..];
            if let Some(fraction) = rest.strip_prefix('.') {
                let digits: String = fraction.chars().take_while(char::is_ascii_digit).collect();
                if digits.len() > 9 {
                    return Err(format!("`{text}` is more precise than a nanosecond"));
                }
                nanos = format!("{digits:0<9}").parse().unwrap_or(0);
                rest = &fraction[digits.len()..];
            }
        }
        if hour > 23 || minute > 59 || second > 59 {
            return Err(format!("`{text}` is not a time of day"));
        }
        seconds_of_day = hour * 3600 + minute * 60 + second;
        if rest != "Z" {
            let sign = if rest.starts_with('-') { -1 } else { 1 };
            let hours: i64 = rest.get(1..3).and_then(|s| s.parse().ok()).unwrap_or(99);
            let minutes: i64 = rest.get(4..6).and_then(|s| s.parse().ok()).unwrap_or(99);
            if hours > 23 || minutes > 59 {
                return Err(format!("`{text}` has an impossible offset from UTC"));
            }
            offset_seconds = sign * (hours * 3600 + minutes * 60);
        }
    }
    // INVARIANT: month and day were checked above, so both fit.
    let days = days_from_civil(year, month as u32, day as u32);
    Ok((days * 86_400 + seconds_of_day - offset_seconds, nanos))
}

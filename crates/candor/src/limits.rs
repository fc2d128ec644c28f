//! What the command line and the control API accept, checked at the edge with a message that
//! names the limit, before anything is signed, sent or kept.

use crate::error::CliError;

/// Active ISO 4217 currency codes (funds and precious metals excluded, as are XTS and XXX).
const ISO_4217: &[&str] = &[
    "AED", "AFN", "ALL", "AMD", "ANG", "AOA", "ARS", "AUD", "AWG", "AZN", "BAM", "BBD", "BDT",
    "BGN", "BHD", "BIF", "BMD", "BND", "BOB", "BRL", "BSD", "BTN", "BWP", "BYN", "BZD", "CAD",
    "CDF", "CHF", "CLP", "CNY", "COP", "CRC", "CUP", "CVE", "CZK", "DJF", "DKK", "DOP", "DZD",
    "EGP", "ERN", "ETB", "EUR", "FJD", "FKP", "GBP", "GEL", "GHS", "GIP", "GMD", "GNF", "GTQ",
    "GYD", "HKD", "HNL", "HTG", "HUF", "IDR", "ILS", "INR", "IQD", "IRR", "ISK", "JMD", "JOD",
    "JPY", "KES", "KGS", "KHR", "KMF", "KPW", "KRW", "KWD", "KYD", "KZT", "LAK", "LBP", "LKR",
    "LRD", "LSL", "LYD", "MAD", "MDL", "MGA", "MKD", "MMK", "MNT", "MOP", "MRU", "MUR", "MVR",
    "MWK", "MXN", "MYR", "MZN", "NAD", "NGN", "NIO", "NOK", "NPR", "NZD", "OMR", "PAB", "PEN",
    "PGK", "PHP", "PKR", "PLN", "PYG", "QAR", "RON", "RSD", "RUB", "RWF", "SAR", "SBD", "SCR",
    "SDG", "SEK", "SGD", "SHP", "SLE", "SOS", "SRD", "SSP", "STN", "SVC", "SYP", "SZL", "THB",
    "TJS", "TMT", "TND", "TOP", "TRY", "TTD", "TWD", "TZS", "UAH", "UGX", "USD", "UYU", "UZS",
    "VES", "VND", "VUV", "WST", "XAF", "XCD", "XCG", "XOF", "XPF", "YER", "ZAR", "ZMW", "ZWG",
];

/// The longest offer life the command line and the API accept, in days.
pub(crate) const MAX_DAYS: u64 = 365;
/// The most listing nodes per item a node may be set to use.
pub(crate) const MAX_K: usize = 20;

/// A currency code, upper-cased, if it is an active ISO 4217 code.
pub(crate) fn currency(code: &str) -> Result<String, String> {
    let up = code.trim().to_ascii_uppercase();
    if ISO_4217.contains(&up.as_str()) {
        Ok(up)
    } else {
        Err(format!(
            "currency {:?} is not an active ISO 4217 code (like EUR, USD, GBP, JPY)",
            code.chars().take(16).collect::<String>()
        ))
    }
}

/// An offer's life in days: 1 to [`MAX_DAYS`].
pub(crate) fn days(s: &str) -> Result<u64, String> {
    match s.trim().parse::<u64>() {
        Ok(d) if (1..=MAX_DAYS).contains(&d) => Ok(d),
        _ => Err(format!("--days {s:?}: an offer lives 1 to {MAX_DAYS} days")),
    }
}

/// An item description as typed: its canonical form must be non-empty and within the
/// 512-byte limit.
pub(crate) fn item(text: &str) -> Result<String, String> {
    candor_core::Item::new(text)
        .map(|i| i.description().to_string())
        .map_err(|e| format!("{e} (item descriptions are at most 512 bytes once canonical)"))
}

/// `k`, listing nodes per item: 1 to [`MAX_K`].
pub(crate) fn k(k: usize) -> Result<usize, CliError> {
    if (1..=MAX_K).contains(&k) {
        Ok(k)
    } else {
        Err(CliError::Usage(format!(
            "k = {k}: a node uses 1 to {MAX_K} listing nodes per item"
        )))
    }
}

/// Seconds between the node's own monitoring runs: 0 (off) or 1 to a week.
pub(crate) fn monitor_every(s: u64) -> Result<u64, CliError> {
    if s <= 7 * 86_400 {
        Ok(s)
    } else {
        Err(CliError::Usage(format!(
            "monitor_every = {s}: 0 (off) or at most 604800 seconds (a week)"
        )))
    }
}

/// `publish_to` in a config file: "all" (default) or "one".
pub(crate) fn publish_to(v: Option<&str>) -> Result<bool, CliError> {
    match v {
        None | Some("all") => Ok(true),
        Some("one") => Ok(false),
        Some(other) => Err(CliError::Usage(format!(
            "publish_to = {other:?}: it is \"all\" (every node of Δ(d)) or \"one\" (the closest)"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_edge_refuses_what_it_should_and_names_the_limit() {
        assert_eq!(currency("eur").unwrap(), "EUR");
        assert!(currency("XYZ").unwrap_err().contains("ISO 4217"));
        assert!(currency("EURO").is_err());
        assert!(days("0").unwrap_err().contains("1 to 365"));
        assert!(days("366").is_err());
        assert_eq!(days("30").unwrap(), 30);
        assert!(item(&"x".repeat(100_000)).unwrap_err().contains("512"));
        assert!(item("   ").is_err());
        assert!(matches!(k(0), Err(CliError::Usage(_))));
        assert!(matches!(k(21), Err(CliError::Usage(_))));
        assert!(publish_to(Some("bogus")).is_err());
        assert!(matches!(monitor_every(u64::MAX), Err(CliError::Usage(_))));
        assert_eq!(monitor_every(0).unwrap(), 0);
        assert!(!publish_to(Some("one")).unwrap());
    }
}

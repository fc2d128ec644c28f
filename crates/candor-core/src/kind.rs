//! The kinds of misbehaviour, as a type: what reports print (its stable name) and what tests
//! and callers compare (the variant), so a renamed or mistyped kind fails to compile.

use std::fmt;

/// The kind of a [`crate::Misbehaviour`] (and of the [`crate::Evidence`] it may carry).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Kind {
    /// `bad-certificate`.
    BadCertificate,
    /// `wrong-scheme`.
    WrongScheme,
    /// `bad-statement-signature`.
    BadStatementSignature,
    /// `stale-nonce`.
    StaleNonce,
    /// `wrong-device`.
    WrongDevice,
    /// `wrong-peer`.
    WrongPeer,
    /// `wrong-counter`.
    WrongCounter,
    /// `below-base`.
    BelowBase,
    /// `entry-mismatch`.
    EntryMismatch,
    /// `out-of-order`.
    OutOfOrder,
    /// `beyond-read`.
    BeyondRead,
    /// `missing-entry`.
    MissingEntry,
    /// `truncated`.
    Truncated,
    /// `bad-gap`.
    BadGap,
    /// `malformed`.
    Malformed,
    /// `bad-receipt`.
    BadReceipt,
    /// `read-below-receipt`.
    ReadBelowReceipt,
    /// `too-many-gaps`.
    TooManyGaps,
    /// `gap-too-wide`.
    GapTooWide,
    /// `bad-step`.
    BadStep,
    /// `bad-proof`.
    BadProof,
    /// `removed`.
    Removed,
    /// `other-certificate`.
    OtherCertificate,
    /// `refused`.
    Refused,
    /// `refused-after-read`.
    RefusedAfterRead,
    /// `no-answer`.
    NoAnswer,
    /// `unreachable`.
    Unreachable,
    /// `timeout`.
    Timeout,
    /// `over-budget`.
    OverBudget,
    /// `equivocation`.
    Equivocation,
    /// `gap-over-receipt`.
    GapOverReceipt,
    /// `gap-step-over-inc`.
    GapStepOverInc,
    /// `bad-entry`.
    BadEntry,
    /// `roots-do-not-chain`.
    RootsDoNotChain,
    /// `removal`.
    Removal,
    /// `clock-disagreement`.
    ClockDisagreement,
    /// `at-backwards`.
    AtBackwards,
    /// `overlong-expiry`.
    OverlongExpiry,
    /// `recent-boundary`.
    RecentBoundary,
    /// `unjustified-removal`.
    UnjustifiedRemoval,
}

impl Kind {
    /// Every kind.
    pub const ALL: [Kind; 40] = [
        Kind::BadCertificate,
        Kind::WrongScheme,
        Kind::BadStatementSignature,
        Kind::StaleNonce,
        Kind::WrongDevice,
        Kind::WrongPeer,
        Kind::WrongCounter,
        Kind::BelowBase,
        Kind::EntryMismatch,
        Kind::OutOfOrder,
        Kind::BeyondRead,
        Kind::MissingEntry,
        Kind::Truncated,
        Kind::BadGap,
        Kind::Malformed,
        Kind::BadReceipt,
        Kind::ReadBelowReceipt,
        Kind::TooManyGaps,
        Kind::GapTooWide,
        Kind::BadStep,
        Kind::BadProof,
        Kind::Removed,
        Kind::OtherCertificate,
        Kind::Refused,
        Kind::RefusedAfterRead,
        Kind::NoAnswer,
        Kind::Unreachable,
        Kind::Timeout,
        Kind::OverBudget,
        Kind::Equivocation,
        Kind::GapOverReceipt,
        Kind::GapStepOverInc,
        Kind::BadEntry,
        Kind::RootsDoNotChain,
        Kind::Removal,
        Kind::ClockDisagreement,
        Kind::AtBackwards,
        Kind::OverlongExpiry,
        Kind::RecentBoundary,
        Kind::UnjustifiedRemoval,
    ];

    /// Its stable name, as reports, the API and evidence files print it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Kind::BadCertificate => "bad-certificate",
            Kind::WrongScheme => "wrong-scheme",
            Kind::BadStatementSignature => "bad-statement-signature",
            Kind::StaleNonce => "stale-nonce",
            Kind::WrongDevice => "wrong-device",
            Kind::WrongPeer => "wrong-peer",
            Kind::WrongCounter => "wrong-counter",
            Kind::BelowBase => "below-base",
            Kind::EntryMismatch => "entry-mismatch",
            Kind::OutOfOrder => "out-of-order",
            Kind::BeyondRead => "beyond-read",
            Kind::MissingEntry => "missing-entry",
            Kind::Truncated => "truncated",
            Kind::BadGap => "bad-gap",
            Kind::Malformed => "malformed",
            Kind::BadReceipt => "bad-receipt",
            Kind::ReadBelowReceipt => "read-below-receipt",
            Kind::TooManyGaps => "too-many-gaps",
            Kind::GapTooWide => "gap-too-wide",
            Kind::BadStep => "bad-step",
            Kind::BadProof => "bad-proof",
            Kind::Removed => "removed",
            Kind::OtherCertificate => "other-certificate",
            Kind::Refused => "refused",
            Kind::RefusedAfterRead => "refused-after-read",
            Kind::NoAnswer => "no-answer",
            Kind::Unreachable => "unreachable",
            Kind::Timeout => "timeout",
            Kind::OverBudget => "over-budget",
            Kind::Equivocation => "equivocation",
            Kind::GapOverReceipt => "gap-over-receipt",
            Kind::GapStepOverInc => "gap-step-over-inc",
            Kind::BadEntry => "bad-entry",
            Kind::RootsDoNotChain => "roots-do-not-chain",
            Kind::Removal => "removal",
            Kind::ClockDisagreement => "clock-disagreement",
            Kind::AtBackwards => "at-backwards",
            Kind::OverlongExpiry => "overlong-expiry",
            Kind::RecentBoundary => "recent-boundary",
            Kind::UnjustifiedRemoval => "unjustified-removal",
        }
    }

    /// The kind a stable name names, if any.
    pub fn from_name(name: &str) -> Option<Kind> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// Whether misbehaviour of this kind carries evidence anyone can verify.
    pub const fn is_transferable(self) -> bool {
        matches!(
            self,
            Kind::Equivocation
                | Kind::GapOverReceipt
                | Kind::GapStepOverInc
                | Kind::BadEntry
                | Kind::RootsDoNotChain
                | Kind::Removal
                | Kind::AtBackwards
                | Kind::OverlongExpiry
                | Kind::UnjustifiedRemoval
        )
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_is_distinct_and_parses_back() {
        let names: std::collections::BTreeSet<&str> =
            Kind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(names.len(), Kind::ALL.len());
        for k in Kind::ALL {
            assert_eq!(Kind::from_name(k.as_str()), Some(k));
        }
        assert_eq!(Kind::from_name("no-such-kind"), None);
    }
}

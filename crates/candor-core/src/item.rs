//! Items: the canonical form of a description and the item key derived from it.
//!
//! Canonical form (pinned to the Unicode data of `icu_normalizer`/`icu_casemap` 2.4.0, whose
//! exact versions the workspace pins): Unicode NFC, full case folding, NFC again (folding can
//! denormalise), white space (Unicode `White_Space`) trimmed at both ends and every inner run
//! collapsed to one U+0020. Control characters are refused, and so is an empty result.
//! The item key is plain SHA-256 of the canonical form's UTF-8 bytes (DESIGN.md §1).

use crate::hash::{sha256, tags, Digest, TaggedHasher};
use icu_casemap::CaseMapper;
use icu_normalizer::ComposingNormalizerBorrowed;
use std::fmt;
use thiserror::Error;

/// The longest canonical description, in UTF-8 bytes.
pub const MAX_DESCRIPTION: usize = 512;

/// Why a description has no canonical form.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum DescriptionError {
    /// Nothing is left after trimming.
    #[error("the item description is empty")]
    Empty,
    /// Too long once canonical.
    #[error("the item description is {len} bytes once canonical, over the limit of {max}")]
    TooLong {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// It holds a control character.
    #[error("the item description holds control character U+{0:04X}")]
    ControlCharacter(u32),
    /// A description that should already be canonical is not.
    #[error("the item description is not in canonical form")]
    NotCanonical,
}

/// An item key: SHA-256 of a canonical description.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ItemKey(pub Digest);

impl ItemKey {
    /// The counter index in `0..c` this item uses: `u64_be(SHA-256("candor/v1/cid" ‖ d)[0..8]) mod c`.
    /// `c` must be at least 1 (a certificate always names at least one counter).
    pub fn counter_index(&self, c: u32) -> u32 {
        let h = TaggedHasher::new(tags::CID)
            .fixed(self.0.as_bytes())
            .finish();
        let mut first = [0u8; 8];
        first.copy_from_slice(&h.0[..8]);
        (u64::from_be_bytes(first) % u64::from(c.max(1))) as u32
    }
}

impl fmt::Debug for ItemKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ItemKey({:?})", self.0)
    }
}

impl fmt::Display for ItemKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// A description in canonical form, with its key.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Item {
    description: String,
    key: ItemKey,
}

impl fmt::Debug for Item {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Item({:?})", self.description)
    }
}

impl Item {
    /// Canonicalises `raw` and derives its key.
    pub fn new(raw: &str) -> Result<Self, DescriptionError> {
        let description = canonicalize(raw)?;
        let key = ItemKey(sha256(description.as_bytes()));
        Ok(Self { description, key })
    }

    /// Accepts `s` only if it is already canonical.
    pub fn from_canonical(s: &str) -> Result<Self, DescriptionError> {
        let item = Self::new(s)?;
        if item.description != s {
            return Err(DescriptionError::NotCanonical);
        }
        Ok(item)
    }

    /// The canonical description.
    pub fn description(&self) -> &str {
        &self.description
    }

    /// The item key.
    pub fn key(&self) -> ItemKey {
        self.key
    }
}

/// The canonical form of an item description (see the module docs).
pub fn canonicalize(raw: &str) -> Result<String, DescriptionError> {
    // Bound the work: a description more than a few times the limit cannot shrink below it
    // (folding and NFC change lengths by small factors; white space is the only thing that
    // collapses, and that is handled by the final length check).
    if raw.len() > MAX_DESCRIPTION * 16 {
        return Err(DescriptionError::TooLong {
            len: raw.len(),
            max: MAX_DESCRIPTION,
        });
    }
    let nfc = ComposingNormalizerBorrowed::new_nfc();
    let folded = CaseMapper::new()
        .fold_string(&nfc.normalize(raw))
        .into_owned();
    let normal = nfc.normalize(&folded);
    let mut out = String::with_capacity(normal.len());
    for word in normal.split(char::is_whitespace).filter(|w| !w.is_empty()) {
        if let Some(c) = word.chars().find(|c| c.is_control()) {
            return Err(DescriptionError::ControlCharacter(c as u32));
        }
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    if out.is_empty() {
        return Err(DescriptionError::Empty);
    }
    if out.len() > MAX_DESCRIPTION {
        return Err(DescriptionError::TooLong {
            len: out.len(),
            max: MAX_DESCRIPTION,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn trims_folds_and_collapses() {
        assert_eq!(
            canonicalize("  Raspberry   Pi\t5 \n 8GB ").unwrap(),
            "raspberry pi 5 8gb"
        );
    }

    #[test]
    fn nfc_makes_composed_and_decomposed_equal() {
        let composed = "Caf\u{e9} Cr\u{e8}me";
        let decomposed = "Cafe\u{301} Cre\u{300}me";
        assert_eq!(canonicalize(composed), canonicalize(decomposed));
        assert_eq!(canonicalize(composed).unwrap(), "caf\u{e9} cr\u{e8}me");
    }

    #[test]
    fn full_case_folding_not_just_lowercase() {
        // ß folds to "ss" under full folding; lowercasing would keep it.
        assert_eq!(
            canonicalize("STRASSE").unwrap(),
            canonicalize("Straße").unwrap()
        );
        // Final sigma and sigma fold to one form.
        assert_eq!(canonicalize("ΟΔΟΣ").unwrap(), canonicalize("οδος").unwrap());
    }

    #[test]
    fn unicode_white_space_collapses() {
        assert_eq!(canonicalize("a\u{3000}\u{a0}b").unwrap(), "a b");
    }

    #[test]
    fn empty_control_and_long_are_refused() {
        assert_eq!(canonicalize(" \t "), Err(DescriptionError::Empty));
        assert_eq!(
            canonicalize("a\u{7}b"),
            Err(DescriptionError::ControlCharacter(7))
        );
        assert!(matches!(
            canonicalize(&"x".repeat(MAX_DESCRIPTION + 1)),
            Err(DescriptionError::TooLong { .. })
        ));
    }

    #[test]
    fn key_is_sha256_of_canonical_bytes() {
        let item = Item::new(" Hello  World ").unwrap();
        assert_eq!(item.key().0, sha256(b"hello world"));
        assert!(Item::from_canonical("hello world").is_ok());
        assert!(Item::from_canonical("Hello world").is_err());
    }

    #[test]
    fn counter_index_is_in_range_and_spreads() {
        let mut seen = [0u32; 8];
        for i in 0..800 {
            let k = Item::new(&format!("item {i}")).unwrap().key();
            let c = k.counter_index(8);
            assert!(c < 8);
            seen[c as usize] += 1;
        }
        assert!(seen.iter().all(|&n| n > 50), "{seen:?}");
        assert_eq!(Item::new("x").unwrap().key().counter_index(1), 0);
    }

    /// The bytes ARCHITECTURE.md documents for cid(d): SHA-256(0x0d ‖ "candor/v1/cid" ‖ d),
    /// its first 8 bytes big-endian, mod C.
    #[test]
    fn cid_hashes_the_documented_bytes() {
        use sha2::Digest as _;
        let key = ItemKey(crate::hash::Digest([0x11; 32]));
        let mut input = vec![13u8];
        input.extend_from_slice(b"candor/v1/cid");
        input.extend_from_slice(&[0x11; 32]);
        assert_eq!(input.len(), 46);
        let h = sha2::Sha256::digest(&input);
        let first = u64::from_be_bytes(h[..8].try_into().unwrap());
        for c in [1u32, 7, 64, 1000, 4096] {
            assert_eq!(u64::from(key.counter_index(c)), first % u64::from(c));
        }
    }

    proptest! {
        #[test]
        fn canonical_form_is_idempotent(s in "\\PC{0,40}") {
            if let Ok(c) = canonicalize(&s) {
                prop_assert_eq!(canonicalize(&c).unwrap(), c.clone());
                prop_assert!(!c.starts_with(' ') && !c.ends_with(' ') && !c.contains("  "));
            }
        }
    }
}

//! Principal display names: what people see and type, normalised so that names that look the same
//! are the same name.
//!
//! A [`DisplayName`] keeps the caller's text in NFC with the ends trimmed, for display. Its
//! [`DisplayName::key`] is what uniqueness and the reserved names are checked against: NFKC, case
//! folded, whitespace collapsed, and reduced to Unicode's confusable skeleton (UTS #39), so "Root",
//! " root ", "ROOT" and "rооt" (with Cyrillic `о`) all have the key of "root". Invisible and
//! direction-changing characters are refused outright.

use serde::{Deserialize, Serialize};
use unicode_normalization::UnicodeNormalization;

use crate::error::ArcaError;
use crate::limits::DISPLAY_NAME_CHARS_MAX;

/// Names nobody may take: Arca's own principals, and words an operator would read as one of them.
pub const RESERVED_DISPLAY_NAMES: &[&str] =
    &["root", "system", "node", "arca", "admin", "administrator", "anonymous", "everyone"];

/// A validated display name. `Debug` shows the name: display names are not secret.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct DisplayName {
    display: String,
    key: String,
}

fn refuse(field: &str, why: impl std::fmt::Display) -> ArcaError {
    ArcaError::bad_parameter(field, format!("{field} is not a valid display name: {why}"))
}

/// Punctuation a display name may hold besides letters, digits and spaces.
const PUNCTUATION: &str = "-_.@()'&,+:/#";

fn allowed(c: char) -> bool {
    c == ' ' || c.is_alphanumeric() || PUNCTUATION.contains(c) || is_combining_mark(c)
}

/// Combining marks carry accents and vowel signs (Devanagari, Thai, ...) that NFC cannot fold into
/// the letter before them. Approximated by the combining-mark blocks; every other mark is refused.
fn is_combining_mark(c: char) -> bool {
    matches!(c as u32, 0x0300..=0x036F | 0x0483..=0x0489 | 0x0591..=0x05BD | 0x0610..=0x061A | 0x064B..=0x065F
        | 0x0900..=0x0903 | 0x093A..=0x094F | 0x0951..=0x0957 | 0x0962..=0x0963 | 0x0E31 | 0x0E34..=0x0E3A
        | 0x0E47..=0x0E4E | 0x1AB0..=0x1AFF | 0x1DC0..=0x1DFF | 0x20D0..=0x20FF | 0x3099..=0x309A | 0xFE20..=0xFE2F)
}

/// The comparison key of a name: NFKC, case folded, whitespace collapsed, confusable skeleton. Two
/// names with one key are one name (role names are compared by it too).
pub fn comparison_key(name: &str) -> String {
    let folded: String = caseless::default_case_fold_str(&name.nfkc().collect::<String>()).nfkc().collect();
    let collapsed = folded.split_whitespace().collect::<Vec<_>>().join(" ");
    unicode_security::skeleton(&collapsed).collect::<String>().nfkc().collect()
}

/// Refuses a name holding anything but letters, digits, spaces, combining marks and a little
/// punctuation: no control, invisible or direction-changing characters.
pub fn check_characters(field: &str, name: &str) -> Result<(), ArcaError> {
    match name.chars().find(|c| !allowed(*c)) {
        Some(bad) => Err(refuse(
            field,
            format_args!(
                "character U+{:04X} is not allowed; use letters, digits, spaces and {PUNCTUATION}",
                bad as u32
            ),
        )),
        None => Ok(()),
    }
}

impl DisplayName {
    /// Validates `raw` as the display name in `field`: 1-[`DISPLAY_NAME_CHARS_MAX`] characters after
    /// trimming, letters, digits, spaces and a little punctuation only, not a reserved name.
    pub fn parse(field: &str, raw: &str) -> Result<Self, ArcaError> {
        let display: String = raw.trim().nfc().collect();
        let chars = display.chars().count();
        if chars == 0 || chars > DISPLAY_NAME_CHARS_MAX {
            return Err(refuse(
                field,
                format_args!("it must have 1-{DISPLAY_NAME_CHARS_MAX} characters, it has {chars}"),
            ));
        }
        check_characters(field, &display)?;
        let key = comparison_key(&display);
        if RESERVED_DISPLAY_NAMES.iter().any(|r| comparison_key(r) == key) {
            return Err(refuse(field, "it is reserved (or looks like a reserved name)"));
        }
        Ok(Self { display, key })
    }

    /// The name as its owner wrote it (NFC, trimmed).
    pub fn as_str(&self) -> &str {
        &self.display
    }

    /// The form names are compared in: two names with one key are one name.
    pub fn key(&self) -> &str {
        &self.key
    }
}

impl std::fmt::Display for DisplayName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.display)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(raw: &str) -> String {
        DisplayName::parse("name", raw).unwrap().key().to_owned()
    }

    #[test]
    fn names_that_look_alike_share_a_key() {
        assert_eq!(key("Payments App"), key("  payments   APP "));
        assert_eq!(key("Café"), key("Cafe\u{301}"), "NFC and NFD spellings");
        assert_eq!(key("ﬁnance"), key("finance"), "compatibility ligature");
        assert_eq!(key("Straße"), key("STRASSE"), "full case folding");
        assert_eq!(key("paypal"), key("pаypаl"), "Cyrillic а");
        assert_ne!(key("payments-a"), key("payments-b"));
        assert_eq!(DisplayName::parse("name", "  Café ").unwrap().as_str(), "Café");
    }

    #[test]
    fn reserved_names_are_refused_in_every_disguise() {
        for raw in ["root", "Root", " ROOT ", "rооt", "Ｒoot", "system", "Node", "ADMIN"] {
            let e = DisplayName::parse("display_name", raw).unwrap_err();
            assert!(e.message.contains("reserved"), "{raw}: {}", e.message);
        }
        assert!(DisplayName::parse("display_name", "root-ca-renewer").is_ok());
    }

    #[test]
    fn invisible_and_direction_changing_characters_are_refused() {
        for raw in ["pay\u{200B}ments", "pay\u{202E}stnemy", "a\u{0000}b", "tab\there", "new\nline", "\u{FEFF}bom", ""]
        {
            assert!(DisplayName::parse("name", raw).is_err(), "{raw:?}");
        }
    }

    #[test]
    fn length_at_the_limit_and_one_past_it() {
        assert!(DisplayName::parse("name", &"a".repeat(DISPLAY_NAME_CHARS_MAX)).is_ok());
        assert!(DisplayName::parse("name", &"a".repeat(DISPLAY_NAME_CHARS_MAX + 1)).is_err());
        assert!(
            DisplayName::parse("name", &format!("  {}  ", "a".repeat(DISPLAY_NAME_CHARS_MAX))).is_ok(),
            "trimmed first"
        );
    }
}

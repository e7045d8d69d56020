//! Validated names. A value of these types has passed Azure's rules; constructing one is the only check.
//!
//! Names are case-insensitive: [`VaultName::canonical`] and [`ObjectName::canonical`] give the lowercase
//! form used for lookups, while [`ObjectName::as_str`] keeps the caller's casing for display.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{ArcaError, ErrorCode};
use crate::limits::*;

/// A vault name: 3–24 of `[0-9a-zA-Z-]`, starting with a letter, ending with a letter or digit, no `--`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct VaultName(String);

impl VaultName {
    pub fn parse(raw: &str) -> Result<Self, ArcaError> {
        let fail = |why: &str| {
            Err(ArcaError {
                code: ErrorCode::VaultNameNotValid,
                message: format!(
                    "vault name is not valid: {why}; use 3-24 letters, digits and single hyphens, starting with a letter"
                ),
                field: Some("vault".to_owned()),
            })
        };
        let chars = raw.chars().count();
        if !(VAULT_NAME_CHARS_MIN..=VAULT_NAME_CHARS_MAX).contains(&chars) {
            return fail(&format!("it has {chars} characters"));
        }
        if !raw.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return fail("it contains a character other than a letter, digit or hyphen");
        }
        if !raw.starts_with(|c: char| c.is_ascii_alphabetic()) {
            return fail("it does not start with a letter");
        }
        if raw.ends_with('-') {
            return fail("it ends with a hyphen");
        }
        if raw.contains("--") {
            return fail("it contains two hyphens in a row");
        }
        Ok(Self(raw.to_ascii_lowercase()))
    }

    /// Vault names are stored lowercase, so the canonical form and the display form are the same.
    pub fn canonical(&self) -> &str {
        &self.0
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for VaultName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// An object (secret, key, certificate) name: `^[0-9a-zA-Z-]{1,127}$`, case-insensitive.
///
/// `Debug` prints `<name>`: object names are sensitive and must not reach logs.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectName(String);

impl ObjectName {
    pub fn parse(field: &str, raw: &str) -> Result<Self, ArcaError> {
        let chars = raw.chars().count();
        if chars == 0 || chars > OBJECT_NAME_CHARS_MAX {
            return Err(ArcaError::bad_parameter(
                field,
                format!("{field} must have 1-{OBJECT_NAME_CHARS_MAX} characters, it has {chars}"),
            ));
        }
        if !raw.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Err(ArcaError::bad_parameter(
                field,
                format!("{field} may contain only letters, digits and hyphens (^[0-9a-zA-Z-]+$)"),
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    /// The lowercase form that identifies the object.
    pub fn canonical(&self) -> String {
        self.0.to_ascii_lowercase()
    }

    /// The name with the casing its creator used.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for ObjectName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<name>")
    }
}

/// A region name, the label of a node's failure domain (`arcad serve --region`): 1–32 of `[a-z0-9-]`,
/// starting with a letter, not ending with a hyphen; uppercase is taken as lowercase.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RegionName(String);

impl RegionName {
    /// The region of a node started without `--region`.
    pub const DEFAULT: &'static str = "default";

    pub fn parse(raw: &str) -> Result<Self, ArcaError> {
        let lower = raw.to_ascii_lowercase();
        let ok = (1..=REGION_NAME_CHARS_MAX).contains(&lower.len())
            && lower.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && lower.starts_with(|c: char| c.is_ascii_lowercase())
            && !lower.ends_with('-');
        if ok {
            Ok(Self(lower))
        } else {
            Err(ArcaError::bad_parameter(
                "region",
                format!(
                    "region must be 1-{REGION_NAME_CHARS_MAX} letters, digits and hyphens, starting with a letter and not ending with a hyphen"
                ),
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for RegionName {
    fn default() -> Self {
        Self(Self::DEFAULT.to_owned())
    }
}

impl std::fmt::Display for RegionName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A version id: 32 lowercase hex characters (128 random bits, minted before the Raft proposal).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct VersionId(String);

impl VersionId {
    pub const HEX_CHARS: usize = 32;

    pub fn parse(raw: &str) -> Result<Self, ArcaError> {
        if raw.len() != Self::HEX_CHARS || !raw.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(ArcaError::bad_parameter(
                "version",
                format!("version must be {} hexadecimal characters, or empty for the latest", Self::HEX_CHARS),
            ));
        }
        Ok(Self(raw.to_ascii_lowercase()))
    }

    /// A request's version field: empty means the latest (`None`), anything else must be a version id.
    pub fn parse_optional(raw: &str) -> Result<Option<Self>, ArcaError> {
        if raw.is_empty() {
            Ok(None)
        } else {
            Self::parse(raw).map(Some)
        }
    }

    /// Builds a version id from 16 random bytes.
    pub fn from_bytes(bytes: [u8; 16]) -> Self {
        let mut out = String::with_capacity(Self::HEX_CHARS);
        for b in bytes {
            out.push_str(&format!("{b:02x}"));
        }
        Self(out)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for VersionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Checks a tag set against Azure's limits: at most 15 tags, names non-empty, names and values ≤256 chars.
pub fn validate_tags(tags: &BTreeMap<String, String>) -> Result<(), ArcaError> {
    if tags.len() > TAGS_COUNT_MAX {
        return Err(ArcaError::bad_parameter(
            "tags",
            format!("at most {TAGS_COUNT_MAX} tags are allowed, the request has {}", tags.len()),
        ));
    }
    for (name, value) in tags {
        if name.is_empty() || name.chars().count() > TAG_CHARS_MAX {
            return Err(ArcaError::bad_parameter("tags", format!("tag names must have 1-{TAG_CHARS_MAX} characters")));
        }
        if value.chars().count() > TAG_CHARS_MAX {
            return Err(ArcaError::bad_parameter(
                "tags",
                format!("tag values may have at most {TAG_CHARS_MAX} characters"),
            ));
        }
    }
    Ok(())
}

/// Checks a content type: at most 255 characters.
pub fn validate_content_type(content_type: &str) -> Result<(), ArcaError> {
    let chars = content_type.chars().count();
    if chars > CONTENT_TYPE_CHARS_MAX {
        return Err(ArcaError::bad_parameter(
            "content_type",
            format!("content_type may have at most {CONTENT_TYPE_CHARS_MAX} characters, it has {chars}"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vault_names_follow_azure_rules() {
        assert!(VaultName::parse("abc").is_ok());
        assert!(VaultName::parse(&"a".repeat(24)).is_ok());
        assert!(VaultName::parse(&"a".repeat(25)).is_err());
        assert!(VaultName::parse("ab").is_err());
        assert!(VaultName::parse("1abc").is_err());
        assert!(VaultName::parse("abc-").is_err());
        assert!(VaultName::parse("a--bc").is_err());
        assert!(VaultName::parse("a_bc").is_err());
        assert_eq!(VaultName::parse("My-Vault1").unwrap().as_str(), "my-vault1");
        assert_eq!(VaultName::parse("a_bc").unwrap_err().code, ErrorCode::VaultNameNotValid);
    }

    #[test]
    fn object_names_limit_and_limit_plus_one() {
        assert!(ObjectName::parse("name", &"a".repeat(127)).is_ok());
        assert!(ObjectName::parse("name", &"a".repeat(128)).is_err());
        assert!(ObjectName::parse("name", "").is_err());
        assert!(ObjectName::parse("name", "has space").is_err());
        assert!(ObjectName::parse("name", "ünïcode").is_err());
        let n = ObjectName::parse("name", "DbPassword").unwrap();
        assert_eq!(n.canonical(), "dbpassword");
        assert_eq!(format!("{n:?}"), "<name>");
    }

    #[test]
    fn region_names_limit_and_limit_plus_one() {
        assert_eq!(RegionName::parse(&"a".repeat(32)).unwrap().as_str().len(), 32);
        assert!(RegionName::parse(&"a".repeat(33)).is_err());
        assert!(RegionName::parse("").is_err());
        assert!(RegionName::parse("1west").is_err());
        assert!(RegionName::parse("west-").is_err());
        assert!(RegionName::parse("we st").is_err());
        assert!(RegionName::parse("wëst").is_err());
        assert_eq!(RegionName::parse("EU-West-2").unwrap().as_str(), "eu-west-2");
        assert_eq!(RegionName::parse("we st").unwrap_err().code, ErrorCode::BadParameter);
        assert_eq!(RegionName::default().as_str(), RegionName::DEFAULT);
    }

    #[test]
    fn version_ids_are_32_hex() {
        assert!(VersionId::parse(&"a".repeat(32)).is_ok());
        assert!(VersionId::parse(&"a".repeat(31)).is_err());
        assert!(VersionId::parse(&"a".repeat(33)).is_err());
        assert!(VersionId::parse(&"g".repeat(32)).is_err());
        assert_eq!(VersionId::parse(&"A".repeat(32)).unwrap().as_str(), "a".repeat(32));
        assert_eq!(VersionId::from_bytes([0xab; 16]).as_str(), "ab".repeat(16));
        assert_eq!(VersionId::parse_optional("").unwrap(), None);
        assert!(VersionId::parse_optional(&"a".repeat(32)).unwrap().is_some());
        assert!(VersionId::parse_optional("latest").is_err());
    }

    #[test]
    fn tags_limit_and_limit_plus_one() {
        let mut tags: BTreeMap<String, String> = (0..15).map(|i| (format!("t{i}"), "v".repeat(256))).collect();
        assert!(validate_tags(&tags).is_ok());
        tags.insert("t15".into(), "v".into());
        assert!(validate_tags(&tags).is_err());
        let long_name: BTreeMap<String, String> = [("n".repeat(257), String::new())].into();
        assert!(validate_tags(&long_name).is_err());
        let long_value: BTreeMap<String, String> = [("n".into(), "v".repeat(257))].into();
        assert!(validate_tags(&long_value).is_err());
    }

    #[test]
    fn content_type_limit_and_limit_plus_one() {
        assert!(validate_content_type(&"c".repeat(255)).is_ok());
        assert!(validate_content_type(&"c".repeat(256)).is_err());
    }
}

//! A vault's network rules, as Azure's `networkAcls`: a default action and a list of IP ranges
//! allowed whatever the default. They decide which calling addresses may use a vault's contents
//! (secrets, keys, cryptography); managing the vault itself is not subject to them, so an
//! administrator who locks every address out can still change the rules.

use std::net::IpAddr;

use arca_types::limits::NETWORK_IP_RULES_MAX;
use arca_types::ArcaError;
use serde::{Deserialize, Serialize};

/// What happens to an address no rule names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DefaultAction {
    Allow,
    Deny,
}

/// One allowed range: an IPv4 or IPv6 network, its host bits zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct IpRule {
    network: IpAddr,
    prefix: u8,
}

fn bad(field: &str, message: String) -> ArcaError {
    ArcaError::bad_parameter(field, message)
}

/// The IPv4 address an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) stands for, so one caller is
/// judged the same whichever form its address arrives in.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn bits(ip: IpAddr) -> (u128, u8) {
    match ip {
        IpAddr::V4(v4) => (u128::from(u32::from(v4)), 32),
        IpAddr::V6(v6) => (u128::from(v6), 128),
    }
}

/// The network mask of a `prefix`-bit range in a `width`-bit address.
fn mask(width: u8, prefix: u8) -> u128 {
    if prefix == 0 {
        return 0;
    }
    let full = if width == 32 { u128::from(u32::MAX) } else { u128::MAX };
    let host = width - prefix;
    (full >> host) << host
}

impl IpRule {
    /// Parses `a.b.c.d`, `a.b.c.d/n`, an IPv6 address or `ipv6/n`. A range whose host bits are not
    /// zero is refused rather than widened or narrowed silently; an IPv4-mapped IPv6 range is taken
    /// as the IPv4 range it names.
    pub fn parse(field: &str, raw: &str) -> Result<Self, ArcaError> {
        let shown: String = raw.chars().take(64).collect();
        let (addr, prefix) = match raw.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (raw, None),
        };
        let ip: IpAddr = addr.parse().map_err(|_| {
            bad(field, format!("'{shown}' is not an IP address or range; use a.b.c.d, a.b.c.d/n or an IPv6 range"))
        })?;
        let mapped = matches!(ip, IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some());
        let (_, width) = bits(ip);
        let mut prefix = match prefix {
            None => width,
            Some(p) => {
                let n: u8 = p
                    .parse()
                    .ok()
                    .filter(|n| *n <= width && p.bytes().all(|b| b.is_ascii_digit()) && p.len() <= 3)
                    .ok_or_else(|| bad(field, format!("'{shown}' has a prefix length that is not 0-{width}")))?;
                n
            }
        };
        let ip = if mapped {
            if prefix < 96 {
                return Err(bad(field, format!("'{shown}' mixes IPv4-mapped and other IPv6 addresses")));
            }
            prefix -= 96;
            canonical(ip)
        } else {
            ip
        };
        let (value, width) = bits(ip);
        let network = value & mask(width, prefix);
        if network != value {
            return Err(bad(
                field,
                format!("'{shown}' has host bits set; the range starting there is {}", Self::show(ip, network, prefix)),
            ));
        }
        Ok(Self { network: ip, prefix })
    }

    fn show(like: IpAddr, network: u128, prefix: u8) -> String {
        let ip = match like {
            IpAddr::V4(_) => IpAddr::V4(std::net::Ipv4Addr::from(network as u32)),
            IpAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::from(network)),
        };
        format!("{ip}/{prefix}")
    }

    /// Whether `ip` (in either form, for IPv4) lies in the range.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        if ip.is_ipv4() != self.network.is_ipv4() {
            return false;
        }
        let (value, width) = bits(ip);
        let (network, _) = bits(self.network);
        value & mask(width, self.prefix) == network
    }
}

impl std::fmt::Display for IpRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// A vault's network rules. Stored as a versioned record of its own beside the vault.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkRules {
    pub default_action: DefaultAction,
    pub ip_rules: Vec<IpRule>,
}

impl Default for NetworkRules {
    /// A vault without rules takes calls from any address, as an Azure vault does.
    fn default() -> Self {
        Self { default_action: DefaultAction::Allow, ip_rules: Vec::new() }
    }
}

impl NetworkRules {
    /// Builds rules from what a request sent: at most [`NETWORK_IP_RULES_MAX`] ranges, each valid;
    /// duplicates are kept once and the list is sorted, so equal rules compare equal.
    pub fn parse(default_action: DefaultAction, raw: &[String]) -> Result<Self, ArcaError> {
        if raw.len() > NETWORK_IP_RULES_MAX {
            return Err(bad(
                "ip_rules",
                format!("a vault may have at most {NETWORK_IP_RULES_MAX} IP rules; this request has {}", raw.len()),
            ));
        }
        let mut ip_rules = raw.iter().map(|r| IpRule::parse("ip_rules", r)).collect::<Result<Vec<_>, _>>()?;
        ip_rules.sort();
        ip_rules.dedup();
        Ok(Self { default_action, ip_rules })
    }

    /// Whether a call from `caller` may use the vault's contents. A caller whose address is unknown
    /// is judged by the default action alone.
    pub fn allows(&self, caller: Option<IpAddr>) -> bool {
        match self.default_action {
            DefaultAction::Allow => true,
            DefaultAction::Deny => caller.is_some_and(|ip| self.ip_rules.iter().any(|r| r.contains(ip))),
        }
    }
}

/// The stored form: a new field means a new variant, so records already written keep decoding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum NetworkRulesRecord {
    V1(NetworkRules),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn rule(s: &str) -> IpRule {
        IpRule::parse("ip_rules", s).unwrap()
    }

    #[test]
    fn ranges_contain_what_they_name_and_nothing_else() {
        assert!(rule("10.0.0.0/8").contains(ip("10.255.1.2")));
        assert!(!rule("10.0.0.0/8").contains(ip("11.0.0.0")));
        assert!(rule("192.168.1.7").contains(ip("192.168.1.7")));
        assert!(!rule("192.168.1.7").contains(ip("192.168.1.8")));
        assert!(rule("0.0.0.0/0").contains(ip("203.0.113.9")));
        assert!(!rule("0.0.0.0/0").contains(ip("2001:db8::1")), "an IPv4 range holds no IPv6 address");
        assert!(rule("2001:db8::/32").contains(ip("2001:db8:ffff::1")));
        assert!(!rule("2001:db8::/32").contains(ip("2001:db9::1")));
        assert!(rule("::/0").contains(ip("::1")));
        assert!(rule("2001:db8::1/128").contains(ip("2001:db8::1")));
        assert!(rule("127.0.0.0/31").contains(ip("127.0.0.1")) && !rule("127.0.0.0/31").contains(ip("127.0.0.2")));
    }

    #[test]
    fn an_ipv4_caller_is_judged_the_same_in_its_mapped_ipv6_form() {
        assert!(rule("10.0.0.0/8").contains(ip("::ffff:10.1.2.3")));
        assert!(!rule("10.0.0.0/8").contains(ip("::ffff:11.1.2.3")));
        let mapped = rule("::ffff:10.0.0.0/104");
        assert_eq!(mapped, rule("10.0.0.0/8"));
        assert_eq!(mapped.to_string(), "10.0.0.0/8");
        assert!(IpRule::parse("f", "::ffff:0.0.0.0/95").is_err());
    }

    #[test]
    fn malformed_ranges_are_refused_with_what_to_write_instead() {
        for bad in [
            "",
            "10.0.0",
            "10.0.0.0/33",
            "2001:db8::/129",
            "10.0.0.0/",
            "10.0.0.0/+8",
            "10.0.0.0/08a",
            " 10.0.0.1",
            "fe80::1%eth0",
            "localhost",
            "10.0.0.0/8/8",
        ] {
            let e = IpRule::parse("ip_rules", bad).unwrap_err();
            assert_eq!(e.code, arca_types::ErrorCode::BadParameter, "{bad}");
        }
        let e = IpRule::parse("ip_rules", "10.1.2.3/8").unwrap_err();
        assert!(e.message.contains("10.0.0.0/8"), "{}", e.message);
        let e = IpRule::parse("ip_rules", "2001:db8::1/32").unwrap_err();
        assert!(e.message.contains("2001:db8::/32"), "{}", e.message);
    }

    #[test]
    fn deny_by_default_lets_in_only_the_ranges_named() {
        let rules = NetworkRules::parse(DefaultAction::Deny, &["10.0.0.0/8".into(), "2001:db8::/32".into()]).unwrap();
        assert!(rules.allows(Some(ip("10.1.1.1"))));
        assert!(rules.allows(Some(ip("::ffff:10.1.1.1"))));
        assert!(rules.allows(Some(ip("2001:db8::5"))));
        assert!(!rules.allows(Some(ip("127.0.0.1"))));
        assert!(!rules.allows(None), "an unknown address is refused under deny");
        assert!(NetworkRules::default().allows(None));
        assert!(NetworkRules::parse(DefaultAction::Allow, &[]).unwrap().allows(Some(ip("203.0.113.1"))));
        let nobody = NetworkRules::parse(DefaultAction::Deny, &[]).unwrap();
        assert!(!nobody.allows(Some(ip("127.0.0.1"))));
    }

    #[test]
    fn the_rule_count_is_limited_at_its_limit_and_not_one_more() {
        let at: Vec<String> = (0..NETWORK_IP_RULES_MAX).map(|i| format!("10.{}.{}.0/24", i / 256, i % 256)).collect();
        assert_eq!(NetworkRules::parse(DefaultAction::Deny, &at).unwrap().ip_rules.len(), NETWORK_IP_RULES_MAX);
        let mut over = at.clone();
        over.push("192.168.0.0/16".into());
        let e = NetworkRules::parse(DefaultAction::Deny, &over).unwrap_err();
        assert!(e.message.contains(&NETWORK_IP_RULES_MAX.to_string()), "{}", e.message);
        let twice = NetworkRules::parse(DefaultAction::Deny, &["10.0.0.0/8".into(), "10.0.0.0/8".into()]).unwrap();
        assert_eq!(twice.ip_rules.len(), 1);
    }
}

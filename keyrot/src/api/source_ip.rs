//! Source IP checks: the address API Gateway saw (`requestContext.identity.sourceIp`, never a
//! header) against the global allowlist and the client's own CIDRs.

use ipnetwork::IpNetwork;
use std::net::IpAddr;
use std::str::FromStr;

/// Parses API Gateway's source IP, treating an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`)
/// as the IPv4 address it carries.
pub fn parse_source_ip(value: &str) -> Option<IpAddr> {
    let address = IpAddr::from_str(value.trim()).ok()?;
    Some(match address {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    })
}

/// A list of CIDRs, IPv4 and IPv6.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CidrList(Vec<IpNetwork>);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{value:?} is not a CIDR (e.g. 203.0.113.0/24 or 2001:db8::/64)")]
pub struct InvalidCidr {
    pub value: String,
}

impl CidrList {
    /// Parses a comma-separated list; blank entries are ignored. A bare address counts as a
    /// single-host network.
    pub fn parse_comma_separated(text: &str) -> Result<Self, InvalidCidr> {
        Self::parse_all(text.split(','))
    }

    pub fn parse_all<'a>(items: impl IntoIterator<Item = &'a str>) -> Result<Self, InvalidCidr> {
        items
            .into_iter()
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(|item| {
                IpNetwork::from_str(item).map_err(|_| InvalidCidr {
                    value: item.to_owned(),
                })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Self)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn contains(&self, address: IpAddr) -> bool {
        self.0.iter().any(|network| network.contains(address))
    }
}

/// The client may call from `address` if the global allowlist contains it and, when the
/// client has CIDRs of its own, so do they (the intersection of both lists).
pub fn is_allowed(global: &CidrList, client: &CidrList, address: IpAddr) -> bool {
    global.contains(address) && (client.is_empty() || client.contains(address))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(text: &str) -> CidrList {
        CidrList::parse_comma_separated(text).expect("valid list")
    }

    fn ip(text: &str) -> IpAddr {
        parse_source_ip(text).expect("valid address")
    }

    #[test]
    fn ipv4_mapped_ipv6_counts_as_ipv4() {
        assert_eq!(ip("::ffff:203.0.113.7"), ip("203.0.113.7"));
        assert!(list("203.0.113.0/24").contains(ip("::ffff:203.0.113.7")));
        assert!(!list("203.0.113.0/24").contains(ip("::ffff:198.51.100.7")));
    }

    #[test]
    fn ipv6_networks_bound_their_prefix() {
        let net = list("2001:db8:1:2::/64");
        assert!(net.contains(ip("2001:db8:1:2:ffff::1")));
        assert!(!net.contains(ip("2001:db8:1:3::1")));
        assert!(!net.contains(ip("203.0.113.7")));
    }

    #[test]
    fn client_cidrs_narrow_the_global_list() {
        let global = list("10.0.0.0/8, 2001:db8::/32");
        let client = list("10.1.0.0/16");
        assert!(is_allowed(&global, &client, ip("10.1.2.3")));
        assert!(!is_allowed(&global, &client, ip("10.2.0.1")));
        assert!(
            !is_allowed(&global, &list("192.0.2.0/24"), ip("192.0.2.1")),
            "outside the global list"
        );
        assert!(is_allowed(&global, &CidrList::default(), ip("10.2.0.1")));
    }

    #[test]
    fn rejects_garbage() {
        assert!(CidrList::parse_comma_separated("10.0.0.0/8,banana").is_err());
        assert!(CidrList::parse_comma_separated("10.0.0.0/33").is_err());
        assert!(parse_source_ip("10.0.0.1, 10.0.0.2").is_none());
        assert!(parse_source_ip("").is_none());
    }
}

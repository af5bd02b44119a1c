//! Where Herald may send a customer's HTTP request (webhooks today, vendors' base URLs
//! next): public addresses only, unless the operator allows a range.
//!
//! A target is checked twice: at intake when its host is a literal address (in any
//! spelling the URL parser accepts: `2130706433`, `0x7f.1`, `[::ffff:127.0.0.1]`) or a
//! `localhost` name, and at send time after DNS resolution, by the HTTP client's
//! resolver, so the connection goes to the very address that was checked (a DNS
//! answer that changes between the check and the connect cannot swap it).

use ipnet::IpNet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, OnceLock};

/// The environment variable with the operator's allow list (comma-separated CIDRs).
pub const ALLOW_ENV: &str = "HERALD_WEBHOOK_ALLOW_NETWORKS";

/// The one reason a refused target gives (it says nothing of what was resolved).
pub const REFUSED: &str = "the target address is not allowed";

/// A refused target, as an error the HTTP client carries up to the sender.
#[derive(Debug, thiserror::Error)]
#[error("{REFUSED}")]
pub struct Refused;

/// Public addresses, plus the ranges the operator allowed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NetworkPolicy {
    allowed: Vec<IpNet>,
}

impl NetworkPolicy {
    /// Parses `10.0.0.0/8, 127.0.0.0/8`; a bare address is a one-address range.
    pub fn parse(list: &str) -> Result<Self, String> {
        let mut allowed = Vec::new();
        for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let net = item
                .parse::<IpNet>()
                .or_else(|_| item.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| format!("'{item}' is not a CIDR range such as 10.0.0.0/8"))?;
            allowed.push(net);
        }
        Ok(Self { allowed })
    }

    /// The policy `HERALD_WEBHOOK_ALLOW_NETWORKS` describes (public only when unset).
    pub fn from_env() -> Result<Self, String> {
        Self::parse(&std::env::var(ALLOW_ENV).unwrap_or_default())
            .map_err(|e| format!("{ALLOW_ENV}: {e}"))
    }

    pub fn permits(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        is_public(ip) || self.allowed.iter().any(|net| net.contains(&ip))
    }

    /// The intake check of a URL: a literal address must be permitted, and a
    /// `localhost` name is refused unless loopback is allowed. Other names are checked
    /// when they are resolved.
    pub fn check_url(&self, url: &url::Url) -> Result<(), Refused> {
        match url.host() {
            Some(url::Host::Ipv4(ip)) if !self.permits(ip.into()) => Err(Refused),
            Some(url::Host::Ipv6(ip)) if !self.permits(ip.into()) => Err(Refused),
            Some(url::Host::Domain(name)) if is_localhost(name) => {
                if self.permits(Ipv4Addr::LOCALHOST.into()) { Ok(()) } else { Err(Refused) }
            }
            _ => Ok(()),
        }
    }
}

fn is_localhost(name: &str) -> bool {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    name == "localhost" || name.ends_with(".localhost")
}

/// Whether an address is on the public internet: not private, loopback, link-local,
/// shared (CGNAT), multicast, unspecified, broadcast, documentation, benchmarking or
/// reserved, and not one of those hidden in an IPv6 form (mapped, NAT64, 6to4).
pub fn is_public(ip: IpAddr) -> bool {
    match ip.to_canonical() {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_multicast()
        || ip.is_broadcast()
        || ip.is_documentation()
        || a == 0                                  // "this network", 0.0.0.0 included
        || (a == 100 && (64..128).contains(&b))    // shared address space (CGNAT)
        || (a == 192 && b == 0 && c == 0)          // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19))      // benchmarking
        || a >= 240) // reserved
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let segments = ip.segments();
    let embedded_v4 = |high: u16, low: u16| {
        Ipv4Addr::new((high >> 8) as u8, high as u8, (low >> 8) as u8, low as u8)
    };
    if segments[0] == 0x64 && segments[1] == 0xff9b {
        // NAT64 (64:ff9b::/96 and 64:ff9b:1::/48) carries an IPv4 address at the end.
        return is_public_v4(embedded_v4(segments[6], segments[7]));
    }
    if segments[0] == 0x2002 {
        // 6to4 carries its IPv4 address right after the prefix.
        return is_public_v4(embedded_v4(segments[1], segments[2]));
    }
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || (segments[0] & 0xfe00) == 0xfc00       // unique local
        || (segments[0] & 0xffc0) == 0xfe80       // link-local
        || (segments[0] & 0xffc0) == 0xfec0       // site-local (deprecated)
        || (segments[0] == 0x2001 && segments[1] == 0xdb8) // documentation
        || segments[..6] == [0, 0, 0, 0, 0, 0]) // IPv4-compatible (deprecated)
}

static POLICY: OnceLock<NetworkPolicy> = OnceLock::new();

/// Sets the installation's policy; the first call wins (hosts call it at start).
pub fn install(policy: NetworkPolicy) {
    let _ = POLICY.set(policy);
}

/// The installation's policy: what was installed, else what the environment says,
/// else public addresses only.
pub fn policy() -> &'static NetworkPolicy {
    POLICY.get_or_init(|| NetworkPolicy::from_env().unwrap_or_default())
}

/// The intake check of a URL under the installation's policy (an unparsable URL is
/// left to the URL's own validation).
pub fn permits_url(url: &str) -> bool {
    url::Url::parse(url).map_or(true, |url| policy().check_url(&url).is_ok())
}

/// A DNS resolver for reqwest that drops every address the policy refuses, and fails
/// when none is left. reqwest connects only to what it returns.
pub struct GuardedResolver {
    policy: NetworkPolicy,
}

impl GuardedResolver {
    pub fn new(policy: NetworkPolicy) -> Arc<Self> {
        Arc::new(Self { policy })
    }
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.policy.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let found = tokio::net::lookup_host((host.as_str(), 0)).await?;
            let permitted: Vec<SocketAddr> =
                found.filter(|addr| policy.permits(addr.ip())).collect();
            if permitted.is_empty() {
                return Err(Box::new(Refused) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(permitted.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// Whether an HTTP client error came from a refused target.
pub fn was_refused(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(e) = next {
        if e.is::<Refused>() {
            return true;
        }
        next = e.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(policy: &NetworkPolicy, url: &str) -> bool {
        policy.check_url(&url::Url::parse(url).unwrap()).is_err()
    }

    #[test]
    fn every_spelling_of_a_private_address_is_refused() {
        let policy = NetworkPolicy::default();
        for url in [
            "http://127.0.0.1/",
            "http://127.1/",
            "http://2130706433/",
            "http://0x7f000001/",
            "http://0177.0.0.1/",
            "http://0.0.0.0/",
            "http://0/",
            "http://[::1]/",
            "http://[::]/",
            "http://[::ffff:127.0.0.1]/",
            "http://[::ffff:7f00:1]/",
            "http://[::127.0.0.1]/",
            "http://[64:ff9b::7f00:1]/",
            "http://[2002:7f00:1::]/",
            "http://[fe80::1]/",
            "http://[fd00::1]/",
            "http://[ff02::1]/",
            "http://169.254.169.254/latest/meta-data/",
            "http://10.0.0.1/",
            "http://172.16.5.4/",
            "http://192.168.1.1/",
            "http://100.64.0.1/",
            "http://224.0.0.1/",
            "http://255.255.255.255/",
            "http://240.0.0.1/",
            "http://localhost:8080/",
            "http://LOCALHOST./",
            "http://api.localhost/",
        ] {
            assert!(refused(&policy, url), "{url} must be refused");
        }
        for url in
            ["https://example.com/hook", "http://93.184.216.34/", "http://[2606:4700::1111]/"]
        {
            assert!(!refused(&policy, url), "{url} must be allowed");
        }
    }

    #[test]
    fn the_operator_can_allow_ranges() {
        let policy = NetworkPolicy::parse("127.0.0.0/8, 10.1.0.0/16").unwrap();
        assert!(!refused(&policy, "http://127.0.0.1:9000/"));
        assert!(!refused(&policy, "http://[::ffff:127.0.0.1]/"), "the mapped form too");
        assert!(!refused(&policy, "http://localhost/"));
        assert!(!refused(&policy, "http://10.1.2.3/"));
        assert!(refused(&policy, "http://10.2.0.1/"));
        assert!(refused(&policy, "http://169.254.169.254/"));
        assert!(NetworkPolicy::parse("10.0.0.0/33").is_err());
        assert!(NetworkPolicy::parse("nope").is_err());
        assert_eq!(NetworkPolicy::parse(" ").unwrap(), NetworkPolicy::default());
    }

    #[tokio::test]
    async fn the_resolver_drops_refused_addresses() {
        use reqwest::dns::Resolve;
        let name = |host: &str| host.parse::<reqwest::dns::Name>().unwrap();
        let strict = GuardedResolver::new(NetworkPolicy::default());
        let error = strict.resolve(name("localhost")).await.err().expect("refused");
        assert!(was_refused(error.as_ref()));
        let open = GuardedResolver::new(NetworkPolicy::parse("127.0.0.0/8,::1/128").unwrap());
        let addrs: Vec<SocketAddr> = open.resolve(name("localhost")).await.unwrap().collect();
        assert!(!addrs.is_empty() && addrs.iter().all(|a| a.ip().is_loopback()));
    }
}

//! Calls the server makes on its own (back-channel logout today, upstream identity
//! providers later), under one policy.
//!
//! An address a tenant administrator or a client registration names must not let them
//! make the server probe its own network: by default only `https` URLs whose host
//! resolves to public addresses are called, every address a name resolves to is checked
//! (the connection only ever goes to checked addresses, so DNS rebinding cannot slip
//! one past), redirects are never followed and every call has a timeout. An
//! installation that needs private or loopback targets (development, tests, an intranet)
//! allows them with `outbound.allow_private_networks`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Why a URL may not be called.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutboundRefusal {
    #[error("not an absolute http(s) URL")]
    NotHttp,
    #[error("plain http is allowed only with outbound.allow_private_networks")]
    NotHttps,
    #[error("the address {0} is private, loopback or otherwise not public")]
    PrivateAddress(IpAddr),
}

/// The installation's rule for outbound calls (`outbound.*` in the configuration).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutboundPolicy {
    /// Plain `http` and private, loopback and link-local targets are allowed.
    pub allow_private_networks: bool,
}

impl OutboundPolicy {
    /// Checks what can be checked without resolving: the scheme and a literal address.
    pub fn check_url(&self, url: &url::Url) -> Result<(), OutboundRefusal> {
        match url.scheme() {
            "https" => {}
            "http" if self.allow_private_networks => {}
            "http" => return Err(OutboundRefusal::NotHttps),
            _ => return Err(OutboundRefusal::NotHttp),
        }
        let literal = match url.host() {
            Some(url::Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
            Some(url::Host::Domain(_)) => None,
            None => return Err(OutboundRefusal::NotHttp),
        };
        match literal {
            Some(ip) if !self.allow_private_networks && !is_public(ip) => Err(OutboundRefusal::PrivateAddress(ip)),
            _ => Ok(()),
        }
    }

    /// An HTTP client that follows no redirect, gives up after `timeout`, and (unless
    /// private networks are allowed) connects only to public addresses.
    pub fn client(&self, timeout: Duration) -> reqwest::Result<reqwest::Client> {
        let mut builder = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .redirect(reqwest::redirect::Policy::none());
        if !self.allow_private_networks {
            // No environment proxy either: it would connect where the resolver never looked.
            builder = builder
                .https_only(true)
                .no_proxy()
                .dns_resolver(Arc::new(PublicOnlyResolver));
        }
        builder.build()
    }
}

/// Resolves names with the system resolver and keeps only public addresses; a name
/// with none left fails to resolve.
struct PublicOnlyResolver;

impl Resolve for PublicOnlyResolver {
    fn resolve(&self, name: Name) -> Resolving {
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let resolved: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let public: Vec<SocketAddr> = resolved.iter().copied().filter(|a| is_public(a.ip())).collect();
            if public.is_empty() {
                let refused: Box<dyn std::error::Error + Send + Sync> = match resolved.first() {
                    Some(addr) => Box::new(OutboundRefusal::PrivateAddress(addr.ip())),
                    None => format!("{host} has no address").into(),
                };
                return Err(refused);
            }
            let addrs: Addrs = Box::new(public.into_iter());
            Ok(addrs)
        })
    }
}

/// Whether `ip` is a globally routable unicast address (not loopback, private,
/// link-local, shared, documentation, benchmarking, reserved, multicast or unspecified;
/// IPv4 inside IPv6 judged as IPv4).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped().or_else(|| embedded_ipv4(v6)) {
                return is_public_v4(v4) && is_public_v6(v6);
            }
            is_public_v6(v6)
        }
    }
}

/// The IPv4 address carried inside a translation prefix: NAT64 `64:ff9b::/96` (RFC 6052)
/// and 6to4 `2002::/16` (RFC 3056) lead to it; Teredo `2001::/32` hides the client's
/// address and is judged not public on its own below.
fn embedded_ipv4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let v4 = |hi: u16, lo: u16| Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8);
    if s[0] == 0x0064 && s[1] == 0xff9b && s[2..6].iter().all(|x| *x == 0) {
        return Some(v4(s[6], s[7]));
    }
    if s[0] == 0x2002 {
        return Some(v4(s[1], s[2]));
    }
    None
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_documentation()
        || ip.is_multicast()
        || a == 0
        // 100.64.0.0/10 shared address space (carrier-grade NAT)
        || (a == 100 && (64..128).contains(&b))
        // 192.0.0.0/24 IETF protocol assignments
        || (a == 192 && b == 0 && c == 0)
        // 198.18.0.0/15 benchmarking
        || (a == 198 && (b == 18 || b == 19))
        // 240.0.0.0/4 reserved
        || a >= 240)
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        // fc00::/7 unique local
        || (first & 0xfe00) == 0xfc00
        // fe80::/10 link-local
        || (first & 0xffc0) == 0xfe80
        // 2001:db8::/32 documentation
        || (first == 0x2001 && ip.segments()[1] == 0x0db8)
        // 64:ff9b:1::/48 local-use NAT64, ::/96 IPv4-compatible (deprecated)
        || (first == 0x0064 && ip.segments()[1] == 0xff9b && ip.segments()[2] == 1)
        // 2001::/32 Teredo: the real endpoint is hidden in the address
        || (first == 0x2001 && ip.segments()[1] == 0)
        || ip.segments()[..6].iter().all(|s| *s == 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn private_loopback_and_reserved_addresses_are_not_public() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "198.18.0.1",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "2001:db8::1",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b::7f00:1",
            "2002:a00:1::1",
            "2001:0:4136:e378::1",
        ] {
            assert!(!is_public(ip(private)), "{private}");
        }
        for public in [
            "1.1.1.1",
            "93.184.216.34",
            "2606:4700:4700::1111",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
        ] {
            assert!(is_public(ip(public)), "{public}");
        }
    }

    #[test]
    fn urls_are_checked_by_scheme_and_literal_address() {
        let strict = OutboundPolicy::default();
        let check = |policy: OutboundPolicy, url: &str| policy.check_url(&url.parse().unwrap());
        assert_eq!(check(strict, "https://rp.example/bcl"), Ok(()));
        assert_eq!(check(strict, "http://rp.example/bcl"), Err(OutboundRefusal::NotHttps));
        assert_eq!(check(strict, "ftp://rp.example/"), Err(OutboundRefusal::NotHttp));
        assert_eq!(
            check(strict, "https://127.0.0.1:8443/bcl"),
            Err(OutboundRefusal::PrivateAddress(ip("127.0.0.1")))
        );
        assert_eq!(
            check(strict, "https://[::1]/bcl"),
            Err(OutboundRefusal::PrivateAddress(ip("::1")))
        );
        let open = OutboundPolicy {
            allow_private_networks: true,
        };
        assert_eq!(check(open, "http://127.0.0.1:8080/bcl"), Ok(()));
    }

    #[tokio::test]
    async fn names_that_resolve_only_to_private_addresses_are_refused() {
        let resolved = PublicOnlyResolver.resolve("localhost".parse().unwrap()).await;
        assert!(resolved.is_err());
    }
}

//! The client's address behind reverse proxies (`trusted_proxies`). `X-Forwarded-For` is
//! believed only when the TCP peer is a trusted proxy, and only as far as the entries
//! trusted proxies appended: anything to their left was written by the client.
//!
//! The RFC 7239 `Forwarded` header is not read: common proxies (nginx, AWS ALB) pass a
//! client's `Forwarded` through untouched while they append `X-Forwarded-For`, so
//! preferring it would let any client pick its own address.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use http::HeaderMap;
use ipnet::{IpNet, Ipv4Net};

const X_FORWARDED_FOR: &str = "x-forwarded-for";

/// Networks whose `X-Forwarded-For` is believed. Empty (the default): the TCP peer is the
/// client and the header is ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Addresses (`192.0.2.7`, `::1`) and CIDR networks (`10.0.0.0/8`, `fd00::/8`); the
    /// error names the first entry that is neither.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Self, String> {
        entries
            .iter()
            .map(|e| parse_entry(e.as_ref()))
            .collect::<Result<_, _>>()
            .map(Self)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `ip` is one of the trusted proxies.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The client of a request whose TCP peer is `peer`: the peer itself unless it is
    /// trusted; else `X-Forwarded-For` walked from the right, past trusted proxies, to the
    /// first untrusted address (the leftmost entry when all are trusted). A malformed
    /// entry stops the walk at the last good address, the nearest proxy's view.
    /// IPv4-mapped IPv6 addresses come out as IPv4.
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let mut client = peer.to_canonical();
        if !self.contains(client) {
            return client;
        }
        // Later lines, and later entries of a line, were appended by proxies nearer to us.
        for line in headers.get_all(X_FORWARDED_FOR).iter().rev() {
            // Entries are split as bytes: a non-ASCII byte the client put in its own entry
            // must not discard the entries our proxies appended to the same line.
            let entries = line.as_bytes().rsplit(|b| *b == b',');
            // Empty list elements (`a,,b`) are allowed by RFC 9110 and skipped.
            for entry in entries.map(<[u8]>::trim_ascii).filter(|e| !e.is_empty()) {
                let Some(ip) = std::str::from_utf8(entry).ok().and_then(forwarded_ip) else {
                    return client;
                };
                client = ip;
                if !self.contains(ip) {
                    return client;
                }
            }
        }
        client
    }
}

fn parse_entry(entry: &str) -> Result<IpNet, String> {
    let entry = entry.trim();
    let net = if entry.contains('/') {
        entry.parse::<IpNet>().ok()
    } else {
        entry.parse::<IpAddr>().ok().map(IpNet::from)
    };
    let Some(net) = net else {
        return Err(format!(
            "`{entry}` is not an IP address or CIDR network (such as 10.0.0.0/8, 192.0.2.7, ::1 or fd00::/8)"
        ));
    };
    // `10.0.0.1/8` is most likely a typo; say which network it would mean.
    if net.trunc() != net {
        return Err(format!(
            "`{entry}` has address bits set past its prefix length; the network is `{}`",
            net.trunc()
        ));
    }
    Ok(mapped_as_ipv4(net))
}

/// `::ffff:a.b.c.d/96+` as the IPv4 network it stands for, since addresses are compared
/// in their canonical (IPv4) form.
fn mapped_as_ipv4(net: IpNet) -> IpNet {
    match net {
        IpNet::V6(v6) if v6.prefix_len() >= 96 => match v6.network().to_ipv4_mapped() {
            Some(v4) => Ipv4Net::new_assert(v4, v6.prefix_len() - 96).into(),
            None => net,
        },
        _ => net,
    }
}

/// One `X-Forwarded-For` entry: an address, optionally with a port (`192.0.2.7:4711`,
/// `[2001:db8::1]:4711`, which some proxies write) or in brackets.
fn forwarded_ip(entry: &str) -> Option<IpAddr> {
    let ip = entry
        .parse::<IpAddr>()
        .ok()
        .or_else(|| entry.parse::<SocketAddr>().ok().map(|s| s.ip()))
        .or_else(|| {
            let inner = entry.strip_prefix('[')?.strip_suffix(']')?;
            inner.parse::<Ipv6Addr>().ok().map(IpAddr::V6)
        })?;
    Some(ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn trusted(entries: &[&str]) -> TrustedProxies {
        TrustedProxies::parse(entries).unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// Headers with one `X-Forwarded-For` line per item, and `Forwarded` when given.
    fn headers(xff: &[&str], forwarded: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        for line in xff {
            h.append(X_FORWARDED_FOR, HeaderValue::from_str(line).unwrap());
        }
        if let Some(value) = forwarded {
            h.append(http::header::FORWARDED, HeaderValue::from_str(value).unwrap());
        }
        h
    }

    #[test]
    fn entries_parse_as_addresses_or_networks_and_bad_ones_are_named() {
        let t = trusted(&["10.0.0.0/8", "127.0.0.1", "::1", " fd00::/8 ", "::ffff:192.168.0.0/112"]);
        for yes in ["10.1.2.3", "127.0.0.1", "::1", "fd12::7", "192.168.4.5"] {
            assert!(t.contains(ip(yes)), "{yes}");
        }
        for no in ["11.0.0.1", "127.0.0.2", "::2", "fe80::1", "192.169.0.1"] {
            assert!(!t.contains(ip(no)), "{no}");
        }
        for bad in [
            "10.0.0.0/33",
            "localhost",
            "",
            "10.0.0",
            "::1/129",
            "1.2.3.4/",
            "fe80::1%eth0",
        ] {
            let e = TrustedProxies::parse(&["127.0.0.1", bad]).unwrap_err();
            assert!(e.contains(&format!("`{bad}`")), "{e}");
        }
        let e = TrustedProxies::parse(&["10.0.0.1/8"]).unwrap_err();
        assert!(e.contains("`10.0.0.0/8`"), "{e}");
        assert!(TrustedProxies::parse::<&str>(&[]).unwrap().is_empty());
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_the_headers_say() {
        let h = headers(&["198.51.100.1"], Some("for=198.51.100.2"));
        assert_eq!(
            TrustedProxies::default().client(ip("203.0.113.9"), &h),
            ip("203.0.113.9")
        );
        let t = trusted(&["10.0.0.0/8"]);
        assert_eq!(t.client(ip("203.0.113.9"), &h), ip("203.0.113.9"));
        // Not trusted just because the header names a trusted proxy.
        let h = headers(&["198.51.100.1, 10.0.0.2"], None);
        assert_eq!(t.client(ip("203.0.113.9"), &h), ip("203.0.113.9"));
    }

    #[test]
    fn a_trusted_peer_hands_over_to_the_rightmost_untrusted_entry() {
        let t = trusted(&["10.0.0.0/8", "127.0.0.1"]);
        let peer = ip("10.0.0.5");
        assert_eq!(t.client(peer, &headers(&["198.51.100.7"], None)), ip("198.51.100.7"));
        // The client prepended addresses of its choosing; only what our proxy appended counts.
        let spoofed = headers(&["1.1.1.1, 8.8.8.8, 198.51.100.7"], None);
        assert_eq!(t.client(peer, &spoofed), ip("198.51.100.7"));
        // Even a spoofed trusted-looking address on the left is not reached.
        let spoofed = headers(&["127.0.0.1, 198.51.100.7"], None);
        assert_eq!(t.client(peer, &spoofed), ip("198.51.100.7"));
        // No header: the proxy itself.
        assert_eq!(t.client(peer, &HeaderMap::new()), peer);
    }

    #[test]
    fn chains_of_proxies_are_walked_across_entries_and_lines() {
        let t = trusted(&["10.0.0.0/8", "192.0.2.0/24"]);
        let peer = ip("10.0.0.5");
        let chain = headers(&["6.6.6.6, 198.51.100.7, 192.0.2.10, 10.1.1.1"], None);
        assert_eq!(t.client(peer, &chain), ip("198.51.100.7"));
        // The same chain split over several header lines, in order.
        let lines = headers(&["6.6.6.6", "198.51.100.7, 192.0.2.10", "10.1.1.1"], None);
        assert_eq!(t.client(peer, &lines), ip("198.51.100.7"));
        // All trusted: the leftmost.
        let inner = headers(&["192.0.2.10, 10.1.1.1"], None);
        assert_eq!(t.client(peer, &inner), ip("192.0.2.10"));
        // Empty list elements are skipped.
        let sparse = headers(&[" , 198.51.100.7,, 10.1.1.1 ,"], None);
        assert_eq!(t.client(peer, &sparse), ip("198.51.100.7"));
    }

    #[test]
    fn a_malformed_entry_stops_at_the_nearest_proxys_view() {
        let t = trusted(&["10.0.0.0/8"]);
        let peer = ip("10.0.0.5");
        for bad in [
            "unknown",
            "_hidden",
            "198.51.100.300",
            "fe80::1%eth0",
            "not an address",
            "for=1.2.3.4",
        ] {
            // Right after the peer: the peer.
            assert_eq!(t.client(peer, &headers(&[bad], None)), peer, "{bad}");
            // Behind a trusted hop: that hop; never the good-looking entry further left.
            let h = headers(&[&format!("198.51.100.7, {bad}, 10.2.2.2")], None);
            assert_eq!(t.client(peer, &h), ip("10.2.2.2"), "{bad}");
        }
        // Past the client, malformed entries are never looked at.
        let h = headers(&["garbage, 198.51.100.7"], None);
        assert_eq!(t.client(peer, &h), ip("198.51.100.7"));
        // A header value that is not visible ASCII.
        let mut h = HeaderMap::new();
        h.append(X_FORWARDED_FOR, HeaderValue::from_bytes(b"198.51.100.7\xff").unwrap());
        assert_eq!(t.client(peer, &h), peer);
        h.append(X_FORWARDED_FOR, HeaderValue::from_static("10.3.3.3"));
        assert_eq!(t.client(peer, &h), ip("10.3.3.3"));
        // One line joined by a proxy (`$proxy_add_x_forwarded_for`): the client's odd
        // bytes spoil only its own entry; the proxy's appended entry still names it.
        let mut h = HeaderMap::new();
        h.append(
            X_FORWARDED_FOR,
            HeaderValue::from_bytes(b"1.2.3.4\xff, 198.51.100.9, 10.4.4.4").unwrap(),
        );
        assert_eq!(t.client(peer, &h), ip("198.51.100.9"));
    }

    #[test]
    fn ipv6_ports_brackets_and_mapped_ipv4() {
        let t = trusted(&["fd00::/8", "10.0.0.0/8"]);
        let h = headers(&["2001:db8::7, fd00::2"], None);
        assert_eq!(t.client(ip("fd00::1"), &h), ip("2001:db8::7"));
        for written in ["[2001:db8::7]:4711", "[2001:db8::7]"] {
            assert_eq!(
                t.client(ip("fd00::1"), &headers(&[written], None)),
                ip("2001:db8::7"),
                "{written}"
            );
        }
        assert_eq!(
            t.client(ip("10.0.0.1"), &headers(&["198.51.100.7:4711"], None)),
            ip("198.51.100.7")
        );
        // A dual-stack listener sees IPv4 peers as ::ffff:a.b.c.d: compared as IPv4.
        let h = headers(&["::ffff:198.51.100.7, ::ffff:10.9.9.9"], None);
        assert_eq!(t.client(ip("::ffff:10.0.0.1"), &h), ip("198.51.100.7"));
        assert_eq!(
            t.client(ip("::ffff:203.0.113.9"), &h),
            ip("203.0.113.9"),
            "an untrusted mapped peer comes out as IPv4"
        );
    }

    #[test]
    fn the_forwarded_header_is_not_believed() {
        let t = trusted(&["10.0.0.0/8"]);
        let peer = ip("10.0.0.5");
        // Only `Forwarded`: nothing to go on, the proxy is the client.
        let h = headers(&[], Some("for=198.51.100.7"));
        assert_eq!(t.client(peer, &h), peer);
        // Both: the client's own `Forwarded`, passed through, cannot override what the
        // proxy appended to `X-Forwarded-For`.
        let h = headers(&["198.51.100.7"], Some("for=203.0.113.66;proto=https"));
        assert_eq!(t.client(peer, &h), ip("198.51.100.7"));
    }
}

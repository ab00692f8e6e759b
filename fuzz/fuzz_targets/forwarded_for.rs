//! `X-Forwarded-For` behind trusted proxies (`tenantry_config::proxies`): any header value
//! gives an address, never a panic; an untrusted peer is always the answer.
#![no_main]

use std::net::{IpAddr, Ipv4Addr};

use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use tenantry_config::proxies::TrustedProxies;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = HeaderValue::from_bytes(data) else {
        return;
    };
    let mut headers = HeaderMap::new();
    headers.append("x-forwarded-for", value.clone());
    headers.append("x-forwarded-for", value);
    let proxies = TrustedProxies::parse(&["10.0.0.0/8", "::1"]).unwrap();
    let trusted = IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3));
    let _ = proxies.client(trusted, &headers);
    let stranger = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 9));
    assert_eq!(proxies.client(stranger, &headers), stranger);
});

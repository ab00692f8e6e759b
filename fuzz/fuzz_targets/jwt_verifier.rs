//! The one JWT verifier (`tenantry_keys`, `IssuerKeys::verify`), which also checks client
//! assertions and `id_token_hint`s: any text is refused unless a key of the ring signed it,
//! never a panic.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use tenantry_crypto::{MasterKey, SecretBox};
use tenantry_keys::IssuerKeys;
use tenantry_keys::{Expect, TokenType};

fn keys() -> &'static IssuerKeys {
    static KEYS: OnceLock<IssuerKeys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let secrets = SecretBox::new(MasterKey::generate(), vec![]);
        let ring = tenantry_keys::generate_ring(&secrets, "tenant", chrono_now()).unwrap();
        IssuerKeys::open(&ring, &secrets, "tenant").unwrap()
    })
}

fn chrono_now() -> chrono::DateTime<chrono::Utc> {
    chrono::Utc::now()
}

fuzz_target!(|data: &[u8]| {
    let Ok(token) = std::str::from_utf8(data) else { return };
    for token_type in [TokenType::Access, TokenType::Id, TokenType::Logout] {
        let expect = Expect::new("https://id.example.test/t/acme", token_type);
        let verified = keys().verify::<serde_json::Value>(token, &expect);
        assert!(verified.is_err(), "a token nobody signed passed");
    }
});

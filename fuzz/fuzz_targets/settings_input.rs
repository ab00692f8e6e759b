//! Tenant settings as an admin sends them (`tenantry_admin::settings::settings_from_input`,
//! mail templates included): any JSON is settings that validate or a refusal, never a
//! panic; what is accepted is sealed, so no plaintext secret comes back out.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use tenantry_crypto::{MasterKey, SecretBox};

fn secrets() -> &'static SecretBox {
    static SECRETS: OnceLock<SecretBox> = OnceLock::new();
    SECRETS.get_or_init(|| SecretBox::new(MasterKey::generate(), vec![]))
}

fuzz_target!(|data: &[u8]| {
    let Ok(input) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    if let Ok(settings) = tenantry_admin::settings::settings_from_input(input, None, "tenant", secrets()) {
        tenantry_controlplane::validate::validate_settings(&settings).expect("accepted settings validate");
        if let Some(password) = settings.smtp.as_ref().and_then(|smtp| smtp.password.as_ref()) {
            assert!(tenantry_crypto::secretbox::looks_sealed(&password.0));
        }
    }
});

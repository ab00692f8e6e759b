//! Control-plane files as loaded from disk: any bytes in a tenant, client, scope, role,
//! key-ring or admin file are a value (then validated) or an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tenantry_controlplane::model::{Admin, ApiKey, Client, KeyRing, Role, Scope, Tenant};
use tenantry_controlplane::validate;

fuzz_target!(|data: &[u8]| {
    let Some((&kind, bytes)) = data.split_first() else {
        return;
    };
    match kind % 7 {
        0 => {
            if let Ok(tenant) = serde_json::from_slice::<Tenant>(bytes) {
                let _ = validate::validate_tenant(&tenant);
            }
        }
        1 => {
            if let Ok(client) = serde_json::from_slice::<Client>(bytes) {
                let _ = validate::validate_client(&client);
            }
        }
        2 => {
            if let Ok(scope) = serde_json::from_slice::<Scope>(bytes) {
                let _ = validate::validate_scope(&scope);
            }
        }
        3 => {
            if let Ok(role) = serde_json::from_slice::<Role>(bytes) {
                let _ = validate::validate_role(&role);
            }
        }
        4 => {
            if let Ok(ring) = serde_json::from_slice::<KeyRing>(bytes) {
                let _ = validate::validate_key_ring(&ring);
            }
        }
        5 => {
            let _ = serde_json::from_slice::<Admin>(bytes);
        }
        _ => {
            let _ = serde_json::from_slice::<ApiKey>(bytes);
        }
    }
});

//! The one protocol-parameter parser (`tenantry_oidc::params`): any bytes give parameters
//! within its limits or an error, never a panic, and what it accepts reads back the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tenantry_oidc::params::{MAX_PARAMS, Params};

fuzz_target!(|data: &[u8]| {
    if let Ok(params) = Params::parse(data, &["resource", "audience"]) {
        assert!(params.pairs().len() <= MAX_PARAMS);
        for (name, value) in params.pairs() {
            assert!(params.get(name).is_some() || params.all(name).next().is_some());
            let _ = value.len();
        }
    }
});

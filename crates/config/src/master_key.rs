//! The master key that seals every secret at rest: `SECRETBOX_MASTER_KEY` (and
//! `SECRETBOX_PREVIOUS_KEYS` for rotation) from the environment, or with `--dev` a
//! development key generated once into FS_ROOT. Nothing is ever generated otherwise.

use std::path::Path;

use tenantry_crypto::{MasterKey, SecretBox};

use crate::ConfigError;

/// File that holds the generated development master key (`--dev` only).
pub const DEV_MASTER_KEY_FILE: &str = "dev-master-key";

/// Builds the secretbox from `SECRETBOX_MASTER_KEY` (and `SECRETBOX_PREVIOUS_KEYS`,
/// comma-separated). With `dev` and no key set, a key is read from or generated into
/// `FS_ROOT/dev-master-key`, with a loud warning. Nothing is ever generated otherwise.
pub fn load_secretbox(
    env: impl Fn(&str) -> Option<String>,
    fs_root: &Path,
    dev: bool,
) -> Result<SecretBox, ConfigError> {
    let current = match env("SECRETBOX_MASTER_KEY") {
        Some(value) => {
            MasterKey::from_base64(&value).map_err(|e| ConfigError::new("SECRETBOX_MASTER_KEY", e.to_string()))?
        }
        None if dev => dev_master_key(fs_root)?,
        None => {
            return Err(ConfigError::new(
                "SECRETBOX_MASTER_KEY",
                "is not set; give the base64 of 32 random bytes (e.g. `openssl rand -base64 32`), or run with --dev for a development key",
            ));
        }
    };
    let mut previous = Vec::new();
    if let Some(list) = env("SECRETBOX_PREVIOUS_KEYS") {
        for (i, item) in list.split(',').map(str::trim).filter(|s| !s.is_empty()).enumerate() {
            previous.push(
                MasterKey::from_base64(item)
                    .map_err(|e| ConfigError::new(format!("SECRETBOX_PREVIOUS_KEYS[{i}]"), e.to_string()))?,
            );
        }
    }
    Ok(SecretBox::new(current, previous))
}

fn dev_master_key(fs_root: &Path) -> Result<MasterKey, ConfigError> {
    let path = fs_root.join(DEV_MASTER_KEY_FILE);
    let setting = format!("SECRETBOX_MASTER_KEY (dev key file {})", path.display());
    if path.exists() {
        let text = std::fs::read_to_string(&path).map_err(|e| ConfigError::new(&setting, e.to_string()))?;
        return MasterKey::from_base64(&text).map_err(|e| ConfigError::new(&setting, e.to_string()));
    }
    let key = MasterKey::generate();
    tenantry_crypto::files::write_private(&path, key.to_base64().as_bytes())
        .map_err(|e| ConfigError::new(&setting, e.to_string()))?;
    eprintln!(
        "\n!!! WARNING: generated a DEVELOPMENT master key into {}.\n!!! Anyone who reads that file can open every sealed secret. Never use --dev in production;\n!!! set SECRETBOX_MASTER_KEY instead.\n",
        path.display()
    );
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn master_key_errors_are_clear() {
        let dir = tempfile::tempdir().unwrap();
        let missing = load_secretbox(env(&[]), dir.path(), false).unwrap_err();
        assert_eq!(missing.setting, "SECRETBOX_MASTER_KEY");
        assert!(missing.problem.contains("not set"));
        let short = load_secretbox(env(&[("SECRETBOX_MASTER_KEY", "c2hvcnQ=")]), dir.path(), false).unwrap_err();
        assert!(short.problem.contains("32 bytes"), "{short}");
        let bad = load_secretbox(env(&[("SECRETBOX_MASTER_KEY", "%%%")]), dir.path(), false).unwrap_err();
        assert!(bad.problem.contains("base64"), "{bad}");
        assert!(
            !dir.path().join(DEV_MASTER_KEY_FILE).exists(),
            "nothing generated without --dev"
        );
    }

    #[test]
    fn dev_key_is_generated_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let a = load_secretbox(env(&[]), dir.path(), true).unwrap();
        let b = load_secretbox(env(&[]), dir.path(), true).unwrap();
        assert_eq!(a.current_key_id(), b.current_key_id());
        let explicit = base64::engine::general_purpose::STANDARD.encode([9u8; 32]);
        let c = load_secretbox(env(&[("SECRETBOX_MASTER_KEY", &explicit)]), dir.path(), true).unwrap();
        assert_ne!(a.current_key_id(), c.current_key_id());
    }
}

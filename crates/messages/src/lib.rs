//! Tenantry's message catalogue: the texts users read on hosted pages and in mails, one
//! TOML file per language (`messages/en.toml`, `messages/es.toml`), compiled into the
//! binary with `include_str!` and parsed once, at first use.
//!
//! This crate owns the texts and the list of their keys ([`Key`]). Every language has
//! exactly the keys of [`Key::ALL`], no more and no fewer: the unit tests check every
//! catalogue, so a missing or misspelt key fails `cargo test`, and code can only ask for a
//! key that exists (a [`Key`], not a string).
//!
//! It must never read files at run time, know about HTTP, templates or tenants, or hold
//! markup: texts are plain strings. Escaping is the template engine's job, and `{name}`
//! placeholders (`{days}`, `{minutes}`) are filled by the code that asks for the text.
//! Tenant-specific wording (mail template overrides, branding) lives in the tenant's
//! settings, not here.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use serde::ser::{Serialize, SerializeMap, Serializer};
use tenantry_controlplane::model::Language;

/// Declares [`Key`]: one variant per message, with its key in the catalogue files.
macro_rules! keys {
    ($($(#[doc = $doc:literal])* $name:ident = $key:literal,)*) => {
        /// The key of one message. Every catalogue has a text for every key.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Key {
            $($(#[doc = $doc])* $name,)*
        }

        impl Key {
            /// Every key, in catalogue order.
            pub const ALL: &[Key] = &[$(Key::$name,)*];

            /// The key as written in the catalogue files and seen by templates (`t.sign_in`).
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Key::$name => $key,)*
                }
            }
        }
    };
}

keys! {
    // Hosted pages
    SignIn = "sign_in",
    ContinueTo = "continue_to",
    Email = "email",
    Password = "password",
    ConsentTitle = "consent_title",
    ConsentAsks = "consent_asks",
    Allow = "allow",
    Deny = "deny",
    ErrorTitle = "error_title",
    Redirecting = "redirecting",
    Continue = "continue",
    LogoutTitle = "logout_title",
    LogoutQuestion = "logout_question",
    LogoutButton = "logout_button",
    LoggedOut = "logged_out",
    MfaTitle = "mfa_title",
    MfaPrompt = "mfa_prompt",
    MfaEnrolPrompt = "mfa_enrol_prompt",
    MfaQrAlt = "mfa_qr_alt",
    MfaSecret = "mfa_secret",
    MfaCode = "mfa_code",
    MfaVerify = "mfa_verify",
    /// The button of a second factor given with a passkey.
    MfaPasskey = "mfa_passkey",
    /// What the passkey button does, beside the code form.
    MfaPasskeyPrompt = "mfa_passkey_prompt",
    /// The step's prompt when a passkey is the user's only second factor.
    MfaPasskeyOnlyPrompt = "mfa_passkey_only_prompt",
    PasskeyRefused = "passkey_refused",
    /// The login page's button that signs in with a passkey alone.
    PasskeySignIn = "passkey_sign_in",
    /// A passkey refused on the login page.
    PasskeyLoginRefused = "passkey_login_refused",
    /// The sign-up page's button that makes the account with a passkey, no password.
    PasskeySignUp = "passkey_sign_up",
    PasskeyCreateTitle = "passkey_create_title",
    /// What creating the passkey does, with `{email}`.
    PasskeyCreatePrompt = "passkey_create_prompt",
    PasskeyCreateButton = "passkey_create_button",
    /// A new passkey that did not verify.
    PasskeyCreateFailed = "passkey_create_failed",
    /// "Remember this device", with `{days}`.
    MfaRemember = "mfa_remember",
    RecoveryTitle = "recovery_title",
    RecoveryPrompt = "recovery_prompt",
    BadCode = "bad_code",
    EmailNotVerified = "email_not_verified",
    /// "Too many attempts", with `{minutes}` for the wait.
    TryLater = "try_later",
    BadCredentials = "bad_credentials",
    Expired = "expired",
    VerifyTitle = "verify_title",
    VerifyPrompt = "verify_prompt",
    VerifyButton = "verify_button",
    VerifiedTitle = "verified_title",
    VerifiedMessage = "verified_message",
    ResetTitle = "reset_title",
    ResetPrompt = "reset_prompt",
    NewPassword = "new_password",
    ResetButton = "reset_button",
    PasswordChangedTitle = "password_changed_title",
    PasswordChangedMessage = "password_changed_message",
    /// Before the policy's reasons for refusing a new password.
    PasswordRefused = "password_refused",
    /// A verification or reset link that is unknown, used or expired.
    LinkInvalid = "link_invalid",
    /// A link page whose form lost its CSRF cookie (another browser, cookies cleared).
    LinkPageExpired = "link_page_expired",
    /// The login page's link to the forgot-password page.
    ForgotLink = "forgot_link",
    ForgotTitle = "forgot_title",
    ForgotPrompt = "forgot_prompt",
    ForgotButton = "forgot_button",
    ForgotSentTitle = "forgot_sent_title",
    /// The same whether or not the address is an account's.
    ForgotSentMessage = "forgot_sent_message",
    BadEmail = "bad_email",
    /// The forgot-password form without its CSRF cookie.
    FormExpired = "form_expired",
    /// The forgot-password page of a tenant that cannot send mail.
    EmailNotConfigured = "email_not_configured",
    /// Before an upstream provider's name on its button ("Continue with Acme").
    ContinueWith = "continue_with",
    /// Between the password form and the provider buttons.
    OrDivider = "or_divider",
    /// The login page after an upstream sign-in whose email is an existing account's:
    /// `{provider}` is the provider's name.
    LinkProveAccount = "link_prove_account",
    /// An upstream sign-in that could not be completed (the error page's message).
    UpstreamFailed = "upstream_failed",
    /// The login page's button to the sign-up page.
    CreateAccount = "create_account",
    SignUpTitle = "sign_up_title",
    GivenName = "given_name",
    FamilyName = "family_name",
    /// After a field's label.
    Optional = "optional",
    /// Under the password field: `{min}` is the tenant's minimum length.
    PasswordHint = "password_hint",
    SignUpButton = "sign_up_button",
    /// The page after a sign-up whose email must be verified before signing in.
    SignUpSentMessage = "sign_up_sent_message",
    // The account page
    AccountTitle = "account_title",
    Language = "language",
    LanguageDefault = "language_default",
    AccountProfile = "account_profile",
    Name = "name",
    PhoneNumber = "phone_number",
    Save = "save",
    AccountEmailVerified = "account_email_verified",
    AccountEmailUnverified = "account_email_unverified",
    AccountChangeEmail = "account_change_email",
    AccountNewEmail = "account_new_email",
    AccountEmailHint = "account_email_hint",
    CurrentPassword = "current_password",
    AccountSetPassword = "account_set_password",
    AccountTotp = "account_totp",
    AccountTotpOn = "account_totp_on",
    AccountTotpOff = "account_totp_off",
    AccountTotpScan = "account_totp_scan",
    AccountTotpStart = "account_totp_start",
    AccountTotpDisable = "account_totp_disable",
    AccountRecoveryNew = "account_recovery_new",
    AccountPasskeys = "account_passkeys",
    AccountPasskeysNone = "account_passkeys_none",
    AccountPasskeyAdd = "account_passkey_add",
    AccountPasskeyName = "account_passkey_name",
    Rename = "rename",
    Remove = "remove",
    AccountIdentities = "account_identities",
    AccountUnlink = "account_unlink",
    AccountSessions = "account_sessions",
    AccountThisSession = "account_this_session",
    AccountSignOutAll = "account_sign_out_all",
    AccountReauth = "account_reauth",
    AccountReauthNeeded = "account_reauth_needed",
    AccountWrongPassword = "account_wrong_password",
    AccountLastWayIn = "account_last_way_in",
    AccountSaved = "account_saved",
    AccountEmailSent = "account_email_sent",
    AccountPasswordChanged = "account_password_changed",
    AccountTotpConfirmed = "account_totp_confirmed",
    AccountTotpDisabled = "account_totp_disabled",
    AccountPasskeyAdded = "account_passkey_added",
    AccountPasskeyRemoved = "account_passkey_removed",
    AccountUnlinked = "account_unlinked",
    AccountSessionEnded = "account_session_ended",
    AccountAdded = "account_added",
    AccountLastUsed = "account_last_used",
    AccountSynced = "account_synced",
    AccountLinked = "account_linked",
    AccountSignedIn = "account_signed_in",
    EmailChangedTitle = "email_changed_title",
    EmailChangedMessage = "email_changed_message",
    EmailTaken = "email_taken",
    // Mails: the units of a link's lifetime ("2 hours", "30 minutes").
    /// One hour.
    Hour = "hour",
    /// Several hours.
    Hours = "hours",
    /// One minute.
    Minute = "minute",
    /// Several minutes.
    Minutes = "minutes",
}

impl Key {
    /// The key named `name` in the catalogue files.
    pub fn from_name(name: &str) -> Option<Key> {
        Key::ALL.iter().copied().find(|k| k.as_str() == name)
    }
}

/// The texts of one language: one per [`Key`].
#[derive(Debug)]
pub struct Catalogue {
    language: Language,
    /// Indexed by `Key as usize`.
    texts: Vec<String>,
}

impl Catalogue {
    /// The text of `key`.
    pub fn get(&self, key: Key) -> &str {
        &self.texts[key as usize]
    }

    /// The catalogue's language.
    pub fn language(&self) -> Language {
        self.language
    }

    /// Every key with its text, in catalogue order.
    pub fn iter(&self) -> impl Iterator<Item = (Key, &str)> {
        Key::ALL.iter().map(|&k| (k, self.get(k)))
    }
}

/// A map from each key's name to its text, so a template can read `t.sign_in`.
impl Serialize for Catalogue {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.texts.len()))?;
        for (key, text) in self.iter() {
            map.serialize_entry(key.as_str(), text)?;
        }
        map.end()
    }
}

/// The catalogue of `lang`.
pub fn catalogue(lang: Language) -> &'static Catalogue {
    static EN: LazyLock<Catalogue> = LazyLock::new(|| load(Language::En));
    static ES: LazyLock<Catalogue> = LazyLock::new(|| load(Language::Es));
    match lang {
        Language::En => &EN,
        Language::Es => &ES,
    }
}

/// The catalogue file of `lang`, as compiled in.
fn source(lang: Language) -> &'static str {
    match lang {
        Language::En => include_str!("../messages/en.toml"),
        Language::Es => include_str!("../messages/es.toml"),
    }
}

fn load(lang: Language) -> Catalogue {
    parse(lang, source(lang)).unwrap_or_else(|e| panic!("messages/{}.toml: {e}", lang.as_str()))
}

/// Parses a catalogue file: a flat TOML table of strings with exactly the keys of
/// [`Key::ALL`]. The error names every missing and unknown key.
fn parse(language: Language, source: &str) -> Result<Catalogue, String> {
    let table: BTreeMap<String, String> = toml::from_str(source).map_err(|e| e.to_string())?;
    let unknown: Vec<&str> = table
        .keys()
        .map(String::as_str)
        .filter(|name| Key::from_name(name).is_none())
        .collect();
    let missing: Vec<&str> = Key::ALL
        .iter()
        .map(|k| k.as_str())
        .filter(|name| !table.contains_key(*name))
        .collect();
    if !unknown.is_empty() || !missing.is_empty() {
        return Err(format!("missing keys {missing:?}, unknown keys {unknown:?}"));
    }
    let texts = Key::ALL.iter().map(|k| table[k.as_str()].clone()).collect();
    Ok(Catalogue { language, texts })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// Every language; the exhaustive match in [`source`] makes a new one impossible to forget.
    const LANGUAGES: [Language; 2] = [Language::En, Language::Es];

    fn raw_keys(lang: Language) -> BTreeSet<String> {
        let table: BTreeMap<String, String> = toml::from_str(source(lang)).expect("catalogue is TOML");
        table.into_keys().collect()
    }

    /// `{name}` placeholders of a text.
    fn placeholders(text: &str) -> BTreeSet<&str> {
        text.split('{')
            .skip(1)
            .filter_map(|rest| rest.split_once('}'))
            .map(|(name, _)| name)
            .collect()
    }

    #[test]
    fn every_language_has_exactly_the_keys_of_english() {
        let en = raw_keys(Language::En);
        for lang in LANGUAGES {
            let other = raw_keys(lang);
            let only_en: Vec<_> = en.difference(&other).collect();
            let only_other: Vec<_> = other.difference(&en).collect();
            assert!(only_en.is_empty(), "missing from {}: {only_en:?}", lang.as_str());
            assert!(only_other.is_empty(), "only in {}: {only_other:?}", lang.as_str());
        }
    }

    #[test]
    fn every_catalogue_has_every_key_the_code_asks_for() {
        for lang in LANGUAGES {
            let parsed = parse(lang, source(lang)).unwrap_or_else(|e| panic!("{}: {e}", lang.as_str()));
            for &key in Key::ALL {
                assert!(
                    !parsed.get(key).trim().is_empty(),
                    "{}: {key:?} is empty",
                    lang.as_str()
                );
            }
            assert_eq!(catalogue(lang).language(), lang);
        }
    }

    #[test]
    fn translations_keep_the_placeholders() {
        for lang in LANGUAGES {
            for &key in Key::ALL {
                assert_eq!(
                    placeholders(catalogue(lang).get(key)),
                    placeholders(catalogue(Language::En).get(key)),
                    "{}: {key:?}",
                    lang.as_str()
                );
            }
        }
    }

    #[test]
    fn key_names_are_unique_and_round_trip() {
        let names: BTreeSet<_> = Key::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(names.len(), Key::ALL.len());
        for &key in Key::ALL {
            assert_eq!(Key::from_name(key.as_str()), Some(key));
        }
        assert_eq!(Key::from_name("no_such_key"), None);
    }

    #[test]
    fn a_catalogue_with_a_missing_or_unknown_key_is_refused() {
        let mut source = source(Language::En).replace("sign_in = ", "sign_on = ");
        let err = parse(Language::En, &source).unwrap_err();
        assert!(err.contains("\"sign_in\"") && err.contains("\"sign_on\""), "{err}");
        source.push_str("\nbroken = 1\n");
        assert!(parse(Language::En, &source).is_err());
    }

    #[test]
    fn the_catalogue_serializes_as_a_map_of_key_names() {
        let written = toml::to_string(catalogue(Language::Es)).expect("catalogue serializes");
        let table: BTreeMap<String, String> = toml::from_str(&written).expect("written back");
        assert_eq!(table.len(), Key::ALL.len());
        assert_eq!(table["sign_in"], "Iniciar sesión");
        assert_eq!(table["continue"], "Continuar");
    }
}

//! Parameters of a protocol request (query string or form body).
//!
//! One parser for the authorization, login, consent, logout, token, introspection and
//! revocation endpoints: a parameter sent twice is refused (RFC 6749 3.1 / 3.2) unless the
//! endpoint lets it repeat, and an empty value counts as absent.

/// Parsed `name=value` pairs, in request order.
#[derive(Debug, Clone)]
pub struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    /// Parses urlencoded `bytes`; `Err(name)` names the first repeated parameter that is
    /// not in `repeatable`.
    pub fn parse(bytes: &[u8], repeatable: &[&str]) -> Result<Self, String> {
        let pairs: Vec<(String, String)> = url::form_urlencoded::parse(bytes).into_owned().collect();
        for (i, (name, _)) in pairs.iter().enumerate() {
            if !repeatable.contains(&name.as_str()) && pairs[..i].iter().any(|(n, _)| n == name) {
                return Err(name.clone());
            }
        }
        Ok(Self { pairs })
    }

    /// The value of `name`, if present and not empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }

    /// Every value of a repeatable parameter.
    pub fn all(&self, name: &str) -> impl Iterator<Item = &str> {
        self.pairs
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn pairs(&self) -> &[(String, String)] {
        &self.pairs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeats_are_refused_unless_allowed_and_empty_is_absent() {
        assert_eq!(Params::parse(b"a=1&a=2", &[]).unwrap_err(), "a");
        let p = Params::parse(b"resource=x&resource=y&b=&c=%20z", &["resource"]).unwrap();
        assert_eq!(p.all("resource").collect::<Vec<_>>(), ["x", "y"]);
        assert_eq!(p.get("b"), None);
        assert_eq!(p.get("c"), Some(" z"));
    }
}

//! Parameters of a protocol request (query string or form body).
//!
//! One parser for the authorization, login, consent, logout, token, introspection and
//! revocation endpoints and the hosted pages: a parameter sent twice is refused (RFC 6749
//! 3.1 / 3.2) unless the endpoint lets it repeat, and an empty value counts as absent.
//!
//! Everything here runs before the caller is authenticated, so the work is linear in the
//! input and bounded: at most [`MAX_PARAMS`] parameters of at most [`MAX_PARAM_BYTES`]
//! each are looked at, and a request over either cap is refused before anything is
//! decoded beyond that point.

use std::collections::HashSet;

/// Most parameters one request may carry. The longest legitimate request (an OIDC
/// authorization request with every optional parameter) has about twenty.
pub const MAX_PARAMS: usize = 64;

/// Longest `name=value` pair, as sent (percent-encoded). Client assertions and ID token
/// hints are the longest legitimate values, a few kilobytes each.
pub const MAX_PARAM_BYTES: usize = 16 * 1024;

/// Why a query string or form body was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParamsError {
    /// A parameter that may appear once was sent again.
    Repeated(String),
    /// More than [`MAX_PARAMS`] parameters.
    TooMany,
    /// A pair longer than [`MAX_PARAM_BYTES`]; the name, when it is short enough to show.
    TooLong(String),
}

impl ParamsError {
    /// A message for the client (names are made printable and short).
    pub fn message(&self) -> String {
        match self {
            ParamsError::Repeated(name) => format!("`{}` is repeated", tenantry_errors::printable(name)),
            ParamsError::TooMany => format!("more than {MAX_PARAMS} parameters"),
            ParamsError::TooLong(name) => format!(
                "`{}` is longer than {MAX_PARAM_BYTES} bytes",
                tenantry_errors::printable(name)
            ),
        }
    }
}

impl std::fmt::Display for ParamsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message())
    }
}

/// Parsed `name=value` pairs, in request order.
#[derive(Debug, Clone)]
pub struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    /// Parses urlencoded `bytes`, refusing a repeated parameter that is not in
    /// `repeatable`, more than [`MAX_PARAMS`] parameters, or an oversized one.
    pub fn parse(bytes: &[u8], repeatable: &[&str]) -> Result<Self, ParamsError> {
        let mut pairs = Vec::new();
        let mut seen = HashSet::new();
        // The same split as `form_urlencoded::parse` (on `&`, empty pieces skipped), done
        // here so each piece is measured before it is decoded.
        for piece in bytes.split(|b| *b == b'&').filter(|p| !p.is_empty()) {
            if pairs.len() == MAX_PARAMS {
                return Err(ParamsError::TooMany);
            }
            if piece.len() > MAX_PARAM_BYTES {
                let raw_name = piece.split(|b| *b == b'=').next().unwrap_or_default();
                let name = String::from_utf8_lossy(&raw_name[..raw_name.len().min(64)]).into_owned();
                return Err(ParamsError::TooLong(name));
            }
            let Some((name, value)) = url::form_urlencoded::parse(piece).next() else {
                continue;
            };
            if !seen.insert(name.clone()) && !repeatable.contains(&name.as_ref()) {
                return Err(ParamsError::Repeated(name.into_owned()));
            }
            pairs.push((name.into_owned(), value.into_owned()));
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
        assert_eq!(
            Params::parse(b"a=1&a=2", &[]).unwrap_err(),
            ParamsError::Repeated("a".into())
        );
        // Encoded forms of one name are the same name.
        assert_eq!(
            Params::parse(b"ab=1&a%62=2", &[]).unwrap_err(),
            ParamsError::Repeated("ab".into())
        );
        let p = Params::parse(b"resource=x&resource=y&b=&c=%20z&&", &["resource"]).unwrap();
        assert_eq!(p.all("resource").collect::<Vec<_>>(), ["x", "y"]);
        assert_eq!(p.get("b"), None);
        assert_eq!(p.get("c"), Some(" z"));
    }

    #[test]
    fn counts_and_lengths_are_capped() {
        let at_cap: Vec<String> = (0..MAX_PARAMS).map(|i| format!("p{i}=v")).collect();
        assert!(Params::parse(at_cap.join("&").as_bytes(), &[]).is_ok());
        let over = format!("{}&x=1", at_cap.join("&"));
        assert_eq!(Params::parse(over.as_bytes(), &[]).unwrap_err(), ParamsError::TooMany);

        let long = format!("token={}", "a".repeat(MAX_PARAM_BYTES));
        assert_eq!(
            Params::parse(long.as_bytes(), &[]).unwrap_err(),
            ParamsError::TooLong("token".into())
        );
        let fits = format!("token={}", "a".repeat(MAX_PARAM_BYTES - 6));
        assert!(Params::parse(fits.as_bytes(), &[]).is_ok());
    }

    /// The review's body: a megabyte of distinct short names (about 238k parameters) was
    /// compared pairwise and ran for over a minute. Now the count cap stops it at once.
    #[test]
    fn a_megabyte_of_distinct_names_is_refused_at_the_count_cap() {
        let mut body = Vec::with_capacity(1 << 20);
        let mut i = 0u32;
        while body.len() < (1 << 20) {
            body.extend_from_slice(format!("{:x}&", i).as_bytes());
            i += 1;
        }
        assert_eq!(Params::parse(&body, &[]).unwrap_err(), ParamsError::TooMany);
        // Even with every name repeatable (no cap on repeats), the work stays linear.
        let repeated = "a=1&".repeat(1 << 18);
        assert_eq!(
            Params::parse(repeated.as_bytes(), &["a"]).unwrap_err(),
            ParamsError::TooMany
        );
    }
}

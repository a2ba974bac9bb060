//! Mainland mobile numbers: eleven digits starting 13–19, optionally written with +86 and separators.

use std::fmt;

use super::{Field, Invalid, Problem, halfwidth};

/// A checked mainland mobile number. `Debug`/`Display` show it masked (`138****5678`).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PhoneNumber(String);

impl PhoneNumber {
    /// Normalises (full-width digits, spaces, dashes, a +86 or 0086 prefix) and checks.
    pub fn parse(input: &str) -> Result<Self, Invalid> {
        let err = |p| Invalid::new(Field::Phone, p);
        let mut s: String = input
            .chars()
            .map(halfwidth)
            .filter(|c| !matches!(c, ' ' | '-' | '(' | ')' | '\u{2010}'..='\u{2015}'))
            .collect();
        if s.is_empty() {
            return Err(err(Problem::Missing));
        }
        for prefix in ["+86", "0086"] {
            if let Some(rest) = s.strip_prefix(prefix) {
                s = rest.to_owned();
            }
        }
        if !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(err(Problem::NotMobileNumber));
        }
        let b = s.as_bytes();
        if b.len() != 11 || b[0] != b'1' || !(b'3'..=b'9').contains(&b[1]) {
            return Err(err(Problem::NotMobileNumber));
        }
        Ok(Self(s))
    }

    pub(crate) fn from_stored(s: String) -> Self {
        Self(s)
    }

    /// The full number, for the document and an audited reveal.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The number as shown on screens.
    pub fn masked(&self) -> String {
        match (self.0.get(..3), self.0.get(7..)) {
            (Some(a), Some(b)) if self.0.len() == 11 => format!("{a}****{b}"),
            _ => "*".repeat(self.0.len()),
        }
    }
}

impl fmt::Debug for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PhoneNumber({})", self.masked())
    }
}

impl fmt::Display for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_table() {
        let rows: &[(&str, &str, Option<&str>)] = &[
            ("plain", "13812345678", Some("13812345678")),
            ("with +86", "+86 138 1234 5678", Some("13812345678")),
            (
                "with 0086 and dashes",
                "0086-138-1234-5678",
                Some("13812345678"),
            ),
            ("full-width", "１３８１２３４５６７８", Some("13812345678")),
            ("19x prefix", "19912345678", Some("19912345678")),
            ("10 digits", "1381234567", None),
            ("12 digits", "138123456789", None),
            ("landline", "07712345678", None),
            ("12x prefix", "12812345678", None),
            ("letters", "1381234567a", None),
        ];
        for (what, input, expected) in rows {
            let got = PhoneNumber::parse(input);
            match expected {
                Some(n) => assert_eq!(
                    got.as_ref().map(PhoneNumber::expose).ok(),
                    Some(*n),
                    "{what}"
                ),
                None => assert_eq!(
                    got.err(),
                    Some(Invalid::new(Field::Phone, Problem::NotMobileNumber)),
                    "{what}"
                ),
            }
        }
        assert_eq!(
            PhoneNumber::parse("  ").err(),
            Some(Invalid::new(Field::Phone, Problem::Missing))
        );
    }

    #[test]
    fn masked() {
        let p = PhoneNumber::parse("13812345678").expect("valid");
        assert_eq!(p.masked(), "138****5678");
        assert_eq!(format!("{p:?}"), "PhoneNumber(138****5678)");
    }
}

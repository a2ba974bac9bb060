//! The 18-digit resident ID number (GB 11643-1999): six digits of region, eight of birth date, three
//! of sequence (odd for men), one check character.

use std::fmt;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::{Field, Invalid, Problem, halfwidth};

const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
const CHECK: [u8; 11] = *b"10X98765432";
/// Province-level prefixes in use (GB/T 2260), including Hong Kong, Macao and Taiwan residence permits.
const PROVINCES: &[&str] = &[
    "11", "12", "13", "14", "15", "21", "22", "23", "31", "32", "33", "34", "35", "36", "37", "41",
    "42", "43", "44", "45", "46", "50", "51", "52", "53", "54", "61", "62", "63", "64", "65", "71",
    "81", "82", "83",
];

/// Sex as encoded in the ID number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sex {
    /// Odd sequence digit.
    Male,
    /// Even sequence digit.
    Female,
}

impl Sex {
    /// The Chinese label.
    pub fn label_zh(&self) -> &'static str {
        match self {
            Sex::Male => "男",
            Sex::Female => "女",
        }
    }
}

/// A checked, normalised ID number (uppercase X, ASCII digits). Its `Debug` and `Display` print only
/// the masked form, so it cannot leak into a log by accident.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct IdNumber(String);

impl IdNumber {
    /// Normalises and checks `input` against the standard; `today` bounds the birth date.
    pub fn parse(input: &str, today: NaiveDate) -> Result<Self, Invalid> {
        let err = |p| Invalid::new(Field::IdNumber, p);
        let s: String = input
            .chars()
            .map(halfwidth)
            .filter(|c| !c.is_whitespace())
            .map(|c| c.to_ascii_uppercase())
            .collect();
        if s.is_empty() {
            return Err(err(Problem::Missing));
        }
        let n = s.chars().count();
        if n == 15 && s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(err(Problem::FirstGenerationIdNumber));
        }
        if n != 18 {
            return Err(err(Problem::WrongLength {
                expected: 18,
                found: n,
            }));
        }
        let b = s.as_bytes();
        if !b[..17].iter().all(u8::is_ascii_digit) || !(b[17].is_ascii_digit() || b[17] == b'X') {
            return Err(err(Problem::NotDigits));
        }
        if &s[..6] == "000000" || !PROVINCES.contains(&&s[..2]) {
            return Err(err(Problem::BadRegion));
        }
        let birth = NaiveDate::parse_from_str(&s[6..14], "%Y%m%d")
            .map_err(|_| err(Problem::BadBirthDate))?;
        if birth < NaiveDate::from_ymd_opt(1900, 1, 1).unwrap_or(NaiveDate::MIN) {
            return Err(err(Problem::BadBirthDate));
        }
        if birth > today {
            return Err(err(Problem::BirthDateInFuture));
        }
        let sum: u32 = b[..17]
            .iter()
            .zip(WEIGHTS)
            .map(|(d, w)| u32::from(d - b'0') * w)
            .sum();
        if CHECK[(sum % 11) as usize] != b[17] {
            return Err(err(Problem::BadCheckDigit));
        }
        Ok(Self(s))
    }

    /// Wraps a number read back from a document, which was checked when it was written.
    pub(crate) fn from_stored(s: String) -> Self {
        Self(s)
    }

    /// The full number. Only for the document, the blind index and an audited reveal.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The number as shown on screens: region and last four kept, `450802********123X`.
    pub fn masked(&self) -> String {
        if self.0.len() != 18 {
            return "*".repeat(self.0.chars().count());
        }
        format!("{}********{}", &self.0[..6], &self.0[14..])
    }

    /// Birth date encoded in the number.
    pub fn birth_date(&self) -> Option<NaiveDate> {
        NaiveDate::parse_from_str(self.0.get(6..14)?, "%Y%m%d").ok()
    }

    /// Sex encoded in the number.
    pub fn sex(&self) -> Option<Sex> {
        let d = self.0.as_bytes().get(16)?;
        Some(if (d - b'0') % 2 == 1 {
            Sex::Male
        } else {
            Sex::Female
        })
    }

    /// The six-digit region where the number was issued.
    pub fn region(&self) -> &str {
        self.0.get(..6).unwrap_or("")
    }
}

impl fmt::Debug for IdNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IdNumber({})", self.masked())
    }
}

impl fmt::Display for IdNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

/// Computes the check character for 17 digits; for building valid numbers in tests and fixtures.
pub fn check_char(first17: &str) -> Option<char> {
    let b = first17.as_bytes();
    if b.len() != 17 || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let sum: u32 = b
        .iter()
        .zip(WEIGHTS)
        .map(|(d, w)| u32::from(d - b'0') * w)
        .sum();
    Some(CHECK[(sum % 11) as usize] as char)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 22).unwrap_or_default()
    }

    fn valid(first17: &str) -> String {
        format!("{first17}{}", check_char(first17).unwrap_or('?'))
    }

    /// Every rule of the standard and every normalisation, one row each.
    #[test]
    fn validation_table() {
        let good = valid("45080219900307123"); // check char computed
        let with_x = "11010519491231002X"; // a published example whose check character is X
        let fullwidth: String = good
            .chars()
            .map(|c| char::from_u32(c as u32 + 0xFEE0).unwrap_or(c))
            .collect();
        let mut wrong_check = good.clone();
        let last = wrong_check.pop().unwrap_or('0');
        wrong_check.push(if last == '1' { '2' } else { '1' });
        let future = valid("45080220991231123");
        let impossible = valid("45080219490230123");
        let region0 = valid("00000019900307123");
        let unknown_province = valid("99080219900307123");
        let too_old = valid("45080218991231123");

        let rows: Vec<(&str, String, Result<&str, Problem>)> = vec![
            ("valid", good.clone(), Ok(good.as_str())),
            ("check character X", with_x.into(), Ok(with_x)),
            ("lowercase x normalised", with_x.to_lowercase(), Ok(with_x)),
            ("full-width digits normalised", fullwidth, Ok(good.as_str())),
            (
                "spaces removed",
                format!(" {} {} ", &good[..6], &good[6..]),
                Ok(good.as_str()),
            ),
            ("empty", "".into(), Err(Problem::Missing)),
            (
                "wrong check digit",
                wrong_check,
                Err(Problem::BadCheckDigit),
            ),
            (
                "15 digits",
                "450802900307123".into(),
                Err(Problem::FirstGenerationIdNumber),
            ),
            (
                "17 characters",
                good[..17].into(),
                Err(Problem::WrongLength {
                    expected: 18,
                    found: 17,
                }),
            ),
            (
                "19 characters",
                format!("{good}1"),
                Err(Problem::WrongLength {
                    expected: 18,
                    found: 19,
                }),
            ),
            (
                "letter inside",
                format!("4508021990A307123{}", "1"),
                Err(Problem::NotDigits),
            ),
            (
                "impossible date 19490230",
                impossible,
                Err(Problem::BadBirthDate),
            ),
            ("future birth date", future, Err(Problem::BirthDateInFuture)),
            ("born before 1900", too_old, Err(Problem::BadBirthDate)),
            ("region 000000", region0, Err(Problem::BadRegion)),
            (
                "unknown province",
                unknown_province,
                Err(Problem::BadRegion),
            ),
        ];
        for (what, input, expected) in rows {
            let got = IdNumber::parse(&input, today());
            match expected {
                Ok(norm) => assert_eq!(
                    got.as_ref().map(IdNumber::expose).ok(),
                    Some(norm),
                    "row '{what}'"
                ),
                Err(problem) => assert_eq!(
                    got.err(),
                    Some(Invalid::new(Field::IdNumber, problem)),
                    "row '{what}'"
                ),
            }
        }
    }

    #[test]
    fn derived_fields_and_masking() {
        let id = IdNumber::parse(&valid("45080219900307123"), today()).expect("valid");
        assert_eq!(id.birth_date(), NaiveDate::from_ymd_opt(1990, 3, 7));
        assert_eq!(id.sex(), Some(Sex::Male)); // 3 is odd
        assert_eq!(id.region(), "450802");
        let masked = id.masked();
        assert!(masked.starts_with("450802********"));
        assert_eq!(masked.len(), 18);
        assert!(!format!("{id:?} {id}").contains("19900307"));
        let f = IdNumber::parse(&valid("45080219900307124"), today()).expect("valid");
        assert_eq!(f.sex(), Some(Sex::Female));
    }
}

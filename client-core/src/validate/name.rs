//! Real names (实名) and other free text: Unicode NFC, invisible and direction-changing characters
//! removed, white space folded, a length cap, and 「·」 kept (and its look-alikes unified) for names
//! such as 买买提·艾力.

use std::fmt;

use unicode_normalization::UnicodeNormalization;

use super::{Field, Invalid, Problem};

/// Longest real name accepted, in characters.
pub const NAME_MAX_CHARS: usize = 40;
/// The middle dot used between the parts of transliterated minority names.
const MIDDLE_DOT: char = '\u{00B7}';

/// A checked real name. `Debug` shows it masked.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PersonName(String);

/// Characters that change nothing visible or reorder text: zero-width and bidi controls, BOM.
fn is_invisible(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}' | '\u{17B5}'
            | '\u{180B}'..='\u{180F}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{206F}' | '\u{3164}' | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}'
            | '\u{FFA0}' | '\u{FFF0}'..='\u{FFFB}' | '\u{E0000}'..='\u{E007F}')
}

/// NFC, invisible characters dropped, runs of white space folded to one space, trimmed.
pub fn clean_text(input: &str) -> String {
    let mut out = String::with_capacity(input.len());
    let mut pending_space = false;
    for c in input
        .nfc()
        .filter(|c| !is_invisible(*c) || *c == '\t' || *c == '\n')
    {
        if c.is_whitespace() {
            pending_space = !out.is_empty();
            continue;
        }
        if pending_space {
            out.push(' ');
            pending_space = false;
        }
        out.push(c);
    }
    out
}

/// Checks free text (a title, a venue, a reason): cleaned, required, capped.
pub(crate) fn text_field(field: Field, input: &str, max_chars: usize) -> Result<String, Invalid> {
    let s = clean_text(input);
    if s.is_empty() {
        return Err(Invalid::new(field, Problem::Missing));
    }
    if s.chars().count() > max_chars {
        return Err(Invalid::new(field, Problem::TooLong { max_chars }));
    }
    Ok(s)
}

impl PersonName {
    /// Cleans and checks a real name: letters (any script), combining marks, spaces and 「·」 only.
    pub fn parse(input: &str) -> Result<Self, Invalid> {
        let err = |p| Invalid::new(Field::Name, p);
        let s: String = clean_text(input)
            .chars()
            .map(|c| match c {
                // Look-alikes of the middle dot typed on phones and PCs.
                '\u{2022}' | '\u{2027}' | '\u{30FB}' | '\u{FF65}' | '\u{22C5}' | '\u{2219}'
                | '\u{FF0E}' | '.' => MIDDLE_DOT,
                c => c,
            })
            .collect();
        let s = s.trim_matches(MIDDLE_DOT).trim().to_owned();
        if s.is_empty() {
            return Err(err(Problem::Missing));
        }
        if s.chars().count() > NAME_MAX_CHARS {
            return Err(err(Problem::TooLong {
                max_chars: NAME_MAX_CHARS,
            }));
        }
        if !s
            .chars()
            .all(|c| c.is_alphabetic() || c == ' ' || c == MIDDLE_DOT || is_mark(c))
        {
            return Err(err(Problem::DisallowedCharacters));
        }
        Ok(Self(s))
    }

    pub(crate) fn from_stored(s: String) -> Self {
        Self(s)
    }

    /// The full name.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The first character kept, the rest starred, parts after 「·」 likewise: 张**, 买**·艾*.
    pub fn masked(&self) -> String {
        self.0
            .split(MIDDLE_DOT)
            .map(|part| {
                let mut chars = part.chars();
                match chars.next() {
                    Some(first) => {
                        let mut out = first.to_string();
                        out.extend(chars.map(|c| if c == ' ' { ' ' } else { '*' }));
                        out
                    }
                    None => String::new(),
                }
            })
            .collect::<Vec<_>>()
            .join("·")
    }
}

/// Combining marks, which names in several scripts need (Unicode categories Mn, Mc, Me).
fn is_mark(c: char) -> bool {
    // NFC leaves few marks; these ranges cover the combining blocks used by Latin, Arabic (Uyghur)
    // and Tibetan names.
    matches!(c, '\u{0300}'..='\u{036F}' | '\u{0610}'..='\u{061A}' | '\u{064B}'..='\u{065F}'
        | '\u{0670}' | '\u{06D6}'..='\u{06ED}' | '\u{0F18}'..='\u{0F19}' | '\u{0F35}' | '\u{0F37}'
        | '\u{0F39}' | '\u{0F71}'..='\u{0F84}' | '\u{0F86}'..='\u{0F87}' | '\u{0F8D}'..='\u{0FBC}'
        | '\u{1AB0}'..='\u{1AFF}' | '\u{1DC0}'..='\u{1DFF}' | '\u{20D0}'..='\u{20FF}')
}

impl fmt::Debug for PersonName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PersonName({})", self.masked())
    }
}

impl fmt::Display for PersonName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_table() {
        let long = "李".repeat(2000);
        let rows: Vec<(&str, String, Result<&str, Problem>)> = vec![
            ("plain", "张三".into(), Ok("张三")),
            ("trimmed", "  张三 \u{3000}".into(), Ok("张三")),
            (
                "zero-width removed",
                "张\u{200B}三\u{FEFF}".into(),
                Ok("张三"),
            ),
            (
                "direction override removed",
                "\u{202E}张三\u{202C}".into(),
                Ok("张三"),
            ),
            ("control removed", "张\u{0007}三".into(), Ok("张三")),
            (
                "minority name with ·",
                "买买提·艾力".into(),
                Ok("买买提·艾力"),
            ),
            (
                "look-alike dot unified",
                "买买提•艾力".into(),
                Ok("买买提·艾力"),
            ),
            (
                "katakana dot unified",
                "买买提・艾力".into(),
                Ok("买买提·艾力"),
            ),
            ("NFC applied", "Jose\u{0301}".into(), Ok("Jos\u{00E9}")),
            ("inner spaces folded", "Anna   Li".into(), Ok("Anna Li")),
            (
                "2,000 characters",
                long,
                Err(Problem::TooLong {
                    max_chars: NAME_MAX_CHARS,
                }),
            ),
            ("emoji", "张三😀".into(), Err(Problem::DisallowedCharacters)),
            ("digits", "张三2".into(), Err(Problem::DisallowedCharacters)),
            (
                "only invisible",
                "\u{200B}\u{200D}".into(),
                Err(Problem::Missing),
            ),
            ("empty", "".into(), Err(Problem::Missing)),
        ];
        for (what, input, expected) in rows {
            let got = PersonName::parse(&input);
            match expected {
                Ok(s) => assert_eq!(
                    got.as_ref().map(PersonName::expose).ok(),
                    Some(s),
                    "row '{what}'"
                ),
                Err(p) => assert_eq!(
                    got.err(),
                    Some(Invalid::new(Field::Name, p)),
                    "row '{what}'"
                ),
            }
        }
    }

    #[test]
    fn masking() {
        let n = PersonName::parse("买买提·艾力").expect("valid");
        assert_eq!(n.masked(), "买**·艾*");
        assert_eq!(PersonName::parse("张三").expect("valid").masked(), "张*");
        assert_eq!(
            format!("{:?}", PersonName::parse("王小明").expect("valid")),
            "PersonName(王**)"
        );
    }

    #[test]
    fn free_text() {
        assert_eq!(
            text_field(Field::Title, " 中式 \u{200B}烹调 ", 10)
                .ok()
                .as_deref(),
            Some("中式 烹调")
        );
        assert_eq!(
            text_field(Field::Title, "", 10).err(),
            Some(Invalid::new(Field::Title, Problem::Missing))
        );
        assert_eq!(
            text_field(Field::Title, &"x".repeat(11), 10).err(),
            Some(Invalid::new(
                Field::Title,
                Problem::TooLong { max_chars: 10 }
            ))
        );
    }
}

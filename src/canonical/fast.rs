//! The canonicalizer's fast path: a JSON tokenizer that drives the same visitors as
//! serde_json's parser, over text already checked to be UTF-8.
//!
//! It is faster on datasets because it checks UTF-8 once for the whole text rather than once
//! per string, and reads integers of up to 18 digits without going through serde_json's number
//! parser, and does nothing else: every error, and anything it is not sure about, is
//! [`GiveUp`], and the caller parses the text again with serde_json, which decides and words
//! the error. So it must never accept a text serde_json rejects, and must make the same
//! visitor calls serde_json makes on every text it accepts; numbers that are not short
//! integers (the rare part, and the subtle one) are handed to serde_json one token at a time.
//! `tests::fast_path_agrees_with_serde_json` checks both on generated and damaged texts.

use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};

/// The fast path stopped; the text has to go through serde_json.
#[derive(Debug)]
pub struct GiveUp;

impl fmt::Display for GiveUp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the fast JSON path gave up")
    }
}

impl std::error::Error for GiveUp {}

impl de::Error for GiveUp {
    fn custom<T: fmt::Display>(_: T) -> Self {
        GiveUp
    }
}

/// Deeper texts are left to serde_json, which allows 127 levels (and rejects more, with its
/// own error).
const MAX_DEPTH: usize = 100;

/// Bytes that end the plain run of a string: the closing quote, an escape, a control character.
static STRING_STOP: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 0x20 {
        t[b] = true;
        b += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t
};

pub struct Parser<'de> {
    text: &'de str,
    at: usize,
    depth: usize,
}

impl<'de> Parser<'de> {
    pub fn new(text: &'de str) -> Self {
        Parser {
            text,
            at: 0,
            depth: 0,
        }
    }

    /// After the top-level value: only whitespace may follow.
    pub fn end(&mut self) -> Result<(), GiveUp> {
        match self.peek() {
            None => Ok(()),
            Some(_) => Err(GiveUp),
        }
    }

    /// The next byte that is not JSON whitespace, not consumed.
    fn peek(&mut self) -> Option<u8> {
        let b = self.text.as_bytes();
        while let Some(&c) = b.get(self.at) {
            if !matches!(c, b' ' | b'\n' | b'\t' | b'\r') {
                return Some(c);
            }
            self.at += 1;
        }
        None
    }

    fn literal(&mut self, word: &[u8]) -> Result<(), GiveUp> {
        let b = self.text.as_bytes();
        if b.get(self.at..self.at + word.len()) == Some(word) {
            self.at += word.len();
            Ok(())
        } else {
            Err(GiveUp)
        }
    }

    /// The string starting at the current quote: borrowed when it has no escapes (then it
    /// holds no quote, backslash or control character either), else decoded.
    fn string<V: Visitor<'de>>(&mut self, visitor: V) -> Result<V::Value, GiveUp> {
        let b = self.text.as_bytes();
        let start = self.at + 1;
        let mut j = start;
        while j < b.len() && !STRING_STOP[b[j] as usize] {
            j += 1;
        }
        match b.get(j) {
            Some(b'"') => {
                self.at = j + 1;
                visitor.visit_borrowed_str(self.text.get(start..j).ok_or(GiveUp)?)
            }
            Some(b'\\') => {
                let mut decoded = String::with_capacity(j - start + 16);
                decoded.push_str(self.text.get(start..j).ok_or(GiveUp)?);
                loop {
                    match *b.get(j).ok_or(GiveUp)? {
                        b'"' => break,
                        b'\\' => j = unescape(b, j, &mut decoded)?,
                        c if c < 0x20 => return Err(GiveUp),
                        _ => {
                            let run = j;
                            while j < b.len() && !STRING_STOP[b[j] as usize] {
                                j += 1;
                            }
                            decoded.push_str(self.text.get(run..j).ok_or(GiveUp)?);
                        }
                    }
                }
                self.at = j + 1;
                visitor.visit_string(decoded)
            }
            _ => Err(GiveUp),
        }
    }

    /// A number: an integer of at most 18 digits is read here (it fits `u64` and `i64`, as
    /// serde_json would read it); any other token is read by serde_json.
    fn number<V: Visitor<'de>>(&mut self, visitor: V) -> Result<V::Value, GiveUp> {
        let b = self.text.as_bytes();
        let start = self.at;
        let mut j = start;
        while j < b.len() && matches!(b[j], b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E') {
            j += 1;
        }
        self.at = j;
        let token = &b[start..j];
        let (negative, digits) = match token {
            [b'-', rest @ ..] => (true, rest),
            _ => (false, token),
        };
        let short_integer = matches!(digits.len(), 1..=18)
            && digits.iter().all(u8::is_ascii_digit)
            // No leading zero; and "-0" is a float to serde_json.
            && (digits[0] != b'0' || (digits.len() == 1 && !negative));
        if short_integer {
            let n = digits
                .iter()
                .fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
            return if negative {
                visitor.visit_i64(-(n as i64))
            } else {
                visitor.visit_u64(n)
            };
        }
        let text = self.text.get(start..j).ok_or(GiveUp)?;
        let n: serde_json::Number = serde_json::from_str(text).map_err(|_| GiveUp)?;
        if let Some(u) = n.as_u64() {
            visitor.visit_u64(u)
        } else if let Some(i) = n.as_i64() {
            visitor.visit_i64(i)
        } else {
            visitor.visit_f64(n.as_f64().ok_or(GiveUp)?)
        }
    }

    /// An object or array, from its opening bracket: `visit` reads its items.
    fn container<T>(
        &mut self,
        visit: impl FnOnce(&mut Items<'_, 'de>) -> Result<T, GiveUp>,
    ) -> Result<T, GiveUp> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(GiveUp);
        }
        self.at += 1;
        let mut items = Items {
            parser: &mut *self,
            first: true,
            closed: false,
        };
        let value = visit(&mut items)?;
        // A visitor that stopped early left the container unread.
        if !items.closed {
            return Err(GiveUp);
        }
        self.depth -= 1;
        Ok(value)
    }
}

/// Decodes the escape sequence at `b[at]` (a backslash) into `out`; returns where it ends. A
/// `\u` escape of a surrogate must be the first of a pair; serde_json decides the rest.
fn unescape(b: &[u8], at: usize, out: &mut String) -> Result<usize, GiveUp> {
    let c = match *b.get(at + 1).ok_or(GiveUp)? {
        b'"' => '"',
        b'\\' => '\\',
        b'/' => '/',
        b'b' => '\u{8}',
        b'f' => '\u{c}',
        b'n' => '\n',
        b'r' => '\r',
        b't' => '\t',
        b'u' => {
            let unit = hex4(b, at + 2)?;
            if !(0xD800..0xDC00).contains(&unit) {
                // A lone trailing surrogate is no char: `from_u32` refuses it.
                out.push(char::from_u32(unit).ok_or(GiveUp)?);
                return Ok(at + 6);
            }
            if b.get(at + 6..at + 8) != Some(b"\\u") {
                return Err(GiveUp);
            }
            let low = hex4(b, at + 8)?;
            if !(0xDC00..0xE000).contains(&low) {
                return Err(GiveUp);
            }
            out.push(
                char::from_u32(0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00)).ok_or(GiveUp)?,
            );
            return Ok(at + 12);
        }
        _ => return Err(GiveUp),
    };
    out.push(c);
    Ok(at + 2)
}

/// The four hex digits at `b[at..]`, as a UTF-16 code unit.
fn hex4(b: &[u8], at: usize) -> Result<u32, GiveUp> {
    let digits = b.get(at..at + 4).ok_or(GiveUp)?;
    digits.iter().try_fold(0u32, |n, &d| {
        let v = (d as char).to_digit(16).ok_or(GiveUp)?;
        Ok(n * 16 + v)
    })
}

impl<'de> de::Deserializer<'de> for &mut Parser<'de> {
    type Error = GiveUp;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, GiveUp> {
        match self.peek().ok_or(GiveUp)? {
            b'{' => self.container(|items| visitor.visit_map(items)),
            b'[' => self.container(|items| visitor.visit_seq(items)),
            b'"' => self.string(visitor),
            b'-' | b'0'..=b'9' => self.number(visitor),
            b't' => {
                self.literal(b"true")?;
                visitor.visit_bool(true)
            }
            b'f' => {
                self.literal(b"false")?;
                visitor.visit_bool(false)
            }
            b'n' => {
                self.literal(b"null")?;
                visitor.visit_unit()
            }
            _ => Err(GiveUp),
        }
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map struct enum identifier ignored_any
    }
}

/// The members of an object or the elements of an array, after the opening bracket.
struct Items<'a, 'de> {
    parser: &'a mut Parser<'de>,
    first: bool,
    /// The closing bracket was read.
    closed: bool,
}

impl Items<'_, '_> {
    /// Reads up to the next item, or the closing bracket `close` (then `false`).
    fn next(&mut self, close: u8) -> Result<bool, GiveUp> {
        if self.closed {
            return Err(GiveUp);
        }
        let c = self.parser.peek().ok_or(GiveUp)?;
        if c == close {
            self.parser.at += 1;
            self.closed = true;
            return Ok(false);
        }
        if !std::mem::take(&mut self.first) {
            if c != b',' {
                return Err(GiveUp);
            }
            // After a comma the item must be there: a closing bracket is neither a value nor
            // a name, so reading the item gives up on a trailing comma.
            self.parser.at += 1;
        }
        Ok(true)
    }
}

impl<'de> MapAccess<'de> for Items<'_, 'de> {
    type Error = GiveUp;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, GiveUp> {
        if !self.next(b'}')? {
            return Ok(None);
        }
        if self.parser.peek() != Some(b'"') {
            return Err(GiveUp);
        }
        let key = seed.deserialize(Name(&mut *self.parser))?;
        if self.parser.peek() != Some(b':') {
            return Err(GiveUp);
        }
        self.parser.at += 1;
        Ok(Some(key))
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, GiveUp> {
        seed.deserialize(&mut *self.parser)
    }
}

impl<'de> SeqAccess<'de> for Items<'_, 'de> {
    type Error = GiveUp;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, GiveUp> {
        if !self.next(b']')? {
            return Ok(None);
        }
        seed.deserialize(&mut *self.parser).map(Some)
    }
}

/// A member name: a string whatever the visitor asks for, as serde_json's key deserializer.
struct Name<'a, 'de>(&'a mut Parser<'de>);

impl<'de> de::Deserializer<'de> for Name<'_, 'de> {
    type Error = GiveUp;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, GiveUp> {
        self.0.string(visitor)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map struct enum identifier ignored_any
    }
}

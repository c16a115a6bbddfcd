//! The common event read without serde: an object whose strings have no escapes, whose numbers
//! are integers of up to 18 digits, nested objects a few deep, no arrays. That is what
//! producers of audit events write, and reading it by hand is twice as fast as
//! serde_json's visitor (profiled: its string scanning and map access were half of an events
//! run). Anything else is left to serde_json ([`flatten`] returns `None` having judged
//! nothing), so what the two accept and what they make of it are the same: a property test
//! holds them to it.

use super::{Flat, FlatField, Text};

/// Nested objects deeper than this are left to serde_json (which limits depth itself).
const MAX_DEPTH: usize = 16;

/// Flatten the object `event` into `flat` (cleared first) as serde_json's path does, or
/// `None` when `event` is not of the common form (or not valid JSON): `flat` is then
/// unspecified and the caller reads `event` with serde_json.
pub(super) fn flatten(event: &str, flat: &mut Flat) -> Option<()> {
    flat.clear();
    let mut s = Scan {
        text: event,
        b: event.as_bytes(),
        i: 0,
    };
    s.space();
    s.object(flat, (0, 0), 0)?;
    s.space();
    (s.i == s.b.len()).then_some(())
}

/// One in each byte of a word.
const ONES: u64 = 0x0101_0101_0101_0101;
/// The high bit of each byte of a word.
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// Non-zero when a byte of `w` is zero.
fn has_zero(w: u64) -> u64 {
    w.wrapping_sub(ONES) & !w & HIGHS
}

/// Non-zero when a byte of `w` is below `n` (at most 128).
fn has_less(w: u64, n: u64) -> u64 {
    w.wrapping_sub(ONES * n) & !w & HIGHS
}

struct Scan<'a> {
    text: &'a str,
    /// `text`'s bytes.
    b: &'a [u8],
    i: usize,
}

impl Scan<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn space(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.i += 1;
        }
    }

    fn expect(&mut self, c: u8) -> Option<()> {
        (self.peek()? == c).then(|| self.i += 1)
    }

    /// An object at `{`, its fields flattened under `prefix`.
    fn object(&mut self, flat: &mut Flat, prefix: (usize, usize), depth: usize) -> Option<()> {
        if depth >= MAX_DEPTH {
            return None;
        }
        self.expect(b'{')?;
        self.space();
        if self.peek()? == b'}' {
            self.i += 1;
            return Some(());
        }
        loop {
            self.space();
            let (ks, ke) = self.string()?;
            let start = flat.names.len();
            if prefix.1 > prefix.0 {
                flat.names.extend_from_within(prefix.0..prefix.1);
                flat.names.push('.');
            }
            // Between two ASCII quotes: whole characters of the text.
            flat.names.push_str(&self.text[ks..ke]);
            let name = (start, flat.names.len());
            self.space();
            self.expect(b':')?;
            self.space();
            match self.peek()? {
                b'"' => {
                    let (s, e) = self.string()?;
                    let value = (e > s).then_some(Text::Event(s, e));
                    flat.fields.push(FlatField { name, value });
                }
                b'{' => self.object(flat, name, depth + 1)?,
                b'-' | b'0'..=b'9' => {
                    // serde_json writes such an integer back as it is written here.
                    let (s, e) = self.integer()?;
                    let value = Some(Text::Event(s, e));
                    flat.fields.push(FlatField { name, value });
                }
                b't' => self.literal(flat, name, b"true", true)?,
                b'f' => self.literal(flat, name, b"false", true)?,
                b'n' => self.literal(flat, name, b"null", false)?,
                _ => return None,
            }
            self.space();
            match self.peek()? {
                b',' => self.i += 1,
                b'}' => {
                    self.i += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// A string at `"` without escapes or control characters: the range of its contents.
    fn string(&mut self) -> Option<(usize, usize)> {
        self.expect(b'"')?;
        let start = self.i;
        let b = self.b;
        let mut i = start;
        // Eight bytes at a time while none is a quote, a backslash or a control character.
        while let Some(word) = b.get(i..i + 8) {
            let w = u64::from_le_bytes(word.try_into().expect("8 bytes"));
            let stop = has_zero(w ^ (ONES * u64::from(b'"')))
                | has_zero(w ^ (ONES * u64::from(b'\\')))
                | has_less(w, 0x20);
            if stop != 0 {
                break;
            }
            i += 8;
        }
        while let Some(&c) = b.get(i) {
            match c {
                b'"' => {
                    self.i = i + 1;
                    return Some((start, i));
                }
                b'\\' | 0..=0x1f => return None,
                _ => i += 1,
            }
        }
        None
    }

    /// An integer serde_json reads as an `i64` or `u64` and writes back as written: `0`, or
    /// up to 18 digits not starting with 0, maybe negative. (`-0`, fractions, exponents and
    /// longer numbers are left to serde_json, whose text for them differs from the input's.)
    fn integer(&mut self) -> Option<(usize, usize)> {
        let start = self.i;
        let negative = self.peek()? == b'-';
        if negative {
            self.i += 1;
        }
        let digits = self.b[self.i..]
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .count();
        let first = *self.b.get(self.i)?;
        let plain = match (first, digits) {
            (b'0', 1) => !negative,
            (b'1'..=b'9', 1..=18) => true,
            _ => false,
        };
        self.i += digits;
        let next_is_number = matches!(self.peek(), Some(b'.' | b'e' | b'E'));
        (plain && !next_is_number).then_some((start, self.i))
    }

    /// `true` or `false` (its text, `valued`), or `null`.
    fn literal(
        &mut self,
        flat: &mut Flat,
        name: (usize, usize),
        word: &[u8],
        valued: bool,
    ) -> Option<()> {
        self.b[self.i..].starts_with(word).then_some(())?;
        let start = self.i;
        self.i += word.len();
        let value = valued.then_some(Text::Event(start, self.i));
        flat.fields.push(FlatField { name, value });
        Some(())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::parse::events::slow_flatten;

    /// An event's fields: names and values.
    type Fields = Vec<(String, Option<String>)>;

    /// The fields of `flat` (of `event`).
    fn fields(flat: &Flat, event: &str) -> Fields {
        flat.fields
            .iter()
            .map(|f| {
                (
                    flat.name(f).to_owned(),
                    flat.value(event, f).map(str::to_owned),
                )
            })
            .collect()
    }

    /// Both readers on `event`: the fast one's fields when it reads it, and serde_json's.
    fn both(event: &str) -> (Option<Fields>, Option<Fields>) {
        let mut flat = Flat::default();
        let fast = flatten(event, &mut flat).map(|()| fields(&flat, event));
        let mut flat = Flat::default();
        let slow = slow_flatten(event, &mut flat)
            .ok()
            .map(|()| fields(&flat, event));
        (fast, slow)
    }

    #[test]
    fn the_common_event_is_read_here_and_as_serde_json_reads_it() {
        let event = r#" {"timestamp":"2024-03-01T10:00:00Z", "user":"u@acme.test","n":-42,"ok":true,
            "no":false,"gone":null,"empty":"","detail":{"note":"note, 7","deep":{"x":0}},"e":{}} "#;
        let (fast, slow) = both(event);
        assert_eq!(fast, slow);
        let fast = fast.unwrap();
        assert_eq!(fast.len(), 9, "{fast:?}");
        assert_eq!(fast[7], ("detail.note".into(), Some("note, 7".into())));
        assert_eq!(fast[8], ("detail.deep.x".into(), Some("0".into())));
        assert_eq!(fast[5], ("gone".into(), None));
        assert_eq!(fast[6], ("empty".into(), None));
    }

    #[test]
    fn anything_else_is_left_to_serde_json() {
        for event in [
            r#"{"a":"x\"y"}"#,
            r#"{"a\n":1}"#,
            r#"{"a":[1,2]}"#,
            r#"{"a":1.5}"#,
            r#"{"a":1e3}"#,
            r#"{"a":-0}"#,
            r#"{"a":01}"#,
            r#"{"a":1234567890123456789}"#,
            r#"{"a":"tab	here"}"#,
            r#"{"a":1,}"#,
            r#"{"a":1} x"#,
            r#"{"a" 1}"#,
            r#"{"a":tru}"#,
            r#"{"a":nul"#,
            r#"[1]"#,
            r#""s""#,
            "",
            r#"{"a":{"b":{"c":{"d":{"e":{"f":{"g":{"h":{"i":{"j":{"k":{"l":{"m":{"n":{"o":{"p":{"q":1}}}}}}}}}}}}}}}}}"#,
        ] {
            let (fast, _) = both(event);
            assert_eq!(fast, None, "{event}");
        }
    }

    #[test]
    fn a_string_ends_at_its_quote_and_stops_at_any_escape_or_control_byte_wherever_it_is() {
        for at in 0..24 {
            let head = "é".repeat(at / 2) + &"a".repeat(at % 2);
            let event = format!("{{\"k\":\"{head}\",\"n\":1}}");
            let (fast, slow) = both(&event);
            assert_eq!(fast, slow, "{event}");
            assert_eq!(
                fast.unwrap()[0].1.as_deref(),
                (!head.is_empty()).then_some(&*head)
            );
            for stop in ['\\', '\u{1f}', '\n'] {
                let event = format!("{{\"k\":\"{head}{stop}x\"}}");
                assert_eq!(both(&event).0, None, "{event:?}");
            }
        }
    }

    /// A JSON value as text: the kinds of values events hold, and some that take serde_json.
    fn value(depth: u32) -> BoxedStrategy<String> {
        let leaf = prop_oneof![
            "[a-z ,.@:é\"\\\\\u{1}/-]{0,12}".prop_map(|s| serde_json::to_string(&s).unwrap()),
            any::<i64>().prop_map(|n| n.to_string()),
            (0u64..1000).prop_map(|n| n.to_string()),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(|f| f.to_string()),
            Just("true".to_owned()),
            Just("false".to_owned()),
            Just("null".to_owned()),
            Just("[1,\"a\"]".to_owned()),
            Just("-0".to_owned()),
        ];
        if depth == 0 {
            return leaf.boxed();
        }
        prop_oneof![4 => leaf, 1 => object(depth - 1)].boxed()
    }

    fn object(depth: u32) -> BoxedStrategy<String> {
        prop::collection::vec(("[a-z_.\\-]{0,6}", value(depth), "[ \t]{0,1}"), 0..6)
            .prop_map(|fields| {
                let inner: Vec<String> = fields
                    .iter()
                    .map(|(k, v, sp)| {
                        format!("{sp}{}{sp}:{sp}{v}", serde_json::to_string(k).unwrap())
                    })
                    .collect();
                format!("{{{}}}", inner.join(","))
            })
            .boxed()
    }

    proptest! {
        /// Wherever the fast reader reads an event, it makes of it what serde_json makes.
        #[test]
        fn the_fast_reader_agrees_with_serde_json(event in object(3), cut in 0usize..200) {
            let (fast, slow) = both(&event);
            if let Some(fast) = fast {
                prop_assert_eq!(Some(fast), slow, "{}", event);
            }
            // And on any prefix of it (broken JSON): never a row serde_json would refuse.
            let cut = event.char_indices().map(|(i, _)| i).nth(cut).unwrap_or(event.len());
            let (fast, slow) = both(&event[..cut]);
            if let Some(fast) = fast {
                prop_assert_eq!(Some(fast), slow, "{}", &event[..cut]);
            }
        }
    }
}

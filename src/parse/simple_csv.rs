//! The common CSV record, split without csv-core.
//!
//! Almost every audit record is one line whose fields are plain or wholly quoted without an
//! escaped quote inside (`2024-03-03T19:50:58Z,user3163@acme.test,"note, 78163"`). csv-core
//! walks its state machine over every byte of such a line; this finds the line's commas and
//! quotes a word at a time ([`find_any`]) and gives each field's place in the line, for the
//! decoder to copy it once, straight into its column. A line it is not sure of
//! (an escaped quote, a quote left open, a lone `\r`, text after a closing quote) gets `None`,
//! and the caller gives it to csv-core, so what is decoded never depends on which path read it
//! (a property test compares the two).

use super::split::find_any;

/// A line [`simple_record`] split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Split {
    /// Fields found: `starts[..fields]` and `ends[..fields]` hold them.
    pub fields: usize,
    /// Every byte of the line is ASCII (so every field is UTF-8).
    pub ascii: bool,
}

/// Split `line` (one line, its `\n` excluded) as csv-core with its default settings splits a
/// record that ends at that `\n`. Field `i` is `line[starts[i]..ends[i]]`, exactly the bytes
/// csv-core would give for it (`starts` and `ends` are grown as needed); `hits` is scratch
/// space. Returns `None` when the line is not one this splitter reads.
///
/// The line must not start with `\r` or `\n` (csv-core skips those at a record's start).
pub fn simple_record(
    line: &[u8],
    hits: &mut Vec<usize>,
    starts: &mut Vec<usize>,
    ends: &mut Vec<usize>,
) -> Option<Split> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    hits.clear();
    let ascii = find_any(line, [b',', b'"', b'\r'], hits);
    if ends.len() <= hits.len() {
        ends.resize(hits.len() + 1, 0);
        starts.resize(hits.len() + 1, 0);
    }
    let mut fields = 0;
    let mut push = |from: usize, to: usize| {
        starts[fields] = from;
        ends[fields] = to;
        fields += 1;
    };
    let mut hits = hits.iter().copied();
    let mut start = 0;
    loop {
        if line.get(start) == Some(&b'"') {
            // Quoted: the opening quote is the next hit; the field runs to the next quote.
            hits.next();
            let close = hits.find(|&p| line[p] == b'"')?;
            push(start + 1, close);
            match line.get(close + 1) {
                None => return Some(Split { fields, ascii }),
                Some(b',') => {
                    hits.next();
                    start = close + 2;
                }
                // An escaped quote (`""`), `\r`, or text after the closing quote.
                Some(_) => return None,
            }
        } else {
            // Unquoted: to the next comma. A quote inside is a plain byte (as in csv-core);
            // a `\r` would end the record there.
            let mut end = line.len();
            for p in hits.by_ref() {
                match line[p] {
                    b',' => {
                        end = p;
                        break;
                    }
                    b'"' => {}
                    _ => return None,
                }
            }
            push(start, end);
            if end == line.len() {
                return Some(Split { fields, ascii });
            }
            start = end + 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use csv_core::{ReadRecordResult, Reader};
    use proptest::prelude::*;

    fn split(line: &[u8]) -> Option<Vec<Vec<u8>>> {
        let (mut hits, mut starts, mut ends) = (Vec::new(), Vec::new(), Vec::new());
        let split = simple_record(line, &mut hits, &mut starts, &mut ends)?;
        assert_eq!(
            split.ascii,
            line.strip_suffix(b"\r").unwrap_or(line).is_ascii()
        );
        Some(
            (0..split.fields)
                .map(|i| line[starts[i]..ends[i]].to_vec())
                .collect(),
        )
    }

    /// The fields that `ends` marks in `out`, which they must cover exactly.
    fn fields_of(out: &[u8], ends: &[usize]) -> Vec<Vec<u8>> {
        let mut fields = Vec::new();
        let mut start = 0;
        for &end in ends {
            fields.push(out[start..end].to_vec());
            start = end;
        }
        assert_eq!(start, out.len());
        fields
    }

    /// What csv-core makes of `line` followed by `\n`, from a record's start: its fields when
    /// it is exactly one record ending at that `\n` (or at a `\r` just before it).
    fn csv_core(line: &[u8]) -> Option<Vec<Vec<u8>>> {
        let mut input = line.to_vec();
        input.push(b'\n');
        let mut reader = Reader::new();
        let (mut out, mut ends) = (vec![0u8; input.len() + 1], vec![0usize; input.len() + 1]);
        let (res, nin, nout, nend) = reader.read_record(&input, &mut out, &mut ends);
        // A record that ends at a `\r` leaves the `\n` of that CRLF, which csv-core skips.
        if res != ReadRecordResult::Record || !matches!(&input[nin..], b"" | b"\n") {
            return None;
        }
        Some(fields_of(&out[..nout], &ends[..nend]))
    }

    fn fields(text: &[&str]) -> Option<Vec<Vec<u8>>> {
        Some(text.iter().map(|f| f.as_bytes().to_vec()).collect())
    }

    #[test]
    fn splits_plain_and_quoted_fields_like_csv_core() {
        for (line, want) in [
            (
                &b"2024-03-03T19:50:58Z,u@acme.test,login,203.0.74.140,\"note, 78163\""[..],
                fields(&[
                    "2024-03-03T19:50:58Z",
                    "u@acme.test",
                    "login",
                    "203.0.74.140",
                    "note, 78163",
                ]),
            ),
            (b"a,,\"\",b\r", fields(&["a", "", "", "b"])),
            (b"a,", fields(&["a", ""])),
            (b",", fields(&["", ""])),
            (b"x", fields(&["x"])),
            (b"ab\"c,d", fields(&["ab\"c", "d"])),
            (b" \"q\",\"r\r\"", fields(&[" \"q\"", "r\r"])),
        ] {
            assert_eq!(split(line), want, "{}", String::from_utf8_lossy(line));
            assert_eq!(csv_core(line), want, "{}", String::from_utf8_lossy(line));
        }
    }

    #[test]
    fn leaves_what_it_is_not_sure_of_to_csv_core() {
        for line in [
            &b"a,\"say \"\"hi\"\"\",b"[..],
            b"a,\"open",
            b"a\rb",
            b"\"a\"b,c",
            b"\"a\"\r,c",
        ] {
            assert_eq!(split(line), None, "{}", String::from_utf8_lossy(line));
        }
    }

    proptest! {
        #[test]
        fn whatever_it_splits_csv_core_splits_the_same(
            line in proptest::collection::vec(
                prop_oneof![Just(b','), Just(b'"'), Just(b'\r'), Just(b'a'), Just(b' '), Just(0xc3)],
                0..40,
            ),
        ) {
            prop_assume!(!matches!(line.first(), None | Some(b'\r')));
            if let Some(fields) = split(&line) {
                prop_assert_eq!(Some(fields), csv_core(&line));
            }
        }

        #[test]
        fn it_reads_every_line_without_escapes_or_stray_quotes(
            fields in proptest::collection::vec(
                (proptest::collection::vec(prop_oneof![Just(b'a'), Just(b','), Just(b' ')], 0..8), any::<bool>()),
                1..8,
            ),
        ) {
            // Fields with a comma are quoted (as any CSV writer does); others may be.
            let mut line = Vec::new();
            for (i, (f, quote)) in fields.iter().enumerate() {
                if i > 0 {
                    line.push(b',');
                }
                if *quote || f.contains(&b',') {
                    line.push(b'"');
                    line.extend_from_slice(f);
                    line.push(b'"');
                } else {
                    line.extend_from_slice(f);
                }
            }
            let want: Vec<Vec<u8>> = fields.into_iter().map(|(f, _)| f).collect();
            prop_assert_eq!(split(&line), Some(want));
        }
    }
}

//! IP masking: the only place addresses are read, and nothing leaves it unmasked.
//!
//! A masked address is written in CIDR form, `192.0.2.0/24` or `2001:db8:85a3::/48`, so it can
//! never be mistaken for (or equal) a client address. IPv4-mapped IPv6 addresses are masked as
//! IPv4. Lists (`x-forwarded-for`) keep their separators, with or without spaces or `%20`;
//! ports and brackets are dropped. A token that is not an IP becomes `-` and is counted.
//! [`scrub_text`] masks every address-looking token in free text (reject records, messages).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, RecordBatch, StringArray};
use arrow::datatypes::DataType;

use crate::error::ConfigError;
use crate::parse::column::{extend_short, utf8_array};

/// How much of an address is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaskOptions {
    /// Leading bits of an IPv4 address kept (default 24).
    pub ipv4_prefix: u8,
    /// Leading bits of an IPv6 address kept (default 48).
    pub ipv6_prefix: u8,
}

impl Default for MaskOptions {
    fn default() -> Self {
        Self {
            ipv4_prefix: 24,
            ipv6_prefix: 48,
        }
    }
}

impl MaskOptions {
    /// Check the prefixes: a full-length prefix would keep whole addresses.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.ipv4_prefix > 31 {
            return Err(ConfigError::new(
                "mask.ipv4_prefix",
                format!("expected 0..=31 bits, got {}", self.ipv4_prefix),
            ));
        }
        if self.ipv6_prefix > 127 {
            return Err(ConfigError::new(
                "mask.ipv6_prefix",
                format!("expected 0..=127 bits, got {}", self.ipv6_prefix),
            ));
        }
        Ok(())
    }
}

/// Write the masked form of `addr` to `out` (ASCII text).
pub fn mask_addr(addr: IpAddr, opts: MaskOptions, out: &mut Vec<u8>) {
    use std::io::Write;
    let addr = match addr {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
        v4 => v4,
    };
    // Writing to a Vec cannot fail.
    let _ = match addr {
        IpAddr::V4(v4) => {
            // The hot case (every c_ip, most x-forwarded-for elements): digits by hand, no
            // formatting machinery.
            let octets = Ipv4Addr::from(u32::from(v4) & prefix_mask_u32(opts.ipv4_prefix)).octets();
            // At most "255.255.255.255/31": 18 ASCII bytes, assembled here and pushed once.
            let mut text = [0u8; 18];
            let mut len = 0;
            for (i, o) in octets.into_iter().enumerate() {
                if i > 0 {
                    text[len] = b'.';
                    len += 1;
                }
                len += put_decimal(&mut text[len..], o);
            }
            text[len] = b'/';
            len += 1;
            len += put_decimal(&mut text[len..], opts.ipv4_prefix);
            out.extend_from_slice(&text[..len]);
            Ok(())
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & prefix_mask_u128(opts.ipv6_prefix);
            write!(out, "{}/{}", Ipv6Addr::from(bits), opts.ipv6_prefix)
        }
    };
}

/// Write `n` in decimal at the start of `buf`; returns the bytes written (1 to 3).
fn put_decimal(buf: &mut [u8], n: u8) -> usize {
    let mut len = 0;
    if n >= 100 {
        buf[len] = b'0' + n / 100;
        len += 1;
    }
    if n >= 10 {
        buf[len] = b'0' + n / 10 % 10;
        len += 1;
    }
    buf[len] = b'0' + n % 10;
    len + 1
}

fn prefix_mask_u32(prefix: u8) -> u32 {
    u32::MAX
        .checked_shl(32 - u32::from(prefix.min(32)))
        .unwrap_or(0)
}

fn prefix_mask_u128(prefix: u8) -> u128 {
    u128::MAX
        .checked_shl(128 - u32::from(prefix.min(128)))
        .unwrap_or(0)
}

/// Parse one list element as an address: `1.2.3.4`, `1.2.3.4:443`, `2001:db8::1`,
/// `[2001:db8::1]`, `[2001:db8::1]:443`.
pub fn parse_token(token: &str) -> Option<IpAddr> {
    if let Some(v4) = parse_dotted_quad(token.as_bytes()) {
        return Some(IpAddr::V4(v4));
    }
    if let Ok(ip) = token.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Some(rest) = token.strip_prefix('[') {
        let (inner, after) = rest.split_once(']')?;
        let port_ok = after.is_empty()
            || after
                .strip_prefix(':')
                .is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
        return port_ok
            .then(|| inner.parse::<Ipv6Addr>().ok().map(IpAddr::V6))
            .flatten();
    }
    let (host, port) = token.split_once(':')?;
    if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    host.parse::<Ipv4Addr>().ok().map(IpAddr::V4)
}

/// The hot case of [`parse_token`]: a plain dotted quad in canonical form (no leading zeros).
/// Anything else gives `None` and is left to the standard parser, so this accepts a subset of
/// what `Ipv4Addr::from_str` accepts, with the same result.
fn parse_dotted_quad(b: &[u8]) -> Option<Ipv4Addr> {
    leading_quad(b).and_then(|(ip, _, end)| (end == b.len()).then_some(ip))
}

/// A canonical dotted quad at the start of `b`, in one pass: the address, where its three dots
/// are, and where it ends (the first byte after it that is neither a digit nor a fourth dot;
/// `b.len()` when none is).
///
/// Read an octet at a time ([`leading_octet`]): byte by byte, with a check of each digit
/// against the octet so far, it took ~17 instructions a byte (a callgrind count of the
/// small-files job, where masking was a tenth of the instructions).
#[inline]
fn leading_quad(b: &[u8]) -> Option<(Ipv4Addr, [usize; 3], usize)> {
    let (o0, at) = leading_octet(b, 0)?;
    let dot0 = dot_at(b, at)?;
    let (o1, at) = leading_octet(b, dot0 + 1)?;
    let dot1 = dot_at(b, at)?;
    let (o2, at) = leading_octet(b, dot1 + 1)?;
    let dot2 = dot_at(b, at)?;
    let (o3, end) = leading_octet(b, dot2 + 1)?;
    Some((Ipv4Addr::new(o0, o1, o2, o3), [dot0, dot1, dot2], end))
}

/// `at` when `b[at]` is a dot.
#[inline(always)]
fn dot_at(b: &[u8], at: usize) -> Option<usize> {
    (b.get(at) == Some(&b'.')).then_some(at)
}

/// The canonical octet (1 to 3 digits, no leading zero, at most 255) that starts at `b[at]`,
/// and where it ends; `None` when none starts there, or when a digit follows one (so that
/// `1234` is no octet and `01` none either).
#[inline(always)]
fn leading_octet(b: &[u8], at: usize) -> Option<(u8, usize)> {
    let digit = |i: usize| b.get(i).map(|c| c.wrapping_sub(b'0')).filter(|&d| d < 10);
    let d0 = digit(at)?;
    let Some(d1) = digit(at + 1) else {
        return Some((d0, at + 1));
    };
    if d0 == 0 {
        return None;
    }
    let Some(d2) = digit(at + 2) else {
        return Some((d0 * 10 + d1, at + 2));
    };
    let value = u32::from(d0) * 100 + u32::from(d1) * 10 + u32::from(d2);
    if value > 255 || digit(at + 3).is_some() {
        return None;
    }
    Some((value as u8, at + 3))
}

/// Append what follows the octets kept of a quad masked at `/8`, `/16`, `/24` (`kept` 1, 2
/// or 3): a constant each, so no call copies it.
#[inline(always)]
fn push_zeros(out: &mut Vec<u8>, kept: usize) {
    match kept {
        1 => out.extend_from_slice(b"0.0.0/8"),
        2 => out.extend_from_slice(b"0.0/16"),
        _ => out.extend_from_slice(b"0/24"),
    }
}

/// The hot case of [`mask_value`], in one pass: canonical dotted quads only
/// ([`leading_quad`]), separated by a comma and any spaces or `%20` after it (every `c_ip`,
/// most `x-forwarded-for` lists), masked at an octet boundary. Each quad is written as its own
/// text up to the last octet kept, then zeros: no number formatted back to text. Anything else
/// writes nothing and gives false, for [`mask_pieces`] to take (a property test holds the two
/// equal).
///
/// The value is `window[..len]`; the bytes after it (the rest of a column's buffer) are only
/// read by block copies ([`extend_short`]) and never written.
fn mask_quad_list(window: &[u8], len: usize, prefix: u8, out: &mut Vec<u8>) -> bool {
    let kept = match prefix {
        8 | 16 | 24 => usize::from(prefix / 8),
        _ => return false,
    };
    let written = out.len();
    let mut at = 0;
    loop {
        let rest = &window[at..len];
        let quad =
            leading_quad(rest).filter(|&(_, _, end)| matches!(rest.get(end), None | Some(b',')));
        let Some((_, dots, end)) = quad else {
            out.truncate(written);
            return false;
        };
        extend_short::<16>(out, window, at, at + dots[kept - 1] + 1);
        push_zeros(out, kept);
        if end == rest.len() {
            return true;
        }
        let mut next = end + 1;
        loop {
            if rest.get(next) == Some(&b' ') {
                next += 1;
            } else if rest[next..].starts_with(b"%20") {
                next += 3;
            } else {
                break;
            }
        }
        extend_short::<16>(out, window, at + end, at + next);
        at += next;
    }
}

/// Split `piece` into (leading separator, token, trailing separator), where separators are
/// spaces, tabs and `%20`.
fn split_padding(piece: &str) -> (&str, &str, &str) {
    let mut start = 0;
    let b = piece.as_bytes();
    loop {
        if b.get(start).is_some_and(|c| *c == b' ' || *c == b'\t') {
            start += 1;
        } else if b[start..].starts_with(b"%20") {
            start += 3;
        } else {
            break;
        }
    }
    let mut end = b.len();
    loop {
        if end > start && (b[end - 1] == b' ' || b[end - 1] == b'\t') {
            end -= 1;
        } else if end >= start + 3 && b[..end].ends_with(b"%20") {
            end -= 3;
        } else {
            break;
        }
    }
    (&piece[..start], &piece[start..end], &piece[end..])
}

/// Mask a value that holds one address or a comma list of them, appending the result (UTF-8
/// text: `value`'s own pieces and ASCII) to
/// `out`. Returns how many tokens were not addresses (each became `-`).
pub fn mask_value(value: &str, opts: MaskOptions, out: &mut Vec<u8>) -> u64 {
    mask_in(value, value.as_bytes(), opts, out)
}

/// [`mask_value`] of `value`, whose bytes begin `window`: the bytes after it (the rest of a
/// column's buffer) are there for the quad path's block copies to read.
fn mask_in(value: &str, window: &[u8], opts: MaskOptions, out: &mut Vec<u8>) -> u64 {
    if mask_quad_list(window, value.len(), opts.ipv4_prefix, out) {
        return 0;
    }
    mask_pieces(value, opts, out)
}

/// The general case of [`mask_value`]: element by element, each its own padding, token and
/// mask.
fn mask_pieces(value: &str, opts: MaskOptions, out: &mut Vec<u8>) -> u64 {
    let mut invalid = 0;
    let mut rest = value;
    loop {
        // A byte scan: values are short, and `str::split` searched for each comma with a
        // call per element (1.7% of a CloudFront run).
        let (piece, next) = match rest.bytes().position(|b| b == b',') {
            Some(comma) => (&rest[..comma], Some(&rest[comma + 1..])),
            None => (rest, None),
        };
        let (lead, token, trail) = split_padding(piece);
        if !lead.is_empty() {
            out.extend_from_slice(lead.as_bytes());
        }
        match parse_token(token) {
            Some(ip) => mask_addr(ip, opts, out),
            None => {
                // An empty slot or CloudFront's own `-` placeholder is not a bad token.
                if !token.is_empty() && token != "-" {
                    invalid += 1;
                }
                if !token.is_empty() {
                    out.push(b'-');
                }
            }
        }
        if !trail.is_empty() {
            out.extend_from_slice(trail.as_bytes());
        }
        match next {
            Some(after) => {
                out.push(b',');
                rest = after;
            }
            None => return invalid,
        }
    }
}

/// Mask every value of `values` (see [`mask_value`]); nulls stay null. Returns the masked
/// array and the count of tokens that were not addresses. Masked values are written straight
/// into the new array's value buffer.
pub fn mask_array(values: &StringArray, opts: MaskOptions) -> (StringArray, u64) {
    let mut invalid = 0;
    // A masked token is at most 3 bytes longer than the token ("/24", or "/48" after the
    // shortest IPv6 forms); room for one address per value grown that much.
    let mut text = Vec::with_capacity(values.value_data().len() + values.len() * 4);
    let mut offsets = Vec::with_capacity(values.len() + 1);
    offsets.push(0i32);
    let (data, starts) = (values.value_data(), values.value_offsets());
    for i in 0..values.len() {
        if values.is_valid(i) {
            let window = &data[starts[i] as usize..];
            invalid += mask_in(values.value(i), window, opts, &mut text);
        }
        // Decoded batches are bounded so that even masked columns stay under 2 GiB
        // (`parse::column::MAX_BATCH_BYTES`).
        offsets.push(i32::try_from(text.len()).expect("masked strings over 2 GiB in one batch"));
    }
    // Masked values are whole strings, one per row.
    let masked = utf8_array(offsets, text, values.nulls().cloned());
    (masked, invalid)
}

/// Mask every address-looking token in free text with the default prefixes. Errs on the side
/// of masking: any substring that parses as an address is masked.
pub fn scrub_text(text: &str) -> String {
    const SHORTEST: usize = 2; // "::"
    const LONGEST: usize = 45; // the longest textual IPv6 address
    let opts = MaskOptions::default();
    let b = text.as_bytes();
    let is_addr_byte = |c: u8| c.is_ascii_hexdigit() || c == b':' || c == b'.';
    let mut out = Vec::with_capacity(text.len());
    let mut copied = 0;
    let mut i = 0;
    while i < b.len() {
        if !is_addr_byte(b[i]) {
            i += 1;
            continue;
        }
        let run_end = b[i..]
            .iter()
            .position(|&c| !is_addr_byte(c))
            .map_or(b.len(), |p| i + p);
        let mut start = i;
        while start + SHORTEST <= run_end {
            let longest = (start + LONGEST).min(run_end);
            // An IPv6 form glued to a word (`citrine::run`, `Masker::new`) is a Rust path
            // or an identifier, not an address: left alone so messages stay readable.
            let word = |at: usize| {
                b.get(at)
                    .is_some_and(|&c| c.is_ascii_alphanumeric() || c == b'_')
            };
            let found = (start + SHORTEST..=longest).rev().find_map(|end| {
                let ip = text[start..end].parse::<IpAddr>().ok()?;
                let glued = (start == i && start > 0 && word(start - 1)) || word(end);
                (ip.is_ipv4() || !glued).then_some((end, ip))
            });
            match found {
                Some((end, ip)) => {
                    out.extend_from_slice(&b[copied..start]);
                    mask_addr(ip, opts, &mut out);
                    // An address already written as a network (`192.0.2.0/24`, as masked
                    // values are) keeps one prefix, the masked one.
                    let digits = b[end..]
                        .strip_prefix(b"/")
                        .map_or(0, |r| r.iter().take_while(|c| c.is_ascii_digit()).count());
                    copied = if digits > 0 { end + 1 + digits } else { end };
                    start = end;
                }
                None => start += 1,
            }
        }
        i = run_end;
    }
    out.extend_from_slice(&b[copied..]);
    String::from_utf8(out).expect("text with its addresses masked is UTF-8")
}

/// Masks the named columns of a batch. Columns that are absent or not strings are left alone
/// (configuration is validated against the table schema before a run).
#[derive(Debug, Clone)]
pub struct Masker {
    columns: Vec<String>,
    options: MaskOptions,
}

impl Masker {
    /// A masker for `columns`.
    pub fn new(columns: Vec<String>, options: MaskOptions) -> Self {
        Self { columns, options }
    }

    /// The columns this masker rewrites.
    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    /// Mask the batch; returns it with the count of tokens that were not addresses.
    pub fn apply(&self, batch: RecordBatch) -> (RecordBatch, u64) {
        let mut invalid = 0;
        let schema = batch.schema();
        let mut arrays: Vec<ArrayRef> = batch.columns().to_vec();
        for (idx, field) in schema.fields().iter().enumerate() {
            if field.data_type() != &DataType::Utf8 || !self.columns.contains(field.name()) {
                continue;
            }
            let Some(values) = arrays[idx].as_any().downcast_ref::<StringArray>() else {
                continue;
            };
            let (masked, n) = mask_array(values, self.options);
            invalid += n;
            arrays[idx] = Arc::new(masked);
        }
        // Same schema, same lengths: cannot fail.
        let batch = RecordBatch::try_new(schema, arrays).expect("masking keeps the schema");
        (batch, invalid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn masked(v: &str) -> (String, u64) {
        let mut out = Vec::new();
        let n = mask_value(v, MaskOptions::default(), &mut out);
        (String::from_utf8(out).unwrap(), n)
    }

    #[test]
    fn single_addresses() {
        let cases = [
            ("192.0.2.100", "192.0.2.0/24"),
            ("128.92.136.19", "128.92.136.0/24"),
            ("2001:db8:85a3:8d3:1319:8a2e:370:7348", "2001:db8:85a3::/48"),
            ("::ffff:203.0.113.9", "203.0.113.0/24"),
            ("203.0.113.9:8080", "203.0.113.0/24"),
            ("[2001:db8::1]:443", "2001:db8::/48"),
            ("[2001:db8::1]", "2001:db8::/48"),
        ];
        for (input, want) in cases {
            assert_eq!(masked(input), (want.to_string(), 0), "{input}");
        }
    }

    #[test]
    fn the_fast_ipv4_parser_agrees_with_the_standard_one() {
        let cases = [
            "0.0.0.0",
            "255.255.255.255",
            "1.2.3.4",
            "10.0.0.1",
            "256.1.1.1",
            "1.2.3",
            "1.2.3.4.5",
            "01.2.3.4",
            "1.2.3.04",
            "1.2.3.4 ",
            "1..3.4",
            "1.2.3.",
            ".1.2.3",
            "1234.1.1.1",
            "1.2.3.4:80",
            "1.2.3.a",
            "",
            "9.99.199.249",
        ];
        for case in cases {
            let fast = parse_dotted_quad(case.as_bytes());
            if let Some(ip) = fast {
                assert_eq!(Ok(ip), case.parse::<Ipv4Addr>(), "{case}");
            }
            let canonical = case
                .parse::<Ipv4Addr>()
                .is_ok_and(|ip| ip.to_string() == case);
            assert_eq!(fast.is_some(), canonical, "{case}");
        }
    }

    proptest::proptest! {
        /// The one-pass parser accepts exactly the canonical dotted quads, as the standard one
        /// reads them.
        #[test]
        fn the_fast_ipv4_parser_accepts_canonical_quads_only(text in "[0-9.]{0,16}|[0-9]{1,3}(\\.[0-9]{1,3}){3}") {
            let fast = parse_dotted_quad(text.as_bytes());
            let canonical = text.parse::<Ipv4Addr>().ok().filter(|ip| ip.to_string() == text);
            proptest::prop_assert_eq!(fast, canonical);
        }

        /// The one-pass list masker writes what the element-by-element one writes, or leaves
        /// the value to it.
        #[test]
        fn quad_lists_mask_as_their_pieces_do(
            tokens in proptest::collection::vec(
                proptest::sample::select(vec![
                    "192.0.2.1", "10.0.0.255", "0.0.0.0", "255.255.255.255", "1.2.3.4:80",
                    "01.2.3.4", "1.2.3", "1.2.3.4.5", "256.1.1.1", "-", "", "unknown",
                    "2001:db8::1", "1.2.3.4 ", " 1.2.3.4",
                ]),
                1..5,
            ),
            seps in proptest::collection::vec(
                proptest::sample::select(vec![",", ", ", ",%20", ",  %20 ", " ,", ",\t", ";"]),
                4,
            ),
            prefix in proptest::sample::select(vec![8u8, 16, 24, 20]),
        ) {
            let mut value = tokens[0].to_string();
            for (token, sep) in tokens[1..].iter().zip(&seps) {
                value.push_str(sep);
                value.push_str(token);
            }
            let opts = MaskOptions { ipv4_prefix: prefix, ipv6_prefix: 48 };
            let (mut fast, mut general) = (b"x".to_vec(), b"x".to_vec());
            let fast_invalid = mask_value(&value, opts, &mut fast);
            let general_invalid = mask_pieces(&value, opts, &mut general);
            proptest::prop_assert_eq!(String::from_utf8(fast).unwrap(), String::from_utf8(general.clone()).unwrap());
            proptest::prop_assert_eq!(fast_invalid, general_invalid);
            // In a column, between values whose bytes the block copies may read.
            let column = StringArray::from(vec![value.as_str(), "255.255.255.255,%20255.255.255.255", value.as_str()]);
            let (masked, invalid) = mask_array(&column, opts);
            proptest::prop_assert_eq!(masked.value(0).as_bytes(), &general[1..]);
            proptest::prop_assert_eq!(masked.value(2).as_bytes(), &general[1..]);
            let mut middle = Vec::new();
            mask_pieces(column.value(1), opts, &mut middle);
            proptest::prop_assert_eq!(masked.value(1).as_bytes(), &middle[..]);
            proptest::prop_assert_eq!(invalid, 2 * general_invalid);
        }

        /// Lists the one-pass masker takes whole (canonical quads, accepted separators),
        /// in a column between other values: what the element-by-element masker writes.
        #[test]
        fn quad_lists_in_a_column_mask_as_their_pieces_do(
            quads in proptest::collection::vec(proptest::array::uniform4(0u8..=255), 1..6),
            seps in proptest::collection::vec(
                proptest::sample::select(vec![",", ", ", ",%20", ",  %20 "]),
                5,
            ),
            prefix in proptest::sample::select(vec![8u8, 16, 24]),
        ) {
            let mut value = Ipv4Addr::from(quads[0]).to_string();
            for (quad, sep) in quads[1..].iter().zip(&seps) {
                value.push_str(sep);
                value.push_str(&Ipv4Addr::from(*quad).to_string());
            }
            let opts = MaskOptions { ipv4_prefix: prefix, ipv6_prefix: 48 };
            let mut fast = Vec::new();
            proptest::prop_assert!(mask_quad_list(value.as_bytes(), value.len(), prefix, &mut fast));
            let mut general = Vec::new();
            mask_pieces(&value, opts, &mut general);
            proptest::prop_assert_eq!(&fast, &general);
            let column = StringArray::from(vec!["9.9.9.9", value.as_str(), "1.1.1.1,%201.1.1.1"]);
            let (masked, invalid) = mask_array(&column, opts);
            proptest::prop_assert_eq!(masked.value(1).as_bytes(), &general[..]);
            proptest::prop_assert_eq!(invalid, 0);
        }

        /// The octet-boundary shortcut writes what the general path writes, for any quad and
        /// prefix.
        #[test]
        fn masked_quads_read_as_mask_addr_writes_them(
            octets in proptest::array::uniform4(0u8..=255),
            prefix in 0u8..=31,
        ) {
            let ip = Ipv4Addr::from(octets);
            let opts = MaskOptions { ipv4_prefix: prefix, ipv6_prefix: 48 };
            let (mut fast, mut general) = (Vec::new(), Vec::new());
            proptest::prop_assert_eq!(mask_value(&ip.to_string(), opts, &mut fast), 0);
            mask_addr(IpAddr::V4(ip), opts, &mut general);
            proptest::prop_assert_eq!(fast, general);
        }
    }

    #[test]
    fn forwarded_for_lists() {
        let cases = [
            (
                "203.0.113.5,198.51.100.7",
                "203.0.113.0/24,198.51.100.0/24",
                0,
            ),
            (
                "203.0.113.5, 198.51.100.7",
                "203.0.113.0/24, 198.51.100.0/24",
                0,
            ),
            (
                "203.0.113.5,%20198.51.100.7",
                "203.0.113.0/24,%20198.51.100.0/24",
                0,
            ),
            ("unknown, [2001:db8::7]:80", "-, 2001:db8::/48", 1),
            ("not-an-ip", "-", 1),
            ("-", "-", 0),
            ("1.2.3.4,", "1.2.3.0/24,", 0),
            (",1.2.3.4", ",1.2.3.0/24", 0),
            ("1.2.3.4,,5.6.7.8", "1.2.3.0/24,,5.6.7.0/24", 0),
            (",", ",", 0),
            ("", "", 0),
        ];
        for (input, want, bad) in cases {
            assert_eq!(masked(input), (want.to_string(), bad), "{input}");
        }
    }

    #[test]
    fn arrays_are_masked_value_by_value_keeping_nulls() {
        let values = StringArray::from(vec![
            Some("0.0.0.0"),
            Some("192.0.2.1"),
            None,
            Some("203.0.113.5, [2001:db8::7]:80"),
            Some("junk"),
            Some(""),
            None,
            Some("198.51.100.255"),
        ]);
        // Sliced too: the offsets and nulls of a slice start where it does.
        for array in [values.clone(), values.slice(1, 6)] {
            let (out, invalid) = mask_array(&array, MaskOptions::default());
            assert_eq!(out.len(), array.len());
            let mut want_invalid = 0;
            for i in 0..array.len() {
                assert_eq!(out.is_null(i), array.is_null(i), "row {i}");
                if array.is_valid(i) {
                    let (want, bad) = masked(array.value(i));
                    assert_eq!(out.value(i), want, "row {i}");
                    want_invalid += bad;
                }
            }
            assert_eq!(invalid, want_invalid);
            assert_eq!(invalid, 1);
        }
    }

    #[test]
    fn prefixes_are_configurable() {
        let opts = MaskOptions {
            ipv4_prefix: 16,
            ipv6_prefix: 32,
        };
        let mut out = Vec::new();
        mask_value("192.0.2.100, 2001:db8:85a3::1", opts, &mut out);
        assert_eq!(out, b"192.0.0.0/16, 2001:db8::/32");
        out.clear();
        mask_addr(
            "10.1.2.3".parse().unwrap(),
            MaskOptions {
                ipv4_prefix: 0,
                ipv6_prefix: 0,
            },
            &mut out,
        );
        assert_eq!(out, b"0.0.0.0/0");
    }

    #[test]
    fn full_length_prefixes_are_refused() {
        let err = MaskOptions {
            ipv4_prefix: 32,
            ipv6_prefix: 48,
        }
        .validate()
        .unwrap_err();
        assert_eq!(err.key, "mask.ipv4_prefix");
        assert!(MaskOptions {
            ipv4_prefix: 24,
            ipv6_prefix: 128
        }
        .validate()
        .is_err());
        assert!(MaskOptions::default().validate().is_ok());
    }

    #[test]
    fn scrub_masks_addresses_in_text() {
        let cases = [
            ("ip 192.0.2.100 here", "ip 192.0.2.0/24 here"),
            ("x=%2015.6.7.8", "x=%2015.6.7.0/24"),
            ("[2001:db8::1]:443", "[2001:db8::/48]:443"),
            ("2019-12-04\t21:02:31", "2019-12-04\t21:02:31"),
            ("a1.2.3.4b", "a1.2.3.0/24b"),
            ("already 192.0.2.0/24 masked", "already 192.0.2.0/24 masked"),
            ("cidr 10.1.2.3/32", "cidr 10.1.2.0/24"),
            // Rust paths in log lines are not addresses; real ones next to them are.
            ("citrine::run: ::1 failed", "citrine::run: ::/48 failed"),
            ("Masker::new fe80::1%eth0", "Masker::new fe80::/48%eth0"),
            (
                "x-forwarded-for=%202001:db8::9",
                "x-forwarded-for=%202001:db8::/48",
            ),
        ];
        for (input, want) in cases {
            assert_eq!(scrub_text(input), want, "{input}");
        }
    }
}

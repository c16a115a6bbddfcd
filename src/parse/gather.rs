//! Accepted rows whose string fields are not yet in their columns, copied in a column at a
//! time.
//!
//! Copying each field into its column as its row was read cost about 70 instructions a field
//! in the CloudFront decoder (callgrind): a dispatch on what the field is and on its column's
//! kind, then each builder's lengths loaded and stored through memory, for fields of a dozen
//! bytes. Here an accepted row's line is appended to one buffer, with where each of its fields
//! starts, and [`Pending::column`] later gives one field of every row in order: a column's
//! values are then appended by one loop whose state stays in registers
//! ([`super::column::StrBuilder::append_fields`]).
//!
//! The rows all have one width (the decoder gathers them before its layout changes), and the
//! buffer is gathered once it holds [`GATHER_BYTES`], so what it adds to a batch's memory is
//! that and one line.

/// Bytes of lines held before they are gathered into their columns. With their bounds (about
/// as many bytes again) they stay in a core's 512 KiB L2 cache while each column is read back
/// from them; 32 KiB took more instructions (each column's values reserved and grown more
/// often) and was no faster in four alternated runs of the small-files job.
pub const GATHER_BYTES: usize = 128 << 10;

/// Rows of one width waiting to be copied into their columns.
#[derive(Debug, Default)]
pub struct Pending {
    /// The rows' lines, one after another.
    text: Vec<u8>,
    /// Per row, `width + 1` positions in `text`: where each field starts, then one past the
    /// end of its last field plus one. Field `k` is `bounds[k]..bounds[k + 1] - 1`: a field
    /// ends where the separator before the next one is.
    bounds: Vec<usize>,
    /// Fields per row.
    width: usize,
    rows: usize,
}

impl Pending {
    /// Rows held.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Bytes of lines held.
    pub fn bytes(&self) -> usize {
        self.text.len()
    }

    /// The lines held, which [`Pending::column`]'s ranges index.
    pub fn text(&self) -> &[u8] {
        &self.text
    }

    /// Hold a row: its `line` and where each of its fields ends in it (a separator, or the
    /// line's end for the last). Every row held at once must have as many fields: a panic
    /// otherwise.
    #[inline]
    pub fn push(&mut self, line: &[u8], ends: &[usize]) {
        assert!(
            self.rows == 0 || ends.len() == self.width,
            "rows of different widths held at once"
        );
        if self.text.capacity() == 0 {
            // Room for a gather's worth at once: grown from nothing, the buffers of a decoder
            // (one per input) were reallocated a dozen times each for a small file.
            self.text.reserve(GATHER_BYTES + line.len());
            self.bounds.reserve(GATHER_BYTES / 8);
        }
        self.width = ends.len();
        let base = self.text.len();
        self.text.extend_from_slice(line);
        self.bounds.push(base);
        self.bounds.extend(ends.iter().map(|&end| base + end + 1));
        self.rows += 1;
    }

    /// Field `position` of every row held, in order, as a range of [`Pending::text`].
    pub fn column(
        &self,
        position: usize,
    ) -> impl ExactSizeIterator<Item = (usize, usize)> + Clone + '_ {
        assert!(
            self.rows == 0 || position < self.width,
            "field {position} of rows of {} fields",
            self.width
        );
        self.bounds
            .chunks_exact(self.width + 1)
            .map(move |row| (row[position], row[position + 1] - 1))
    }

    /// Let go of the rows, keeping the room they took.
    pub fn clear(&mut self) {
        self.text.clear();
        self.bounds.clear();
        self.rows = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(lines: &[&str]) -> Pending {
        let mut pending = Pending::default();
        for line in lines {
            let mut ends: Vec<usize> = line
                .bytes()
                .enumerate()
                .filter(|&(_, b)| b == b'\t')
                .map(|(i, _)| i)
                .collect();
            ends.push(line.len());
            pending.push(line.as_bytes(), &ends);
        }
        pending
    }

    fn fields(pending: &Pending, position: usize) -> Vec<&str> {
        pending
            .column(position)
            .map(|(start, end)| std::str::from_utf8(&pending.text()[start..end]).unwrap())
            .collect()
    }

    #[test]
    fn each_column_gives_its_field_of_every_row_in_order() {
        let pending = held(&["a\tbb\t", "ccc\t\td", "-\te\tf"]);
        assert_eq!(pending.rows(), 3);
        assert_eq!(fields(&pending, 0), ["a", "ccc", "-"]);
        assert_eq!(fields(&pending, 1), ["bb", "", "e"]);
        assert_eq!(fields(&pending, 2), ["", "d", "f"]);
        assert_eq!(pending.column(2).len(), 3);
    }

    #[test]
    fn cleared_rows_make_room_for_rows_of_another_width() {
        let mut pending = held(&["a\tb"]);
        pending.clear();
        assert_eq!((pending.rows(), pending.bytes()), (0, 0));
        pending.push(b"x\ty\tz", &[1, 3, 5]);
        assert_eq!(fields(&pending, 2), ["z"]);
    }

    #[test]
    #[should_panic(expected = "different widths")]
    fn rows_of_two_widths_are_a_bug() {
        held(&["a\tb", "a\tb\tc"]);
    }

    #[test]
    #[should_panic(expected = "field 2 of rows of 2 fields")]
    fn a_field_past_the_width_is_a_bug() {
        let _ = held(&["a\tb"]).column(2);
    }
}

//! `citrine inspect`: one file through read → parse → mask, summarised for a person. Shows
//! the detected encoding and format, the field layouts, row and reject counts, and the first
//! rows. Rows are masked exactly as a run would mask them.

use std::fmt;
use std::io::BufRead;
use std::path::Path;

use arrow::array::RecordBatch;
use arrow::util::pretty::pretty_format_batches;

use crate::error::InputError;
use crate::parse::{cloudfront, decode_stream, decoder_for, Decoder, Format, Reject, RowCounts};
use crate::read::{decompress, open_local, Encoding};
use crate::schema::parsed_prefix;
use crate::transform::{MaskOptions, Masker, Transform, TransformCounts};

/// What to inspect and how much to show.
#[derive(Debug, Clone)]
pub struct InspectOptions {
    /// Force a format instead of sniffing it.
    pub format: Option<Format>,
    /// Rows to show.
    pub rows: usize,
    /// Rejects to show.
    pub rejects: usize,
    /// Audit columns to mask; by default any column whose name suggests an address.
    pub mask_columns: Option<Vec<String>>,
    /// Masking prefixes.
    pub mask: MaskOptions,
    /// Decompressed size cap.
    pub cap: u64,
    /// A configured table's column rules (hash, redact, e-mail domain), applied as a run does.
    pub rules: crate::transform::ColumnRules,
}

impl Default for InspectOptions {
    fn default() -> Self {
        Self {
            format: None,
            rows: 5,
            rejects: 10,
            mask_columns: None,
            mask: MaskOptions::default(),
            cap: decompress::DEFAULT_DECOMPRESSED_CAP,
            rules: Default::default(),
        }
    }
}

/// The result of inspecting one file.
#[derive(Debug)]
pub struct Inspection {
    /// The file.
    pub uri: String,
    /// Gzip or plain.
    pub encoding: Encoding,
    /// The format decoded.
    pub format: Format,
    /// Field layouts seen (`#Fields` lines, or the CSV header).
    pub layouts: Vec<Vec<String>>,
    /// Row counts.
    pub counts: RowCounts,
    /// Masking and cutting counters.
    pub transform: TransformCounts,
    /// The first rows, masked.
    pub head: Vec<RecordBatch>,
    /// The first rejects.
    pub rejects: Vec<Reject>,
}

/// A name that suggests an IP address column: `ip`, `*_ip`, `ip_*`, `*_ip_*`, `*forwarded*`.
pub fn looks_like_ip_column(name: &str) -> bool {
    name == "ip"
        || name.ends_with("_ip")
        || name.starts_with("ip_")
        || name.contains("_ip_")
        || name.contains("forwarded")
}

/// Inspect a local file.
pub fn inspect_path(path: &Path, options: &InspectOptions) -> Result<Inspection, InputError> {
    let (reader, encoding) = open_local(path, options.cap)?;
    inspect_reader(&path.display().to_string(), reader, encoding, options)
}

/// Inspect an opened input.
pub fn inspect_reader<R: BufRead>(
    uri: &str,
    mut reader: R,
    encoding: Encoding,
    options: &InspectOptions,
) -> Result<Inspection, InputError> {
    let on_io = |e| decompress::classify(e, encoding);
    let head = reader
        .fill_buf()
        .map_err(|e| InputError::new(uri, on_io(e)))?;
    let format = options.format.unwrap_or_else(|| Format::sniff(head));
    let (mut decoder, reader) = decoder_for(
        format,
        Box::new(reader),
        &crate::parse::DecodeOptions::rows(options.rows.clamp(1, 8192)),
    )
    .map_err(|e| InputError::new(uri, on_io(e)))?;
    let mut shown = 0;
    let mut head = Vec::new();
    let mut rejects = Vec::new();
    let mut transform_counts = TransformCounts::default();
    let mut masker: Option<Transform> = None;
    decode_stream(reader, &mut decoder, on_io, |decoded| {
        let transform = masker.get_or_insert_with(|| {
            let schema = decoded.batch.schema();
            let columns = match format {
                Format::CloudFront => cloudfront::MASKED_COLUMNS.map(String::from).to_vec(),
                Format::Audit | Format::Jsonl | Format::CloudWatch => match &options.mask_columns {
                    Some(c) => c.clone(),
                    None => schema
                        .fields()
                        .iter()
                        .map(|f| f.name().clone())
                        .filter(|n| looks_like_ip_column(n))
                        .collect(),
                },
            };
            Transform::new(schema, Masker::new(columns, options.mask))
                .with_rules(options.rules.clone())
        });
        let (batch, counts) = transform.sanitize(decoded.batch);
        transform_counts += counts;
        if shown < options.rows && batch.num_rows() > 0 {
            let take = (options.rows - shown).min(batch.num_rows());
            head.push(batch.slice(0, take));
            shown += take;
        }
        let room = options.rejects.saturating_sub(rejects.len());
        let withhold = !options.rules.is_empty();
        rejects.extend(decoded.rejects.into_iter().take(room).map(|mut r| {
            if withhold {
                r.raw = crate::run::stream::WITHHELD.to_owned();
            }
            r
        }));
        Ok(())
    })
    .map_err(|e| InputError::new(uri, e))?;
    Ok(Inspection {
        uri: uri.to_owned(),
        encoding,
        format,
        layouts: decoder.layouts(),
        counts: decoder.counts(),
        transform: transform_counts,
        head,
        rejects,
    })
}

impl fmt::Display for Inspection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "file:     {}", self.uri)?;
        let encoding = match self.encoding {
            Encoding::Gzip => "gzip",
            Encoding::Plain => "plain",
        };
        writeln!(f, "encoding: {encoding}")?;
        writeln!(f, "format:   {}", self.format.name())?;
        for (i, layout) in self.layouts.iter().enumerate() {
            writeln!(
                f,
                "layout {}: {} fields: {}",
                i + 1,
                layout.len(),
                layout.join(" ")
            )?;
        }
        let c = self.counts;
        writeln!(
            f,
            "rows:     {} read, {} ok, {} rejected",
            c.rows_read, c.rows_ok, c.rows_rejected
        )?;
        writeln!(
            f,
            "masking:  {} tokens were not IP addresses; {} strings cut",
            self.transform.ips_invalid, self.transform.strings_truncated
        )?;
        for r in &self.rejects {
            writeln!(f, "reject line {}: {}: {}", r.line, r.reason, r.raw)?;
        }
        if !self.head.is_empty() {
            // A table of the first rows without `row_num`, for width.
            let prefix = parsed_prefix();
            let trimmed: Vec<RecordBatch> = self
                .head
                .iter()
                .map(|b| {
                    let keep: Vec<usize> = (0..b.num_columns())
                        .filter(|&i| b.schema().field(i).name() != prefix[1].name())
                        .collect();
                    b.project(&keep).unwrap_or_else(|_| b.clone())
                })
                .collect();
            match pretty_format_batches(&trimmed) {
                Ok(table) => writeln!(f, "{table}")?,
                Err(e) => writeln!(f, "(cannot render rows: {e})")?,
            }
        }
        Ok(())
    }
}

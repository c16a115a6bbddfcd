//! Audit events as JSON: `format = "jsonl"` (one JSON object per line) and
//! `format = "cloudwatch"` (CloudWatch Logs, as a subscription filter delivers them through
//! Firehose to S3: concatenated `{"messageType": "DATA_MESSAGE", "logGroup", "logStream",
//! "logEvents": [{"id", "timestamp", "message"}]}` records, `CONTROL_MESSAGE` records skipped;
//! or as `CreateExportTask` writes them: one event per line, its timestamp first).
//!
//! An event's JSON object is flattened into columns (`{"user": {"id": 7}}` is `user_id`),
//! named like audit CSV headers, under the rules of the audit CSV: the table's columns are the
//! union of its inputs' in first-seen order (sampled from each input's first events at
//! planning, as [`sample_columns`]), `timestamp` is the event time (for CloudWatch the event's
//! own `timestamp`), a `customer` field (or the table's `customer_field`) names the row's
//! customer, values are strings (numbers and booleans as their JSON text, arrays as JSON,
//! `null` and `""` null). A key the table's layout does not have (first seen past the sample)
//! goes to the `extra` column as a JSON object, its values scrubbed: nothing is dropped.
//! A CloudWatch message that is not a JSON object is kept whole, scrubbed, in `message`. A line
//! or record that is not valid JSON is a reject with the parser's reason.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch};
use arrow::datatypes::SchemaRef;
use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

mod fast;

use super::audit::{HeaderUnion, TIMESTAMP};
use super::column::{initial_rows, PrefixBuilders, StrBuilder, MAX_BATCH_BYTES};
use super::lines::{Line, Lines};
use super::timestamp::Timestamps;
use super::{reject_text, Decoded, Decoder, Reject, RejectReason, RowCounts, DEFAULT_BATCH_SIZE};
use crate::error::FileError;
use crate::schema::{column_name, is_lineage, CUSTOMER, EXTRA};
use crate::transform::mask::scrub_text;

/// The CloudWatch columns every `cloudwatch` table starts with (after the lineage ones).
pub const CLOUDWATCH_COLUMNS: [&str; 3] = [LOG_GROUP, LOG_STREAM, EVENT_ID];
/// The log group of a CloudWatch event.
pub const LOG_GROUP: &str = "log_group";
/// The log stream of a CloudWatch event.
pub const LOG_STREAM: &str = "log_stream";
/// The id CloudWatch gave the event.
pub const EVENT_ID: &str = "event_id";
/// A CloudWatch message that is not a JSON object, whole.
pub const MESSAGE: &str = "message";

/// Longest line of JSON lines or of an export accepted, in bytes (as for CSV and W3C).
pub const MAX_LINE: usize = 1 << 20;

/// How the events of an input are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventShape {
    /// One JSON object per line.
    JsonLines,
    /// CloudWatch Logs through a subscription filter and Firehose: concatenated records.
    Subscription,
    /// A CloudWatch Logs export task: `<timestamp> <message>` per line.
    Export,
}

impl EventShape {
    /// The shape of a `cloudwatch` input starting with `head`: a record's `{`, or export lines.
    pub fn of_cloudwatch(head: &[u8]) -> Self {
        match head.iter().find(|b| !b.is_ascii_whitespace()) {
            Some(b'{') => Self::Subscription,
            _ => Self::Export,
        }
    }
}

/// The columns a table of events starts with: for CloudWatch its own three, then `extra`.
pub fn fixed_columns(cloudwatch: bool) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    if cloudwatch {
        out.extend(CLOUDWATCH_COLUMNS.map(str::to_owned));
    }
    out.push(EXTRA.to_owned());
    out
}

/// Options of the events decoder.
#[derive(Debug, Clone)]
pub struct EventsOptions {
    /// Rows per batch.
    pub batch_size: usize,
    /// Longest Firehose record accepted, in bytes (a line of JSON lines or of an export is
    /// held to [`MAX_LINE`]).
    pub max_record: usize,
    /// A batch ends once its events hold this many bytes.
    pub max_batch_bytes: usize,
    /// The table's columns (after the lineage ones): [`fixed_columns`] then the union.
    pub columns: Vec<String>,
    /// The field whose value is the row's customer (else `customer`).
    pub customer_field: Option<String>,
}

impl Default for EventsOptions {
    fn default() -> Self {
        Self {
            batch_size: DEFAULT_BATCH_SIZE,
            max_record: 16 << 20,
            max_batch_bytes: 256 << 20,
            columns: fixed_columns(false),
            customer_field: None,
        }
    }
}

/// Where a flattened field goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Ts,
    Customer,
    Column(usize),
    /// Into `extra`, under the name `extra_names` holds at this index.
    Extra(usize),
}

/// Where a field's value is: in the event's own text, as written there (a string without
/// escapes; with the fast reader also an integer or boolean), or in [`Flat::values`] (a
/// string unescaped, serde_json's text of a number or boolean, an array's JSON). Ranges of
/// bytes; an empty value is null.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Text {
    Event(usize, usize),
    Own(usize, usize),
}

/// One field of an event, flattened: its name as a range of [`Flat::names`], its value.
#[derive(Debug, Clone, Copy)]
struct FlatField {
    name: (usize, usize),
    /// `None` for null.
    value: Option<Text>,
}

/// An event's fields, flattened, in reusable buffers.
#[derive(Debug, Default)]
struct Flat {
    names: String,
    values: String,
    fields: Vec<FlatField>,
}

impl Flat {
    fn clear(&mut self) {
        self.names.clear();
        self.values.clear();
        self.fields.clear();
    }

    fn name(&self, f: &FlatField) -> &str {
        &self.names[f.name.0..f.name.1]
    }

    /// The value of `f`, whose event's text is `event`.
    fn value<'a>(&'a self, event: &'a str, f: &FlatField) -> Option<&'a str> {
        f.value.map(|t| match t {
            Text::Event(s, e) => &event[s..e],
            Text::Own(s, e) => &self.values[s..e],
        })
    }

    /// A value `write` appends to [`Flat::values`]; `None` (null) when it appends nothing.
    fn own(&mut self, write: impl FnOnce(&mut String)) -> Option<Text> {
        let start = self.values.len();
        write(&mut self.values);
        (self.values.len() > start).then_some(Text::Own(start, self.values.len()))
    }

    /// Whether `other` has the same names, flattened the same way: then its fields go where
    /// this event's went.
    fn same_layout(&self, other: &Flat) -> bool {
        self.names == other.names
            && self.fields.len() == other.fields.len()
            && self
                .fields
                .iter()
                .zip(&other.fields)
                .all(|(a, b)| a.name == b.name)
    }
}

/// The layout of the last event decoded and where each of its fields went: the events of an
/// input mostly share one (a producer writes its keys in one order), and comparing names is
/// cheaper than looking each one up.
#[derive(Debug, Default)]
struct LastLayout {
    flat: Flat,
    slots: Vec<Slot>,
}

/// Reads one JSON object into [`Flat`], nested objects flattened under `prefix.`; `event` is
/// the text being read (where a value without escapes is found again).
struct Object<'f, 'de> {
    flat: &'f mut Flat,
    event: &'de str,
    prefix: (usize, usize),
}

impl<'de> DeserializeSeed<'de> for Object<'_, 'de> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Object<'_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object (one event)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        loop {
            let start = self.flat.names.len();
            if self.prefix.1 > self.prefix.0 {
                self.flat
                    .names
                    .extend_from_within(self.prefix.0..self.prefix.1);
                self.flat.names.push('.');
            }
            if map
                .next_key_seed(Key {
                    names: &mut self.flat.names,
                })?
                .is_none()
            {
                self.flat.names.truncate(start);
                return Ok(());
            }
            let name = (start, self.flat.names.len());
            map.next_value_seed(Value {
                flat: self.flat,
                event: self.event,
                name,
            })?;
        }
    }
}

/// Reads a key onto the end of the names (no allocation, escaped or not).
struct Key<'f> {
    names: &'f mut String,
}

impl<'de> DeserializeSeed<'de> for Key<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_str(self)
    }
}

impl Visitor<'_> for Key<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a key")
    }
    fn visit_str<E>(self, s: &str) -> Result<(), E> {
        self.names.push_str(s);
        Ok(())
    }
}

/// Reads one value of the field `name`.
struct Value<'f, 'de> {
    flat: &'f mut Flat,
    event: &'de str,
    name: (usize, usize),
}

impl Value<'_, '_> {
    fn text(self, s: &str) {
        let value = self.flat.own(|values| values.push_str(s));
        self.push(value);
    }

    /// A number, as its text (written in place, no allocation).
    fn display(self, v: impl fmt::Display) {
        use std::fmt::Write as _;
        let value = self.flat.own(|values| {
            let _ = write!(values, "{v}");
        });
        self.push(value);
    }

    fn push(self, value: Option<Text>) {
        self.flat.fields.push(FlatField {
            name: self.name,
            value,
        });
    }
}

impl<'de> DeserializeSeed<'de> for Value<'_, 'de> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Value<'_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    /// A string as written in the event (no escapes): where it is, not a copy.
    fn visit_borrowed_str<E>(self, s: &'de str) -> Result<(), E> {
        let start = (s.as_ptr() as usize).wrapping_sub(self.event.as_ptr() as usize);
        if start <= self.event.len() && s.len() <= self.event.len() - start {
            let value = (!s.is_empty()).then_some(Text::Event(start, start + s.len()));
            self.push(value);
        } else {
            self.text(s);
        }
        Ok(())
    }
    fn visit_str<E>(self, s: &str) -> Result<(), E> {
        self.text(s);
        Ok(())
    }
    fn visit_i64<E>(self, v: i64) -> Result<(), E> {
        self.display(v);
        Ok(())
    }
    fn visit_u64<E>(self, v: u64) -> Result<(), E> {
        self.display(v);
        Ok(())
    }
    fn visit_f64<E>(self, v: f64) -> Result<(), E> {
        self.display(v);
        Ok(())
    }
    fn visit_bool<E>(self, v: bool) -> Result<(), E> {
        self.text(if v { "true" } else { "false" });
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        self.push(None);
        Ok(())
    }
    fn visit_none<E>(self) -> Result<(), E> {
        self.push(None);
        Ok(())
    }
    /// An array: its JSON text.
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut items = Vec::new();
        while let Some(v) = seq.next_element::<serde_json::Value>()? {
            items.push(v);
        }
        self.text(&serde_json::Value::Array(items).to_string());
        Ok(())
    }
    /// A nested object: its fields, flattened under this one's name.
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        Object {
            flat: self.flat,
            event: self.event,
            prefix: self.name,
        }
        .visit_map(map)
    }
}

/// Flatten the object `event` into `flat` (cleared first) with serde_json: any JSON, and the
/// parser's reason when it is not an object.
fn slow_flatten(event: &str, flat: &mut Flat) -> Result<(), serde_json::Error> {
    flat.clear();
    let mut de = serde_json::Deserializer::from_str(event);
    Object {
        flat,
        event,
        prefix: (0, 0),
    }
    .deserialize(&mut de)?;
    de.end()
}

/// A Firehose record of a CloudWatch Logs subscription.
#[derive(Deserialize)]
struct Subscription<'a> {
    #[serde(rename = "messageType", borrow)]
    message_type: Cow<'a, str>,
    #[serde(rename = "logGroup", default, borrow)]
    log_group: Option<Cow<'a, str>>,
    #[serde(rename = "logStream", default, borrow)]
    log_stream: Option<Cow<'a, str>>,
    #[serde(rename = "logEvents", default, borrow)]
    log_events: Vec<LogEvent<'a>>,
}

/// One event of a subscription record.
#[derive(Deserialize)]
struct LogEvent<'a> {
    #[serde(default, borrow)]
    id: Option<Cow<'a, str>>,
    timestamp: i64,
    #[serde(borrow)]
    message: Cow<'a, str>,
}

/// The CloudWatch context of an event.
#[derive(Default)]
struct Context<'a> {
    log_group: Option<&'a str>,
    log_stream: Option<&'a str>,
    event_id: Option<&'a str>,
    /// The event time (microseconds), when the envelope gives it.
    ts: Option<i64>,
}

/// Push decoder for audit events as JSON (see the module's documentation).
#[derive(Debug)]
pub struct EventsDecoder {
    options: EventsOptions,
    shape: Option<EventShape>,
    cloudwatch: bool,
    lines: Lines,
    /// Bytes of Firehose records not yet decoded.
    pending: Vec<u8>,
    /// Firehose records read so far (a record's number in its rejects).
    records: u64,
    /// Events read so far (for concatenated records, an event's `row_num`).
    events: u64,
    flat: Flat,
    last: LastLayout,
    /// Sampling ([`sample_columns`]): events are read for their keys only, no row is made.
    keys_only: bool,
    /// Each flattened name seen, and where it goes.
    slots: HashMap<String, Slot, ahash::RandomState>,
    /// The `extra` keys of [`Slot::Extra`].
    extra_names: Vec<String>,
    /// Columns first seen in this input that the layout does not have, in first-seen order.
    new_columns: Vec<String>,
    index: HashMap<String, usize, ahash::RandomState>,
    prefix: PrefixBuilders,
    timestamps: Timestamps,
    customer: StrBuilder,
    columns: Vec<StrBuilder>,
    /// Column positions appended for the event being decoded.
    filled: Vec<bool>,
    extra_position: usize,
    schema: SchemaRef,
    finishing: bool,
    rejects: Vec<Reject>,
    counts: RowCounts,
}

impl EventsDecoder {
    /// A decoder of `jsonl` (`cloudwatch` false) or `cloudwatch` events.
    pub fn new(cloudwatch: bool, options: EventsOptions) -> Self {
        let rows = options.batch_size.max(1);
        let mut columns = options.columns.clone();
        if !columns.iter().any(|c| c == EXTRA) {
            columns.insert(0, EXTRA.to_owned());
        }
        let index = columns
            .iter()
            .enumerate()
            .map(|(i, c)| (c.clone(), i))
            .collect();
        let schema = HeaderUnion::from_columns(columns.clone()).parsed_schema();
        Self {
            extra_position: columns.iter().position(|c| c == EXTRA).unwrap_or(0),
            columns: columns
                .iter()
                .map(|_| StrBuilder::with_capacity(initial_rows(rows), 0))
                .collect(),
            filled: vec![false; columns.len()],
            options: EventsOptions {
                batch_size: rows,
                max_batch_bytes: options.max_batch_bytes.clamp(1, MAX_BATCH_BYTES),
                max_record: options.max_record.max(256),
                columns,
                ..options
            },
            shape: (!cloudwatch).then_some(EventShape::JsonLines),
            cloudwatch,
            lines: Lines::new(MAX_LINE.min(options.max_record)),
            pending: Vec::new(),
            records: 0,
            events: 0,
            flat: Flat::default(),
            last: LastLayout::default(),
            keys_only: false,
            slots: HashMap::default(),
            extra_names: Vec::new(),
            new_columns: Vec::new(),
            index,
            prefix: PrefixBuilders::new(initial_rows(rows)),
            timestamps: Timestamps::default(),
            customer: StrBuilder::with_capacity(initial_rows(rows), 0),
            schema,
            finishing: false,
            rejects: Vec::new(),
            counts: RowCounts::default(),
        }
    }

    /// Columns this input has that the layout did not, in first-seen order (what
    /// [`sample_columns`] reads).
    pub fn new_columns(&self) -> &[String] {
        &self.new_columns
    }

    fn reject(&mut self, line: u64, reason: RejectReason, raw: &[u8]) {
        self.counts.rows_read += 1;
        self.counts.rows_rejected += 1;
        self.rejects.push(Reject {
            line,
            reason,
            raw: reject_text(raw),
        });
    }

    /// Where the flattened field `name` goes.
    fn slot(&mut self, name: &str) -> Slot {
        if let Some(&slot) = self.slots.get(name) {
            return slot;
        }
        let column = column_name(name);
        let customer = self.options.customer_field.as_deref().unwrap_or(CUSTOMER);
        let mut extra = |key: String| {
            self.extra_names.push(key);
            Slot::Extra(self.extra_names.len() - 1)
        };
        let slot = if column == customer {
            Slot::Customer
        } else if column == TIMESTAMP && !self.cloudwatch {
            Slot::Ts
        } else if let Some(&i) = self.index.get(&column) {
            if CLOUDWATCH_COLUMNS.contains(&column.as_str()) || column == EXTRA {
                extra(name.to_owned())
            } else {
                Slot::Column(i)
            }
        } else if column.is_empty() || is_lineage(&column) || column == EXTRA {
            extra(name.to_owned())
        } else {
            if !self.new_columns.contains(&column) {
                self.new_columns.push(column.clone());
            }
            extra(column)
        };
        self.slots.insert(name.to_owned(), slot);
        slot
    }

    /// One event: `json` (an object, or for CloudWatch a message that may be text) and its
    /// context, numbered `row`; a row or a reject. `raw` is the event's text for a reject.
    fn event(&mut self, row: u64, json: &str, context: &Context<'_>, raw: &[u8]) {
        let mut flat = std::mem::take(&mut self.flat);
        let mut last = std::mem::take(&mut self.last);
        let parsed = if self.cloudwatch && !json.trim_start().starts_with('{') {
            Err(None)
        } else if fast::flatten(json, &mut flat).is_some() {
            Ok(())
        } else {
            slow_flatten(json, &mut flat).map_err(Some)
        };
        match parsed {
            Ok(()) => {
                if !flat.same_layout(&last.flat) {
                    last.slots.clear();
                    for f in &flat.fields {
                        last.slots.push(self.slot(flat.name(f)));
                    }
                    std::mem::swap(&mut last.flat, &mut flat);
                    if !self.keys_only {
                        self.fields(row, json, &last.flat, &last.slots, None, context, raw);
                    }
                } else if !self.keys_only {
                    self.fields(row, json, &flat, &last.slots, None, context, raw);
                }
            }
            Err(_) if self.cloudwatch && self.keys_only => self.message_column(),
            // A CloudWatch message that is no JSON object is text, kept whole.
            Err(_) if self.cloudwatch => {
                flat.clear();
                self.fields(row, json, &flat, &[], Some(json), context, raw);
            }
            Err(e) => {
                let detail = e.map(|e| e.to_string()).unwrap_or_default();
                self.reject(row, RejectReason::NotJson { detail }, raw);
            }
        }
        self.flat = flat;
        self.last = last;
    }

    /// The row of an event whose fields `flat` holds (in `json`), each going to its slot in
    /// `slots`; or, for a CloudWatch message that is not a JSON object, its `message_text`.
    #[allow(clippy::too_many_arguments)]
    fn fields(
        &mut self,
        row: u64,
        json: &str,
        flat: &Flat,
        slots: &[Slot],
        message_text: Option<&str>,
        context: &Context<'_>,
        raw: &[u8],
    ) {
        let mut ts = context.ts;
        let mut customer = None;
        let mut extra = serde_json::Map::new();
        self.filled.iter_mut().for_each(|f| *f = false);
        let rows = self.prefix.len();
        let mut bad_ts = None;
        for (f, &slot) in flat.fields.iter().zip(slots) {
            let value = flat.value(json, f);
            match slot {
                Slot::Ts => match value.and_then(|v| self.timestamps.parse(v.as_bytes())) {
                    Some(t) => ts = Some(t),
                    None => bad_ts = Some(value.unwrap_or_default()),
                },
                Slot::Customer => customer = value,
                Slot::Column(i) if !self.filled[i] => {
                    self.filled[i] = true;
                    match value {
                        Some(v) => self.columns[i].append_value(v),
                        None => self.columns[i].append_null(),
                    }
                }
                Slot::Column(_) => {
                    extra.insert(flat.name(f).to_owned(), value.map(scrub_text).into());
                }
                Slot::Extra(key) => {
                    extra.insert(self.extra_names[key].clone(), value.map(scrub_text).into());
                }
            }
        }
        let ts = match (ts, bad_ts) {
            (Some(ts), None) => ts,
            (_, bad) => {
                // Nothing of the row stays: the columns appended so far are taken back.
                for (i, filled) in self.filled.iter().enumerate() {
                    if *filled {
                        self.columns[i].truncate(rows);
                    }
                }
                let value = reject_text(bad.unwrap_or_default().as_bytes());
                self.reject(row, RejectReason::BadTimestamp { value }, raw);
                return;
            }
        };
        let fixed = [
            (LOG_GROUP, context.log_group),
            (LOG_STREAM, context.log_stream),
            (EVENT_ID, context.event_id),
        ];
        for (column, value) in fixed {
            if let Some(&i) = self.index.get(column) {
                self.filled[i] = true;
                match value {
                    Some(v) => self.columns[i].append_value(v),
                    None => self.columns[i].append_null(),
                }
            }
        }
        if let Some(text) = message_text {
            let scrubbed = scrub_text(text);
            match self.index.get(MESSAGE) {
                Some(&i) if !self.filled[i] => {
                    self.filled[i] = true;
                    self.columns[i].append_value(&scrubbed);
                }
                _ => {
                    extra.insert(MESSAGE.to_owned(), scrubbed.into());
                }
            }
            self.message_column();
        }
        let e = self.extra_position;
        self.filled[e] = true;
        if extra.is_empty() {
            self.columns[e].append_null();
        } else {
            self.columns[e].append_value(&serde_json::Value::Object(extra).to_string());
        }
        for (i, filled) in self.filled.iter().enumerate() {
            if !filled {
                self.columns[i].append_null();
            }
        }
        match customer {
            Some(c) => self.customer.append_value(c),
            None => self.customer.append_null(),
        }
        self.prefix.append(ts, row, json.len());
        self.counts.rows_read += 1;
        self.counts.rows_ok += 1;
    }

    /// A CloudWatch message that is text goes to `message`: a new column unless known.
    fn message_column(&mut self) {
        if !self.new_columns.iter().any(|c| c == MESSAGE) && !self.index.contains_key(MESSAGE) {
            self.new_columns.push(MESSAGE.to_owned());
        }
    }

    /// One line of a `jsonl` input or of a CloudWatch export.
    fn line(&mut self, n: u64, line: Line<'_>) {
        let line = match line {
            Line::Whole(l) if l.trim_ascii().is_empty() => return,
            Line::Whole(l) => l,
            Line::TooLong(head) => {
                let limit = MAX_LINE.min(self.options.max_record);
                self.reject(n, RejectReason::TooLong { limit }, head);
                return;
            }
        };
        let Ok(text) = simdutf8::basic::from_utf8(line) else {
            self.reject(
                n,
                RejectReason::InvalidUtf8 {
                    column: "line".into(),
                },
                line,
            );
            return;
        };
        if self.shape == Some(EventShape::Export) {
            // `<timestamp> <message>`.
            let (stamp, message) = text.split_once(' ').unwrap_or((text, ""));
            let Some(ts) = self.timestamps.parse(stamp.as_bytes()) else {
                let value = reject_text(stamp.as_bytes());
                self.reject(n, RejectReason::BadTimestamp { value }, line);
                return;
            };
            let context = Context {
                ts: Some(ts),
                ..Default::default()
            };
            self.event(n, message, &context, line);
        } else {
            self.event(n, text, &Context::default(), line);
        }
    }

    /// Decode the complete Firehose records in `pending`, while there is room (or all of them
    /// when finishing); a record cut at the end waits for more bytes.
    fn records(&mut self, at_end: bool) {
        let mut pending = std::mem::take(&mut self.pending);
        let mut at = 0;
        while at < pending.len() && (self.finishing || self.capacity() > 0) {
            let rest = &pending[at..];
            let skip = rest.iter().take_while(|b| b.is_ascii_whitespace()).count();
            if skip == rest.len() {
                at = pending.len();
                break;
            }
            let rest = &rest[skip..];
            let mut stream =
                serde_json::Deserializer::from_slice(rest).into_iter::<Subscription<'_>>();
            match stream.next() {
                Some(Ok(record)) => {
                    let used = stream.byte_offset();
                    self.records += 1;
                    self.subscription(&record);
                    at += skip + used;
                }
                Some(Err(e)) if e.is_eof() && !at_end && rest.len() <= self.options.max_record => {
                    break;
                }
                Some(Err(e)) => {
                    // Not a record: rejected as one, and decoding resumes at the next record.
                    self.records += 1;
                    let next = next_record(rest).unwrap_or(rest.len());
                    let reason = if rest.len() > self.options.max_record && e.is_eof() {
                        RejectReason::TooLong {
                            limit: self.options.max_record,
                        }
                    } else {
                        RejectReason::NotJson {
                            detail: e.to_string(),
                        }
                    };
                    let row = self.events + 1;
                    self.reject(row, reason, &rest[..next.min(256)]);
                    at += skip + next;
                }
                None => {
                    at = pending.len();
                }
            }
        }
        pending.drain(..at);
        self.pending = pending;
    }

    /// One Firehose record: its events, or nothing for a control message.
    fn subscription(&mut self, record: &Subscription<'_>) {
        if record.message_type != "DATA_MESSAGE" {
            return;
        }
        for event in &record.log_events {
            self.events += 1;
            let context = Context {
                log_group: record.log_group.as_deref(),
                log_stream: record.log_stream.as_deref(),
                event_id: event.id.as_deref(),
                ts: event.timestamp.checked_mul(1000),
            };
            let row = self.events;
            self.event(row, &event.message, &context, event.message.as_bytes());
        }
    }
}

/// Where the next Firehose record may start after a broken one: the next `{"messageType"`.
fn next_record(rest: &[u8]) -> Option<usize> {
    const START: &[u8] = b"{\"messageType\"";
    memchr::memmem::find(&rest[1.min(rest.len())..], START).map(|i| i + 1)
}

impl Decoder for EventsDecoder {
    fn decode(&mut self, buf: &[u8]) -> Result<usize, FileError> {
        if self.capacity() == 0 {
            return Ok(0);
        }
        let shape = *self
            .shape
            .get_or_insert_with(|| EventShape::of_cloudwatch(buf));
        if shape == EventShape::Subscription {
            if buf.iter().all(u8::is_ascii_whitespace) && self.pending.is_empty() {
                return Ok(buf.len());
            }
            self.pending.extend_from_slice(buf);
            self.records(false);
            return Ok(buf.len());
        }
        let mut lines = std::mem::replace(&mut self.lines, Lines::new(0));
        let used = lines.decode(buf, |n, line| {
            self.line(n, line);
            Ok(self.capacity() > 0)
        });
        self.lines = lines;
        used
    }

    fn finish(&mut self) -> Result<(), FileError> {
        self.finishing = true;
        if self.shape == Some(EventShape::Subscription) {
            self.records(true);
            return Ok(());
        }
        let mut lines = std::mem::replace(&mut self.lines, Lines::new(0));
        let done = lines.finish(|n, line| {
            self.line(n, line);
            Ok(true)
        });
        self.lines = lines;
        done
    }

    fn capacity(&self) -> usize {
        self.prefix
            .room(self.options.batch_size, self.options.max_batch_bytes)
    }

    fn flush(&mut self) -> Result<Option<Decoded>, FileError> {
        if self.prefix.is_empty() && self.rejects.is_empty() {
            return Ok(None);
        }
        let more = !self.finishing;
        let mut arrays: Vec<ArrayRef> = Vec::with_capacity(self.columns.len() + 3);
        arrays.extend(self.prefix.finish(more));
        arrays.push(Arc::new(self.customer.finish(more)));
        arrays.extend(
            self.columns
                .iter_mut()
                .map(|b| Arc::new(b.finish(more)) as ArrayRef),
        );
        let batch = RecordBatch::try_new(self.schema.clone(), arrays).map_err(|e| {
            FileError::NotFormat {
                format: "JSON events",
                reason: format!("internal error building a batch: {e}"),
            }
        })?;
        let decoded = Decoded {
            batch,
            rejects: std::mem::take(&mut self.rejects),
        };
        // Records left in `pending` when the batch filled are decoded now there is room.
        if !self.pending.is_empty() && !self.finishing {
            self.records(false);
        }
        Ok(Some(decoded))
    }

    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn counts(&self) -> RowCounts {
        self.counts
    }
}

/// The columns of an input of events (`cloudwatch` or `jsonl`) that `known` lacks, in
/// first-seen order, from its first `sample_bytes` bytes: what planning adds to the table.
pub fn sample_columns(
    cloudwatch: bool,
    mut reader: impl std::io::BufRead,
    known: &[String],
    sample_bytes: usize,
) -> std::io::Result<Vec<String>> {
    let mut d = EventsDecoder::new(
        cloudwatch,
        EventsOptions {
            columns: known.to_vec(),
            batch_size: usize::MAX / 2,
            ..Default::default()
        },
    );
    d.keys_only = true;
    let mut read = 0;
    while read < sample_bytes {
        let buf = reader.fill_buf()?;
        if buf.is_empty() {
            break;
        }
        let n = buf.len().min(sample_bytes - read);
        let used = d.decode(&buf[..n]).map_err(std::io::Error::other)?;
        reader.consume(used);
        read += used;
        if used == 0 {
            break;
        }
    }
    Ok(d.new_columns().to_vec())
}

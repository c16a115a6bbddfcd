//! What the command line writes: results on standard output, messages and logs on standard
//! error, every text scrubbed of addresses; a closed pipe ends the program quietly.

use citrine::logs::ScrubLines;
use citrine::run;
use citrine::transform::mask::scrub_text;

/// `print!` that returns an error instead of panicking: a closed pipe (`citrine … | head`)
/// then ends the program quietly (see `main`).
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        write!(std::io::stdout().lock(), $($arg)*)
    }};
}

/// `println!` as [`out!`] is `print!`.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*)
    }};
}

/// A line for the user on standard error: `citrine: <text>`, or under `--log-format json` an
/// ERROR event of the JSON log (so every line there is JSON). Scrubbed of addresses either way.
macro_rules! errln {
    ($($arg:tt)*) => {{
        let text = citrine::transform::mask::scrub_text(&format!($($arg)*));
        if $crate::cli::output::json_stderr() {
            tracing::error!("{text}");
        } else {
            eprintln!("citrine: {text}");
        }
    }};
}

/// Standard error's lines are JSON (`--log-format json`).
static JSON_STDERR: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether standard error's lines are JSON.
pub fn json_stderr() -> bool {
    JSON_STDERR.load(std::sync::atomic::Ordering::Relaxed)
}

/// The log format on standard error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
// No doc comments on the variants: clap would show them, and give every help its long form.
pub enum LogFormat {
    Text,
    Json,
}

/// Set up the logs on standard error: `CITRINE_LOG` filters them (default `warn`), colour
/// only on a terminal and never with `NO_COLOR`, every line scrubbed.
pub fn init_logs(format: LogFormat) {
    JSON_STDERR.store(
        format == LogFormat::Json,
        std::sync::atomic::Ordering::Relaxed,
    );
    let filter = tracing_subscriber::EnvFilter::try_from_env("CITRINE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    // Colour only on a terminal, and never with NO_COLOR set (no-color.org).
    let ansi = {
        use std::io::IsTerminal;
        std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none()
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(|| ScrubLines::new(std::io::stderr()));
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// An error and its causes on one line, scrubbed of addresses. A cause whose text its parent
/// already shows (most of ours do, so a message reads whole on its own) is not repeated.
pub fn error_text(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = String::new();
    let mut cause = Some(e);
    while let Some(c) = cause {
        let part = c.to_string();
        if !text.contains(&part) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&part);
        }
        cause = c.source();
    }
    scrub_text(&text)
}

/// True when `e` is standard output's reader having gone away.
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Print a summary on standard output: its text, or JSON with `json`; scrubbed either way.
pub fn print_summary<T: serde::Serialize + std::fmt::Display>(
    summary: &T,
    json: bool,
) -> anyhow::Result<()> {
    let text = if json {
        serde_json::to_string_pretty(summary)?
    } else {
        summary.to_string()
    };
    outln!("{}", scrub_text(&text))?;
    Ok(())
}

/// A progress bar on standard error when it is a terminal; nothing otherwise.
pub struct Bar(indicatif::ProgressBar);

impl Bar {
    /// A bar, hidden unless standard error is a terminal.
    pub fn new() -> Self {
        use std::io::IsTerminal;
        let bar = if std::io::stderr().is_terminal() {
            indicatif::ProgressBar::new(0)
        } else {
            indicatif::ProgressBar::hidden()
        };
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{prefix:>16} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}",
            )
            .expect("a valid template")
            .progress_chars("=> "),
        );
        Self(bar)
    }

    /// Take the bar off the terminal.
    pub fn clear(&self) {
        self.0.finish_and_clear();
    }
}

impl run::Progress for Bar {
    fn planned(&self, table: &str, _inputs: usize, bytes: u64) {
        self.0.reset();
        self.0.set_prefix(table.to_owned());
        self.0.set_length(bytes);
        self.0.set_position(0);
    }
    fn input_done(&self, bytes: u64) {
        self.0.inc(bytes);
    }
    fn finished(&self, _table: &str) {
        self.0.finish_and_clear();
    }
}

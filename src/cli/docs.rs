//! `citrine man` and `citrine completions`: the manual pages (one for citrine, one for each
//! command) and shell completion scripts, from the command definitions themselves.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// `man`'s arguments.
#[derive(Debug, clap::Args)]
pub struct ManArgs {
    /// The command whose page to print (`run`, `redshift load`, …); none: citrine's own.
    command: Vec<String>,
    /// Instead: write every page (`citrine.1`, `citrine-run.1`, `citrine-redshift-load.1`, …)
    /// into this folder.
    #[arg(long, conflicts_with = "command")]
    dir: Option<PathBuf>,
}

/// `completions`' arguments.
#[derive(Debug, clap::Args)]
pub struct CompletionsArgs {
    /// The shell.
    shell: clap_complete::Shell,
}

/// The exit codes, as every page states them.
const EXIT_STATUS: &str = "\
.SH \"EXIT STATUS\"
.TP
\\fB0\\fR
Everything went well.
.TP
\\fB1\\fR
Completed with failed inputs (\\fBrun\\fR), or a file could not be read (\\fBinspect\\fR): each is \
named on standard error, and a later run tries the inputs again.
.TP
\\fB2\\fR
Failed: a usage or config error, a table held by another run, a run that failed. Nothing of a \
failed run is published.
";

/// The environment, as every page states it.
const ENVIRONMENT: &str = "\
.SH ENVIRONMENT
.TP
\\fBCITRINE_CONFIG_TOML\\fR
The config's text; wins over \\fBCITRINE_CONFIG\\fR and \\fIcitrine.toml\\fR (not over \\fB\\-c\\fR).
.TP
\\fBCITRINE_CONFIG\\fR
The config's path, or an \\fIs3://bucket/key\\fR object.
.TP
\\fBCITRINE_HASH_KEY\\fR
The key of \\fBhash\\fR column rules (the variable \\fBprivacy.hash_key_env\\fR names), at least 16 \
bytes; read by the commands that hash rows (\\fBrun\\fR, a shard, the Lambda).
.TP
\\fBCITRINE_LOG\\fR
Log filter on standard error (\\fBwarn\\fR by default; \\fBinfo\\fR, \\fBdebug\\fR, or per module).
.TP
\\fBNO_COLOR\\fR
No colour in the logs, even on a terminal.
.TP
\\fBAWS_REGION\\fR, \\fBAWS_PROFILE\\fR, \\fBAWS_ACCESS_KEY_ID\\fR, …
The standard AWS chain: environment, profiles and SSO, container and instance roles.
.TP
\\fBAWS_ENDPOINT_URL\\fR, \\fBAWS_ENDPOINT_URL_S3\\fR, \\fBAWS_ENDPOINT_URL_GLUE\\fR
Endpoints, as the AWS CLI reads them (S3-compatible stores, local test servers).
.TP
\\fBAWS_BATCH_JOB_ARRAY_INDEX\\fR
The shard \\fBrun \\-\\-planned\\fR processes when \\fB\\-\\-shard\\fR is not given.
";

/// The page of `command` (named `name`, `citrine-run` for a command), with the EXIT STATUS
/// and ENVIRONMENT sections.
fn page(command: clap::Command, name: &str) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    let command = command
        .name(name.to_owned())
        .bin_name(name.replace('-', " "));
    clap_mangen::Man::new(command).render(&mut out)?;
    out.extend_from_slice(EXIT_STATUS.as_bytes());
    out.extend_from_slice(ENVIRONMENT.as_bytes());
    Ok(out)
}

/// Every page: (file name without `.1`, page).
fn pages(
    command: &clap::Command,
    name: &str,
    out: &mut Vec<(String, Vec<u8>)>,
) -> anyhow::Result<()> {
    out.push((name.to_owned(), page(command.clone(), name)?));
    for sub in command.get_subcommands() {
        if sub.get_name() != "help" {
            pages(sub, &format!("{name}-{}", sub.get_name()), out)?;
        }
    }
    Ok(())
}

/// Print a page, or write them all.
pub fn man(mut command: clap::Command, args: ManArgs) -> anyhow::Result<ExitCode> {
    command.build();
    if let Some(dir) = &args.dir {
        let mut all = Vec::new();
        pages(&command, "citrine", &mut all)?;
        write_pages(dir, &all)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut name = "citrine".to_owned();
    let mut at = command;
    for part in &args.command {
        let sub = at.find_subcommand(part).cloned().ok_or_else(|| {
            anyhow::anyhow!("{part:?}: no such command of {}", name.replace('-', " "))
        })?;
        name = format!("{name}-{part}");
        at = sub;
    }
    std::io::stdout().lock().write_all(&page(at, &name)?)?;
    Ok(ExitCode::SUCCESS)
}

fn write_pages(dir: &Path, pages: &[(String, Vec<u8>)]) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    for (name, page) in pages {
        std::fs::write(dir.join(format!("{name}.1")), page)?;
    }
    outln!("{} pages written to {}", pages.len(), dir.display())?;
    Ok(())
}

/// Print a completion script.
pub fn completions(mut command: clap::Command, args: CompletionsArgs) -> anyhow::Result<ExitCode> {
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut command, "citrine", &mut script);
    out!("{}", String::from_utf8(script)?)?;
    Ok(ExitCode::SUCCESS)
}

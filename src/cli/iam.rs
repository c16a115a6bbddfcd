//! `citrine iam-policy`: the least-privilege IAM policy the configured job needs.

use std::process::ExitCode;

use citrine::iam::{policy_for, Role};

use super::context::Context;

/// Whose policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum PolicyRole {
    Batch,
    Lambda,
    RedshiftCopy,
    Spectrum,
}

/// `iam-policy`'s arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Whose: a Batch job role (or any host running the CLI), the Lambda's execution role
    /// (adds its SQS trigger and logs), the role Redshift's COPY assumes, or the role
    /// Redshift Spectrum assumes (`redshift ddl --spectrum`).
    #[arg(long = "for", value_enum, default_value_t = PolicyRole::Batch)]
    role: PolicyRole,
}

/// Print the policy document (JSON); what it cannot grant precisely is logged as a warning.
pub fn iam_policy(ctx: &Context, args: Args) -> anyhow::Result<ExitCode> {
    let job = ctx.job()?;
    let role = match args.role {
        PolicyRole::Batch => Role::Batch,
        PolicyRole::Lambda => Role::Lambda,
        PolicyRole::RedshiftCopy => Role::RedshiftCopy,
        PolicyRole::Spectrum => Role::Spectrum,
    };
    let policy = policy_for(&job, role)?;
    for note in &policy.notes {
        tracing::warn!("{note}");
    }
    outln!("{}", serde_json::to_string_pretty(&policy.document)?)?;
    Ok(ExitCode::SUCCESS)
}

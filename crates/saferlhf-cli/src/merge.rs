//! `saferlhf merge`: P-SACPO's linear weight merge of two policies,
//! θ = (1 - q)·θ_a + q·θ_b, into a new Hugging Face model directory.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use saferlhf::learner::merge_models;

/// Arguments of `saferlhf merge`.
#[derive(Args, Debug)]
pub struct MergeArgs {
    /// The model weighted by 1 - q (P-SACPO: the helpfulness-aligned model).
    #[arg(long, value_name = "DIR")]
    pub a: PathBuf,
    /// The model weighted by q (P-SACPO: the SACPO model with the smallest β/λ).
    #[arg(long, value_name = "DIR")]
    pub b: PathBuf,
    /// The weight of `b`, in [0, 1].
    #[arg(long, value_name = "Q", allow_negative_numbers = true)]
    pub q: f64,
    /// The merged model directory (written under a temporary name, then renamed).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Replace `--out` if it exists.
    #[arg(long)]
    pub force: bool,
    /// Print the summary as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

/// Runs `saferlhf merge`.
pub fn run(args: MergeArgs) -> Result<()> {
    let summary = merge_models(&args.a, &args.b, args.q, &args.out, args.force)?;
    eprintln!(
        "merged {} tensors ({} parameters): (1 - {q})·{} + {q}·{} -> {}",
        summary.tensors,
        summary.parameters,
        summary.a.display(),
        summary.b.display(),
        summary.out.display(),
        q = summary.q,
    );
    if args.json {
        println!("{}", serde_json::to_string(&summary)?);
    }
    Ok(())
}

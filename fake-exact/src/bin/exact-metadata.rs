//! `exact-metadata --input <meta-data.json> --out <dir> [--source-label "..."]`
//!
//! Writes one OData V2 `$metadata` document per Exact Online API area into `<dir>`, derived from
//! the scraped REST API reference (see `fake_exact::metadata_convert`). Only files whose bytes
//! changed are written (mtimes stay stable for build scripts); `*.xml` files in `<dir>` that the
//! conversion no longer produces are reported, and removed with `--prune`. A summary (counts,
//! keyless endpoints, omitted navigations, sync/bulk endpoints not derived) goes to stderr.

use clap::Parser;
use fake_exact::metadata_convert::{convert_with_report, default_source_label};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(
    name = "exact-metadata",
    about = "Derive Exact Online $metadata documents (OData V2, one per API area) from the scraped REST API reference JSON"
)]
struct Args {
    /// The scraped reference (`meta-data.json` of exact-online-meta-data-tool).
    #[arg(long)]
    input: PathBuf,
    /// Output folder (created if missing), e.g. `metadata-cache/exact`.
    #[arg(long)]
    out: PathBuf,
    /// Names the input in each document's header comment. Default: the input's file name, plus
    /// "scraped <Month> <YYYY>" when the name carries `-YYYY-MM__`.
    #[arg(long)]
    source_label: Option<String>,
    /// Remove `*.xml` files in the output folder that this conversion does not produce.
    #[arg(long)]
    prune: bool,
}

fn run(args: &Args) -> Result<(), String> {
    let json = std::fs::read_to_string(&args.input)
        .map_err(|e| format!("{}: cannot read: {e}", args.input.display()))?;
    let label = match &args.source_label {
        Some(l) => l.clone(),
        None => default_source_label(
            &args
                .input
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
        ),
    };
    let conversion =
        convert_with_report(&json, &label).map_err(|e| format!("{}: {e}", args.input.display()))?;
    std::fs::create_dir_all(&args.out)
        .map_err(|e| format!("{}: cannot create: {e}", args.out.display()))?;

    let (mut written, mut unchanged) = (0, 0);
    for (name, xml) in &conversion.files {
        let path = args.out.join(name);
        if std::fs::read(&path).ok().as_deref() == Some(xml.as_bytes()) {
            unchanged += 1;
            continue;
        }
        std::fs::write(&path, xml).map_err(|e| format!("{}: cannot write: {e}", path.display()))?;
        written += 1;
    }

    let mut stale = Vec::new();
    let entries = std::fs::read_dir(&args.out)
        .map_err(|e| format!("{}: cannot list: {e}", args.out.display()))?;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".xml") && !conversion.files.contains_key(&name) {
            stale.push(name);
        }
    }
    stale.sort();
    for name in &stale {
        let path = args.out.join(name);
        if args.prune {
            std::fs::remove_file(&path)
                .map_err(|e| format!("{}: cannot remove: {e}", path.display()))?;
            eprintln!("removed stale {}", path.display());
        } else {
            eprintln!(
                "warning: {} is not produced by this conversion (use --prune to remove it)",
                path.display()
            );
        }
    }

    eprintln!(
        "{}: {} written, {} unchanged in {}",
        args.input.display(),
        written,
        unchanged,
        args.out.display()
    );
    eprint!("{}", conversion.report);
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

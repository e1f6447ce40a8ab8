//! Regenerates the entity types of every service in `metadata-cache/` on `cargo build`.
//! No work when nothing changed; errors point at the metadata file's line:column.

fn main() {
    if let Err(errors) = odata_codegen::build_support::generate_all("../metadata-cache") {
        eprintln!("odatagen: the metadata cache does not generate:\n{errors}");
        std::process::exit(1);
    }
}

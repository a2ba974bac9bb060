//! Writes the seed inputs of every fuzz target into `fuzz/corpus/<target>/seed-<name>`, from a real
//! phone and a real in-memory server, so the corpus starts from what songpei really sends.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let seeds = match songpei_fuzz::seeds() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("fuzz-seeds: {e}");
            return ExitCode::FAILURE;
        }
    };
    for (target, name, bytes) in seeds {
        let dir = root.join(target);
        let path = dir.join(format!("seed-{name}"));
        if let Err(e) = std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&path, &bytes)) {
            eprintln!("fuzz-seeds: {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
        println!("{} ({} bytes)", path.display(), bytes.len());
    }
    ExitCode::SUCCESS
}

//! Replays every input kept for the fuzz targets: the corpus (`fuzz/corpus/<target>/`, seeds and
//! what fuzzing found worth keeping) and every input that once crashed a target
//! (`fuzz/regressions/<target>/`). Each must run through its target without a panic.

use std::path::{Path, PathBuf};

fn inputs(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| p.is_file())
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

#[test]
fn every_kept_input_runs_through_its_target_without_a_panic() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut total = 0;
    for (name, target) in songpei_fuzz::TARGETS {
        let corpus = inputs(&root.join("corpus").join(name));
        assert!(
            corpus.iter().any(|p| p
                .file_name()
                .is_some_and(|f| f.to_string_lossy().starts_with("seed-"))),
            "{name} has no seed in fuzz/corpus/{name}"
        );
        let regressions = inputs(&root.join("regressions").join(name));
        for path in corpus.iter().chain(&regressions) {
            let data = std::fs::read(path).expect("read an input");
            eprintln!("{name}: {}", path.display());
            target(&data);
            total += 1;
        }
    }
    eprintln!("{total} inputs replayed");
}

#[test]
fn every_target_has_a_libfuzzer_binary() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("libfuzzer");
    let manifest =
        std::fs::read_to_string(root.join("Cargo.toml")).expect("fuzz/libfuzzer/Cargo.toml");
    for (name, _) in songpei_fuzz::TARGETS {
        let source = std::fs::read_to_string(root.join("fuzz_targets").join(format!("{name}.rs")))
            .unwrap_or_else(|_| panic!("fuzz/libfuzzer/fuzz_targets/{name}.rs"));
        assert!(
            source.contains(&format!("songpei_fuzz::{name}(")),
            "{name}.rs calls its target"
        );
        assert!(
            manifest.contains(&format!("name = \"{name}\"")),
            "{name} in the manifest"
        );
    }
}

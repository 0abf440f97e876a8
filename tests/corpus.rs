//! Our own corpus of real-world manifests (issue 17, tests/corpus/README.md): each file
//! of `accepted/` is applied unchanged to a real agent and deleted again; each file of
//! `refused/` is refused with an error that names what its first line says.

#![allow(clippy::unwrap_used)] // tests may unwrap

mod common;

use std::path::{Path, PathBuf};

use common::TestAgent;

fn files(dir: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/corpus")
        .join(dir);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn the_corpus_is_accepted_or_refused_by_name() {
    let agent = TestAgent::start();
    let accepted = files("accepted");
    assert!(accepted.len() >= 15, "the corpus lost files: {accepted:?}");
    for file in &accepted {
        let path = file.to_str().unwrap();
        let out = agent.berth(&["apply", "-f", path]);
        assert!(out.status.success(), "{path} refused:\n{}", stderr(&out));
        let out = agent.berth(&["delete", "-f", path, "--wait=false"]);
        assert!(
            out.status.success(),
            "{path} not deleted:\n{}",
            stderr(&out)
        );
    }
    for file in files("refused") {
        let path = file.to_str().unwrap();
        let text = std::fs::read_to_string(&file).unwrap();
        let expected = text
            .lines()
            .next()
            .and_then(|line| line.strip_prefix("# refused: "))
            .unwrap_or_else(|| panic!("{path}: no `# refused:` first line"));
        let out = agent.berth(&["apply", "-f", path]);
        assert!(!out.status.success(), "{path} was accepted");
        let error = stderr(&out);
        assert!(
            error.contains(expected),
            "{path}: {expected:?} not in\n{error}"
        );
    }
}

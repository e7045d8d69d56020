//! Tidy checks over the source tree: the dependency rules `crates/README.md` states (read from its
//! tables, so the page and the check cannot drift apart), a `//!` comment opening every source file,
//! and `zeroize` on every crypto crate that offers it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

/// The rows of the markdown table whose header starts with `header`, as (first cell, second cell).
fn table(doc: &str, header: &str) -> Vec<(String, String)> {
    let mut lines = doc.lines().skip_while(|l| !l.starts_with(&format!("| {header}")));
    assert!(lines.next().is_some(), "crates/README.md has no table headed '{header}'");
    lines
        .skip(1)
        .take_while(|l| l.starts_with('|'))
        .map(|l| {
            let cells: Vec<&str> = l.trim_matches('|').split('|').map(str::trim).collect();
            (cells[0].to_owned(), cells.get(1).copied().unwrap_or("").to_owned())
        })
        .collect()
}

fn list(cell: &str) -> BTreeSet<String> {
    cell.split(',').map(str::trim).filter(|s| !s.is_empty() && *s != "none").map(str::to_owned).collect()
}

struct Manifest {
    name: String,
    /// Section ("dependencies", "dev-dependencies", "build-dependencies") → dependency names.
    deps: BTreeMap<String, BTreeSet<String>>,
}

fn manifests() -> Vec<Manifest> {
    let root = root();
    let workspace = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    let members: Vec<String> = workspace
        .lines()
        .skip_while(|l| !l.starts_with("members"))
        .skip(1)
        .take_while(|l| !l.starts_with(']'))
        .map(|l| l.trim().trim_matches(',').trim_matches('"').to_owned())
        .collect();
    assert!(members.len() > 10, "the workspace member list did not parse: {members:?}");
    members
        .iter()
        .map(|m| {
            let text = std::fs::read_to_string(root.join(m).join("Cargo.toml")).unwrap();
            let mut name = String::new();
            let mut section = String::new();
            let mut deps: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
            for line in text.lines().map(str::trim) {
                if let Some(s) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                    section = s.to_owned();
                    assert!(
                        !section.starts_with("dependencies.") && !section.contains("dependencies."),
                        "{m}/Cargo.toml: write dependencies one per line, not as [{section}] tables"
                    );
                    continue;
                }
                if section == "package" && line.starts_with("name") {
                    name = line.split('"').nth(1).unwrap().to_owned();
                }
                if section.ends_with("dependencies") && !line.is_empty() && !line.starts_with('#') {
                    let dep = line.split(['=', '.']).next().unwrap().trim().to_owned();
                    deps.entry(section.clone()).or_default().insert(dep);
                }
            }
            Manifest { name, deps }
        })
        .collect()
}

#[test]
fn crates_depend_only_on_what_the_architecture_doc_allows() {
    let doc = std::fs::read_to_string(root().join("crates/README.md")).unwrap();
    let allowed: BTreeMap<String, BTreeSet<String>> =
        table(&doc, "crate | the Arca crates").into_iter().map(|(c, deps)| (c, list(&deps))).collect();
    let only_in: Vec<(BTreeSet<String>, BTreeSet<String>)> =
        table(&doc, "dependency | only in").into_iter().map(|(d, c)| (list(&d), list(&c))).collect();
    let mut broken = Vec::new();
    for m in manifests() {
        let Some(may) = allowed.get(&m.name) else {
            broken.push(format!("{} is not in the crate table of crates/README.md", m.name));
            continue;
        };
        let normal = m.deps.get("dependencies").cloned().unwrap_or_default();
        for dep in normal.iter().filter(|d| d.starts_with("arca-") || *d == "arcad") {
            if !may.contains(dep) {
                broken.push(format!("{} depends on {dep}, which crates/README.md does not allow", m.name));
            }
        }
        for dep in m.deps.values().flatten() {
            for (deps, crates) in &only_in {
                if deps.contains(dep) && !crates.contains(&m.name) {
                    broken.push(format!("{} depends on {dep}, which only {crates:?} may", m.name));
                }
            }
        }
    }
    assert!(broken.is_empty(), "{}", broken.join("\n"));
}

/// `cargo metadata` for the workspace: (package name → its resolved normal dependencies' names, and
/// package name → (features it offers, features turned on)).
#[allow(clippy::type_complexity)]
fn metadata() -> (BTreeMap<String, BTreeSet<String>>, BTreeMap<String, (BTreeSet<String>, BTreeSet<String>)>) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let run = |offline: bool| {
        let mut cmd = std::process::Command::new(&cargo);
        cmd.args(["metadata", "--format-version", "1", "--manifest-path"]).arg(root().join("Cargo.toml"));
        cmd.arg("--locked");
        if offline {
            cmd.arg("--offline");
        }
        cmd.output().expect("run cargo metadata")
    };
    // Offline first; a registry cache that only holds this platform's crates lacks the manifests of
    // the others (windows-*, android-*), which cargo metadata reads, so then it may download them.
    let mut out = run(true);
    let offline_error = String::from_utf8_lossy(&out.stderr).into_owned();
    if !out.status.success() {
        out = run(false);
    }
    assert!(
        out.status.success(),
        "cargo metadata: offline: {offline_error}\nonline: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut names = BTreeMap::new();
    let mut offered = BTreeMap::new();
    for p in json["packages"].as_array().unwrap() {
        let id = p["id"].as_str().unwrap().to_owned();
        let features: BTreeSet<String> = p["features"].as_object().unwrap().keys().cloned().collect();
        names.insert(id.clone(), (p["name"].as_str().unwrap().to_owned(), features));
    }
    let mut graph = BTreeMap::new();
    for node in json["resolve"]["nodes"].as_array().unwrap() {
        let (name, features) = names[node["id"].as_str().unwrap()].clone();
        let on: BTreeSet<String> =
            node["features"].as_array().unwrap().iter().map(|f| f.as_str().unwrap().to_owned()).collect();
        let deps: BTreeSet<String> = node["deps"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["dep_kinds"].as_array().unwrap().iter().any(|k| k["kind"].is_null()))
            .map(|d| names[d["pkg"].as_str().unwrap()].0.clone())
            .collect();
        graph.entry(name.clone()).or_insert_with(BTreeSet::new).extend(deps);
        let entry = offered.entry(name).or_insert_with(|| (features, BTreeSet::new()));
        entry.1.extend(on);
    }
    (graph, offered)
}

#[test]
fn crates_never_reach_what_the_architecture_doc_keeps_them_from() {
    let doc = std::fs::read_to_string(root().join("crates/README.md")).unwrap();
    let (graph, _) = metadata();
    let mut broken = Vec::new();
    for (krate, never) in table(&doc, "crate | never reaches") {
        let mut seen = BTreeSet::new();
        let mut todo = vec![krate.clone()];
        while let Some(next) = todo.pop() {
            for dep in graph.get(&next).into_iter().flatten() {
                if seen.insert(dep.clone()) {
                    todo.push(dep.clone());
                }
            }
        }
        for forbidden in list(&never) {
            if seen.contains(&forbidden) {
                broken.push(format!("{krate} reaches {forbidden}"));
            }
        }
    }
    assert!(broken.is_empty(), "{}", broken.join("\n"));
}

#[test]
fn every_crypto_crate_that_can_wipe_its_keys_does() {
    // Crates that offer `zeroize` but hold no key material: (name, why).
    const NOT_KEYS: &[(&str, &str)] = &[
        ("chacha20", "rand's generator, used for election jitter"),
        ("generic-array", "a container; the crypto crates above zeroize their own state"),
        ("heapless", "a container"),
        ("serdect", "constant-time serialization helpers"),
    ];
    let (_, offered) = metadata();
    let missing: Vec<&String> = offered
        .iter()
        .filter(|(name, (features, on))| {
            features.contains("zeroize") && !on.contains("zeroize") && !NOT_KEYS.iter().any(|(n, _)| n == name)
        })
        .map(|(name, _)| name)
        .collect();
    assert!(missing.is_empty(), "built without their zeroize feature: {missing:?}");
}

#[test]
fn every_source_file_opens_with_a_doc_comment() {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            let name = entry.file_name();
            if path.is_dir() && name != "target" && !name.to_string_lossy().starts_with('.') {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    for dir in ["crates", "simulation", "benches"] {
        walk(&root().join(dir), &mut files);
    }
    assert!(files.len() > 50);
    let bare: Vec<String> = files
        .iter()
        .filter(|f| {
            let text = std::fs::read_to_string(f).unwrap();
            !text.lines().find(|l| !l.trim().is_empty()).is_some_and(|l| l.starts_with("//!"))
        })
        .map(|f| f.display().to_string())
        .collect();
    assert!(bare.is_empty(), "files without a //! line: {bare:?}");
}

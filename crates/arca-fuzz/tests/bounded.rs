//! The bounded fuzz run CI makes: every target over its seeds and a fixed number of mutations of each
//! (bit flips, boundary bytes, truncations, splices, repeats, random tails), from a fixed seed so a
//! failure replays. `ARCA_FUZZ_MUTATIONS` raises the count for a longer run by hand; libFuzzer
//! (`fuzz/`) is the coverage-guided one.

use arca_fuzz::{seeds, TARGETS};

/// Mutations per seed in CI.
const MUTATIONS_PER_SEED: usize = 2000;
/// Longest mutated input, in bytes.
const INPUT_BYTES_MAX: usize = 64 * 1024;

/// xorshift64*: deterministic, good enough to pick mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

fn mutate(seed: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut out = seed.to_vec();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(out.len());
        match rng.below(7) {
            0 if !out.is_empty() => out[at] ^= 1 << rng.below(8),
            1 if !out.is_empty() => out[at] = [0x00, 0x01, 0x7f, 0x80, 0xff][rng.below(5)],
            2 => out.truncate(at),
            3 => {
                let tail: Vec<u8> = (0..rng.below(64)).map(|_| rng.next() as u8).collect();
                out.extend(tail);
            }
            4 if !out.is_empty() => {
                let end = (at + 1 + rng.below(16)).min(out.len());
                let piece = out[at..end].to_vec();
                for _ in 0..1 + rng.below(8) {
                    out.splice(at..at, piece.iter().copied());
                }
            }
            5 if !out.is_empty() => {
                // A length or count field set huge: postcard's varints and DER lengths both.
                out[at] = 0xff;
                out.splice(at + 1..at + 1, [0xff, 0xff, 0xff, 0x0f]);
            }
            _ => {
                let other = rng.below(out.len());
                if other < out.len() && at < out.len() {
                    out.swap(at, other);
                }
            }
        }
        out.truncate(INPUT_BYTES_MAX);
    }
    out
}

#[test]
fn every_target_refuses_mutated_input_without_panicking() {
    let mutations: usize =
        std::env::var("ARCA_FUZZ_MUTATIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(MUTATIONS_PER_SEED);
    for (name, target) in TARGETS {
        let seeds = seeds::of(name);
        // Slow targets (an RSA decryption per input) get a tenth.
        let per_seed = if *name == "byok" { mutations / 10 } else { mutations };
        let mut rng = Rng(0x5eed ^ name.len() as u64 ^ (name.as_bytes()[0] as u64) << 32);
        for seed in &seeds {
            target(seed);
            for _ in 0..per_seed {
                let input = mutate(seed, &mut rng);
                target(&input);
            }
        }
    }
}

/// With `ARCA_FUZZ_SEEDS_DIR` set, writes every target's seeds to `<dir>/<target>/` (libFuzzer's
/// corpus layout: `cargo fuzz run <target>` reads `fuzz/corpus/<target>`).
#[test]
fn seeds_are_written_for_libfuzzer_when_asked() {
    let Some(dir) = std::env::var_os("ARCA_FUZZ_SEEDS_DIR") else { return };
    for (name, _) in TARGETS {
        let target_dir = std::path::Path::new(&dir).join(name);
        std::fs::create_dir_all(&target_dir).unwrap();
        for (i, seed) in seeds::of(name).iter().enumerate() {
            std::fs::write(target_dir.join(format!("seed-{i}")), seed).unwrap();
        }
    }
}

#[test]
fn every_target_has_a_libfuzzer_binary_and_valid_seeds_where_a_format_has_them() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/fuzz_targets");
    for (name, _) in TARGETS {
        let file = dir.join(format!("{name}.rs"));
        let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        assert!(text.contains(&format!("arca_fuzz::{name}(data)")), "{} calls its target", file.display());
    }
    // Seeds that a decoder takes are what make the mutations reach past the first byte.
    let decoded = |name: &str| seeds::of(name).len() > 1;
    for name in ["raft_append_entries", "raft_log_entry", "proposal", "snapshot_data", "forward_envelope", "jwk"] {
        assert!(decoded(name), "{name} has seeds");
    }
    assert!(arca_raft::wire::append_entries_request(&seeds::of("raft_append_entries")[2]).is_ok());
    assert!(arca_raft::log_store::stored_entry_log_id(&seeds::of("raft_log_entry")[1]).is_ok());
    let snapshot = arca_storage::snapshot::SnapshotFile::from_bytes(seeds::of("snapshot_data")[1].clone());
    assert!(arca_raft::state_machine::verify_snapshot(&snapshot).is_ok());
}

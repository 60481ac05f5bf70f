//! Gives this crate's test and bench binaries an rpath to libtorch's lib directory, so
//! they start without LD_LIBRARY_PATH and can dlopen libtorch_cuda.so (see `device.rs`).
//! `DEP_TCH_LIBTORCH_LIB` is set by torch-sys (`links = "tch"`) for direct dependents.
//!
//! Also writes `$OUT_DIR/shipped.rs`: every file of `checkpoints/` embedded with
//! `include_bytes!` (sorted by name), and a hash of their names and contents, for
//! `src/shipped.rs` to extract them where a binary outside the source tree can read them.

use std::fmt::Write as _;
use std::path::Path;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    if let Ok(dir) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
    }
    if let Err(e) = embed_checkpoints() {
        panic!("embedding models/checkpoints: {e}");
    }
}

/// FNV-1a, 64 bits: enough to tell two sets of checkpoint files apart in a directory name.
fn fnv(hash: &mut u64, bytes: &[u8]) {
    for b in bytes {
        *hash ^= u64::from(*b);
        *hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
}

fn embed_checkpoints() -> std::io::Result<()> {
    let manifest = std::env::var("CARGO_MANIFEST_DIR").map_err(std::io::Error::other)?;
    let out = std::env::var("OUT_DIR").map_err(std::io::Error::other)?;
    let dir = Path::new(&manifest).join("checkpoints");
    // A directory: cargo reruns this script when any file in it changes.
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut files: Vec<(String, std::path::PathBuf)> = Vec::new();
    for entry in std::fs::read_dir(&dir)? {
        let entry = entry?;
        let name = entry.file_name().into_string().map_err(|n| {
            std::io::Error::other(format!("checkpoint file name {n:?} is not UTF-8"))
        })?;
        let shipped = name.ends_with(".json") || name.ends_with(".safetensors");
        if shipped && entry.file_type()?.is_file() {
            files.push((name, entry.path()));
        }
    }
    files.sort();
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    let mut code = String::from(
        "/// The shipped checkpoint files: (file name, contents), sorted by name.\n\
         pub(crate) const FILES: &[(&str, &[u8])] = &[\n",
    );
    for (name, path) in &files {
        let bytes = std::fs::read(path)?;
        fnv(&mut hash, name.as_bytes());
        fnv(&mut hash, &(bytes.len() as u64).to_le_bytes());
        fnv(&mut hash, &bytes);
        let _ = writeln!(
            code,
            "    ({name:?}, include_bytes!({:?})),",
            path.display()
        );
    }
    code.push_str("];\n");
    let _ = writeln!(
        code,
        "/// FNV-1a hash of the shipped files' names, sizes and contents.\n\
         pub(crate) const HASH: &str = \"{hash:016x}\";"
    );
    std::fs::write(Path::new(&out).join("shipped.rs"), code)
}

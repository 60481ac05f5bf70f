//! The checkpoints shipped with augur, and where the models read checkpoints from.
//!
//! Every file of `models/checkpoints/` is embedded in the binary when it is built
//! (`build.rs`). A model's `models_dir` that exists is read as it is; one that doesn't
//! (a binary installed or copied away from its source tree, run where the relative
//! default `models/checkpoints` means nothing) is replaced by the shipped checkpoints,
//! extracted once into a cache directory and read from there:
//!
//! - `$AUGUR_MODELS_DIR` when set, else
//! - `$XDG_CACHE_HOME/augur/checkpoints/<version>-<hash>`, else
//! - `$HOME/.cache/augur/checkpoints/<version>-<hash>`,
//!
//! where `<version>` is the crate's and `<hash>` a hash of the shipped files, so binaries
//! of other builds keep their own. The files are written into a temporary sibling
//! directory that is renamed into place, so a reader never sees half of them; a stamp file
//! (`.augur-shipped`, holding `<version>-<hash>`) marks a complete extraction.
//!
//! Commands that write checkpoints (`augur train`) write to the configured directory,
//! never here.

use std::path::{Path, PathBuf};
use std::sync::Once;

use thiserror::Error;

include!(concat!(env!("OUT_DIR"), "/shipped.rs"));

/// The file marking a complete extraction; it holds [`tag`].
pub const STAMP: &str = ".augur-shipped";

#[derive(Debug, Error)]
pub enum ShippedError {
    #[error("extracting the shipped checkpoints to {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "no directory for the shipped checkpoints: set AUGUR_MODELS_DIR (or HOME / XDG_CACHE_HOME), or point models_dir at a checkpoint directory"
    )]
    NoCacheDir,
    #[error(
        "{path} exists but isn't an extraction of this build's shipped checkpoints (no {STAMP} saying {tag}); remove it or point AUGUR_MODELS_DIR elsewhere"
    )]
    Foreign { path: PathBuf, tag: String },
}

/// `<version>-<hash>` of the checkpoints embedded in this binary.
pub fn tag() -> String {
    format!("{}-{HASH}", env!("CARGO_PKG_VERSION"))
}

/// The directory a model reads its checkpoints from: `configured` when it exists, else
/// the shipped checkpoints, extracted into [`cache_dir`] on first use.
pub fn checkpoint_dir(configured: &Path) -> Result<PathBuf, ShippedError> {
    if configured.exists() {
        return Ok(configured.to_path_buf());
    }
    let dir = cache_dir()?;
    extract_to(&dir)?;
    static SAID: Once = Once::new();
    SAID.call_once(|| {
        tracing::info!(
            "models_dir {} doesn't exist: reading the {} checkpoint files shipped with augur {} from {}",
            configured.display(),
            FILES.len(),
            tag(),
            dir.display()
        );
    });
    Ok(dir)
}

/// Where the shipped checkpoints are extracted: see the module docs.
pub fn cache_dir() -> Result<PathBuf, ShippedError> {
    let set = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(dir) = set("AUGUR_MODELS_DIR") {
        return Ok(PathBuf::from(dir));
    }
    let cache = set("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| set("HOME").map(|home| Path::new(&home).join(".cache")))
        .ok_or(ShippedError::NoCacheDir)?;
    Ok(cache.join("augur").join("checkpoints").join(tag()))
}

/// Whether `dir` holds a complete extraction of this build's checkpoints.
fn complete(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join(STAMP)).is_ok_and(|s| s.trim() == tag())
}

/// Extracts the shipped checkpoints into `dir` unless it already holds them: into a
/// temporary sibling first, renamed to `dir` when complete. A process that loses the
/// race to another one extracting the same files uses the winner's. An existing `dir`
/// without this build's stamp is left alone (an error): it may hold someone's files.
pub fn extract_to(dir: &Path) -> Result<(), ShippedError> {
    if complete(dir) {
        return Ok(());
    }
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ShippedError::Io { path, source }
    };
    let foreign = || ShippedError::Foreign {
        path: dir.to_path_buf(),
        tag: tag(),
    };
    if dir.exists() && !is_empty_dir(dir) {
        return Err(foreign());
    }
    let parent = dir.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(io(parent))?;
    let base = dir.file_name().and_then(|n| n.to_str()).unwrap_or("augur");
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let tmp = parent.join(format!(".{base}.tmp-{}-{nanos}", std::process::id()));
    let written = write_all(&tmp);
    if let Err(e) = written {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    // An empty directory (made by hand, or left by an interrupted run) is replaced.
    let _ = std::fs::remove_dir(dir);
    let renamed = std::fs::rename(&tmp, dir);
    if renamed.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    match renamed {
        Ok(()) => Ok(()),
        // Another process renamed its copy into place first.
        Err(_) if complete(dir) => Ok(()),
        Err(_) if dir.exists() => Err(foreign()),
        Err(source) => Err(ShippedError::Io {
            path: dir.to_path_buf(),
            source,
        }),
    }
}

fn is_empty_dir(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_none())
}

/// Writes every shipped file and then the stamp into a new directory `tmp`.
fn write_all(tmp: &Path) -> Result<(), ShippedError> {
    let io = |path: PathBuf| move |source| ShippedError::Io { path, source };
    std::fs::create_dir(tmp).map_err(io(tmp.to_path_buf()))?;
    for (name, bytes) in FILES {
        let path = tmp.join(name);
        std::fs::write(&path, bytes).map_err(io(path))?;
    }
    let stamp = tmp.join(STAMP);
    std::fs::write(&stamp, tag() + "\n").map_err(io(stamp))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extraction_writes_every_shipped_file_once_and_leaves_foreign_dirs_alone() {
        let tmp = tempfile::tempdir().expect("a temp dir");
        let dir = tmp.path().join("a").join("b");
        extract_to(&dir).expect("extracts");
        assert!(FILES.iter().any(|(n, _)| n.starts_with("seer-v")));
        assert!(FILES.iter().any(|(n, _)| n.starts_with("sage-chain-v")));
        for (name, bytes) in FILES {
            let on_disk = std::fs::read(dir.join(name)).expect("the file is there");
            assert_eq!(on_disk.as_slice(), *bytes, "{name}");
        }
        // Complete: a second call writes nothing (a file changed by hand stays changed).
        let probe = dir.join(FILES[0].0);
        std::fs::write(&probe, b"changed").expect("writable");
        extract_to(&dir).expect("already there");
        assert_eq!(std::fs::read(&probe).expect("readable"), b"changed");
        // No temporary directories left beside it.
        let siblings: Vec<_> = std::fs::read_dir(tmp.path().join("a"))
            .expect("readable")
            .filter_map(|e| e.ok())
            .map(|e| e.file_name())
            .collect();
        assert_eq!(siblings, vec![std::ffi::OsString::from("b")]);
        // A directory with other files and no stamp is not ours: an error, untouched.
        let other = tmp.path().join("other");
        std::fs::create_dir(&other).expect("creatable");
        std::fs::write(other.join("mine.txt"), b"x").expect("writable");
        assert!(matches!(
            extract_to(&other),
            Err(ShippedError::Foreign { .. })
        ));
        assert!(!other.join(STAMP).exists());
    }

    #[test]
    fn an_existing_models_dir_is_read_as_it_is() {
        let tmp = tempfile::tempdir().expect("a temp dir");
        assert_eq!(
            checkpoint_dir(tmp.path()).expect("exists"),
            tmp.path().to_path_buf()
        );
    }
}

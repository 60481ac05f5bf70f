//! Device choice for libtorch models: `"auto" | "cpu" | "cuda:N"`.
//!
//! In: the configured string. Out: a `tch::Device`, logged. State: the process-wide handle
//! of `libtorch_cuda.so`, loaded once. rustc links with `--as-needed`, which drops
//! `libtorch_cuda` from the binary (nothing references its symbols directly), so CUDA would
//! never be found on a GPU host; we `dlopen` it ourselves at first use. Failure (no such
//! library, no NVIDIA driver) means CPU only.

use std::sync::OnceLock;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Where a model runs, as configured.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum DeviceChoice {
    /// CUDA device 0 when `libtorch_cuda` loads and a GPU is visible, else CPU.
    #[default]
    Auto,
    Cpu,
    Cuda(usize),
}

#[derive(Debug, Error)]
pub enum DeviceError {
    #[error("unknown device `{0}`: expected `auto`, `cpu` or `cuda:N`")]
    Parse(String),
    #[error("device cuda:{0} requested but CUDA is not available ({1})")]
    NoCuda(usize, String),
}

impl TryFrom<String> for DeviceChoice {
    type Error = DeviceError;
    fn try_from(s: String) -> Result<Self, DeviceError> {
        s.parse()
    }
}

impl From<DeviceChoice> for String {
    fn from(d: DeviceChoice) -> String {
        d.to_string()
    }
}

impl std::str::FromStr for DeviceChoice {
    type Err = DeviceError;
    fn from_str(s: &str) -> Result<Self, DeviceError> {
        match s {
            "auto" => Ok(DeviceChoice::Auto),
            "cpu" => Ok(DeviceChoice::Cpu),
            _ => s
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(DeviceChoice::Cuda)
                .ok_or_else(|| DeviceError::Parse(s.to_string())),
        }
    }
}

impl std::fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeviceChoice::Auto => write!(f, "auto"),
            DeviceChoice::Cpu => write!(f, "cpu"),
            DeviceChoice::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

/// Result of trying to load `libtorch_cuda.so`: `Ok` when loaded, else why not.
static CUDA_LIB: OnceLock<Result<(), String>> = OnceLock::new();

/// Loads `libtorch_cuda.so` with `RTLD_NOW | RTLD_GLOBAL` so its CUDA kernels and device
/// hooks register with libtorch. The handle is leaked on purpose: the library stays
/// loaded for the life of the process.
#[allow(unsafe_code)]
fn load_libtorch_cuda() -> Result<(), String> {
    use libloading::os::unix::{Library, RTLD_GLOBAL, RTLD_NOW};
    // SAFETY: loading a shared library runs its initializers; libtorch_cuda's only
    // register CUDA backends with the already-loaded libtorch_cpu, which is what we want.
    // The library comes from libtorch's own lib dir (found through the binary's rpath).
    let lib = unsafe { Library::open(Some("libtorch_cuda.so"), RTLD_NOW | RTLD_GLOBAL) };
    match lib {
        Ok(lib) => {
            std::mem::forget(lib);
            Ok(())
        }
        Err(e) => Err(e.to_string()),
    }
}

/// Whether CUDA is usable: `libtorch_cuda` loaded and a GPU visible.
pub fn cuda_status() -> Result<usize, String> {
    CUDA_LIB.get_or_init(load_libtorch_cuda).clone()?;
    if tch::Cuda::is_available() {
        Ok(tch::Cuda::device_count() as usize)
    } else {
        Err("libtorch_cuda loaded but no GPU is visible".to_string())
    }
}

/// Resolves the configured choice to a device and logs which one is used.
pub fn resolve(choice: DeviceChoice) -> Result<tch::Device, DeviceError> {
    let device = match choice {
        DeviceChoice::Cpu => tch::Device::Cpu,
        DeviceChoice::Auto => match cuda_status() {
            Ok(_) => tch::Device::Cuda(0),
            Err(why) => {
                tracing::info!("device auto: CPU ({why})");
                tch::Device::Cpu
            }
        },
        DeviceChoice::Cuda(n) => match cuda_status() {
            Ok(count) if n < count => tch::Device::Cuda(n),
            Ok(count) => {
                return Err(DeviceError::NoCuda(n, format!("{count} GPU(s) visible")));
            }
            Err(why) => return Err(DeviceError::NoCuda(n, why)),
        },
    };
    tracing::info!("models run on {device:?}");
    Ok(device)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        for s in ["auto", "cpu", "cuda:0", "cuda:3"] {
            let d: DeviceChoice = s.parse().unwrap();
            assert_eq!(d.to_string(), s);
        }
        assert!("gpu".parse::<DeviceChoice>().is_err());
        assert!("cuda:x".parse::<DeviceChoice>().is_err());
    }

    #[test]
    fn auto_falls_back_to_cpu_without_a_gpu() {
        let device = resolve(DeviceChoice::Auto).unwrap();
        assert_eq!(device == tch::Device::Cpu, cuda_status().is_err());
        assert_eq!(resolve(DeviceChoice::Cpu).unwrap(), tch::Device::Cpu);
    }
}

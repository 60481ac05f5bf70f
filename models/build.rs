//! Gives this crate's test and bench binaries an rpath to libtorch's lib directory, so
//! they start without LD_LIBRARY_PATH and can dlopen libtorch_cuda.so (see `device.rs`).
//! `DEP_TCH_LIBTORCH_LIB` is set by torch-sys (`links = "tch"`) for direct dependents.
fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    if let Ok(dir) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
    }
}

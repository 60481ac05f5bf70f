//! Process-wide libtorch settings the application chooses: intra-op threads and the seed of
//! the generator that initialises weights and draws dropout masks.

/// libtorch's intra-op threads for this process.
pub fn set_threads(threads: usize) {
    tch::set_num_threads(threads as i32);
}

/// Seeds libtorch's process-wide generator: the same seed gives the same initial weights.
pub fn seed(seed: i64) {
    tch::manual_seed(seed);
}

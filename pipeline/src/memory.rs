//! Giving freed memory back to the system. glibc's allocator keeps the pages a burst freed
//! in its arenas, so a job's resident memory stays at the peak of its largest spike long
//! after the spike has drained; `malloc_trim` returns the free pages at the top of every
//! arena and the unused ones inside them. The job's main thread calls [`Trim::tick`] on
//! each pass of its loop; a trim runs at most every [`TRIM_EVERY`].

use std::time::{Duration, Instant};

/// How often freed memory is handed back: a trim of a few hundred MB of heap takes
/// milliseconds.
pub const TRIM_EVERY: Duration = Duration::from_secs(10);

pub struct Trim {
    last: Instant,
}

impl Default for Trim {
    fn default() -> Self {
        Trim {
            last: Instant::now(),
        }
    }
}

impl Trim {
    /// Trims when [`TRIM_EVERY`] has passed since the last trim.
    pub fn tick(&mut self) {
        if self.last.elapsed() >= TRIM_EVERY {
            self.last = Instant::now();
            release_free_memory();
        }
    }
}

/// Returns the allocator's free pages to the system (glibc), or does nothing.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub fn release_free_memory() {
    // SAFETY: malloc_trim takes no pointers and is thread-safe (it locks each arena).
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Returns the allocator's free pages to the system (glibc), or does nothing.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn release_free_memory() {}

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

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod tests {
    use super::*;

    fn rss_mb() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap_or(0)
            / 1024
    }

    /// 100 MB of small blocks freed under one still in use stay with the allocator (the top
    /// of the heap can't shrink past the live block) until they are trimmed.
    #[test]
    fn freed_blocks_under_a_live_one_are_given_back() {
        let blocks: Vec<Box<[u8; 2048]>> = (0..50_000).map(|i| Box::new([i as u8; 2048])).collect();
        let live = Box::new([1u8; 2048]);
        let held = rss_mb();
        drop(blocks);
        let freed = rss_mb();
        assert!(
            freed + 50 > held,
            "freed without a trim: {held} → {freed} MB"
        );
        release_free_memory();
        let trimmed = rss_mb();
        assert!(trimmed + 50 < freed, "{freed} → {trimmed} MB");
        assert_eq!(live[0], 1);
    }
}

//! Interned names: operators that hold many records naming few services or operations keep
//! one shared copy of each name.

use std::collections::HashSet;
use std::sync::Arc;

type Hasher = foldhash::fast::RandomState;

/// Names of held records, interned so that held records don't own strings. Names no held
/// record uses any more are dropped whenever the table has doubled since the last sweep, so
/// it stays proportional to the live names.
#[derive(Default)]
pub struct Names {
    set: HashSet<Arc<str>, Hasher>,
    after_sweep: usize,
}

impl Names {
    /// The shared copy of `name`.
    pub fn intern(&mut self, name: &str) -> Arc<str> {
        if let Some(n) = self.set.get(name) {
            return Arc::clone(n);
        }
        let n: Arc<str> = Arc::from(name);
        self.set.insert(Arc::clone(&n));
        n
    }

    /// Drops the names no held record uses, if the table has doubled since the last sweep.
    pub fn sweep(&mut self) {
        if self.set.len() > 2 * self.after_sweep.max(512) {
            self.set.retain(|n| Arc::strong_count(n) > 1);
            self.after_sweep = self.set.len();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_is_held_once_and_dropped_when_unused() {
        let mut names = Names::default();
        let a = names.intern("a");
        assert!(Arc::ptr_eq(&a, &names.intern("a")));
        for i in 0..1100 {
            drop(names.intern(&format!("n{i}")));
        }
        names.sweep();
        assert_eq!(names.set.len(), 1, "only the name still held is kept");
        assert!(Arc::ptr_eq(&a, &names.intern("a")));
    }
}

//! Groups records by their resource (e.g. `(service, instance)`), in order of first
//! appearance: in, a slice and a key function; out, one list of record references per
//! resource.

use std::collections::HashMap;
use std::hash::Hash;

pub(crate) fn by_resource<'a, T, K: Copy + Eq + Hash>(
    items: &'a [T],
    key: impl Fn(&'a T) -> K,
) -> Vec<(K, Vec<&'a T>)> {
    let mut index: HashMap<K, usize> = HashMap::new();
    let mut groups: Vec<(K, Vec<&'a T>)> = Vec::new();
    for item in items {
        let k = key(item);
        let i = *index.entry(k).or_insert_with(|| {
            groups.push((k, Vec::new()));
            groups.len() - 1
        });
        if let Some((_, g)) = groups.get_mut(i) {
            g.push(item);
        }
    }
    groups
}

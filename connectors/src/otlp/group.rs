//! Groups records by their `(service, instance)` resource, in order of first appearance:
//! in, a slice and a key function; out, one list of record references per resource.

use std::collections::HashMap;

pub(crate) fn by_resource<'a, T>(
    items: &'a [T],
    key: impl Fn(&'a T) -> (&'a str, &'a str),
) -> Vec<((&'a str, &'a str), Vec<&'a T>)> {
    let mut index: HashMap<(&'a str, &'a str), usize> = HashMap::new();
    let mut groups: Vec<((&'a str, &'a str), Vec<&'a T>)> = Vec::new();
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

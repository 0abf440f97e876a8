//! Sorting with one copy of the sort algorithm in the binary.
//!
//! `slice::sort`, `sort_by` and `sort_by_key` compile the whole of std's stable sort
//! (about 3 KiB of aarch64 code) once per element type *and* per comparison closure, and
//! every call site brings its own closure type: berth's forty-odd sorts were a copy each.
//! These helpers instead sort the *indices* `0..len` with a single, non-generic sort that
//! compares through `&mut dyn FnMut`, then swap the elements into that order. Per call
//! site that leaves a few dozen bytes of glue, for one indirect call per comparison,
//! which is nothing beside what berth sorts (pods, nodes, ports, a few files): keep std's
//! methods for anything that sorts large slices in a loop.
//!
//! Like the std methods they replace, every sort here is stable: elements that compare
//! equal keep their order.

use std::cmp::Ordering;

/// Sorts `items` in ascending order.
pub fn sort<T: Ord>(items: &mut [T]) {
    sort_by(items, T::cmp);
}

/// Sorts `items` by `compare`, keeping the order of elements it calls equal.
pub fn sort_by<T>(items: &mut [T], mut compare: impl FnMut(&T, &T) -> Ordering) {
    let order = sorted_order(items.len(), &mut |a, b| compare(&items[a], &items[b]));
    apply_order(order, &mut |a, b| items.swap(a, b));
}

/// Sorts `items` by the key `key` extracts (called for each comparison, as
/// `slice::sort_by_key` does), keeping the order of elements with equal keys.
pub fn sort_by_key<T, K: Ord>(items: &mut [T], mut key: impl FnMut(&T) -> K) {
    sort_by(items, |a, b| key(a).cmp(&key(b)));
}

/// The indices `0..len` in the order that sorts the elements `compare` compares by index:
/// `order[k]` is the index of the element that belongs at position `k`.
fn sorted_order(len: usize, compare: &mut dyn FnMut(usize, usize) -> Ordering) -> Vec<usize> {
    let mut order: Vec<usize> = (0..len).collect();
    order.sort_by(|&a, &b| compare(a, b));
    order
}

/// Rearranges a sequence, through `swap`, so that position `k` holds what position
/// `order[k]` held.
///
/// Positions are filled from the front: filling position `k` swaps the element there
/// with the wanted one, which sends it to a position after `k`. So an element wanted at
/// `k` that started at an earlier position has been displaced from there, maybe several
/// times: each time, where it went is recorded in `order` at the position it left, and
/// following those records ends at the first position not yet filled, where it is now.
fn apply_order(mut order: Vec<usize>, swap: &mut dyn FnMut(usize, usize)) {
    for k in 0..order.len() {
        let mut from = order[k];
        while from < k {
            from = order[from];
        }
        order[k] = from;
        swap(k, from);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic spread of values with many repeats, so stability is exercised.
    fn scrambled(len: usize, seed: u64) -> Vec<(u8, usize)> {
        let mut state = seed;
        (0..len)
            .map(|position| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((state >> 59) as u8, position)
            })
            .collect()
    }

    #[test]
    fn matches_the_std_stable_sort_on_every_length_and_many_orders() {
        for len in 0..70 {
            for seed in 0..20 {
                let mut ours = scrambled(len, seed);
                let mut theirs = ours.clone();
                // Key only on the first field: the second records the original position,
                // so equal keys out of their original order would show.
                sort_by_key(&mut ours, |item| item.0);
                theirs.sort_by_key(|item| item.0);
                assert_eq!(ours, theirs, "len {len}, seed {seed}");
            }
        }
    }

    #[test]
    fn sorts_reversed_and_already_sorted_input() {
        let mut descending: Vec<u32> = (0..100).rev().collect();
        sort(&mut descending);
        assert_eq!(descending, (0..100).collect::<Vec<u32>>());
        sort(&mut descending);
        assert_eq!(descending, (0..100).collect::<Vec<u32>>());
    }

    #[test]
    fn sort_by_keeps_equal_elements_in_order_and_moves_owned_values() {
        let mut names: Vec<String> = ["b2", "a1", "b1", "a2", "c1", "a3"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        sort_by(&mut names, |a, b| a[..1].cmp(&b[..1]));
        assert_eq!(names, ["a1", "a2", "a3", "b2", "b1", "c1"]);
        sort_by(&mut names, |a, b| b.cmp(a));
        assert_eq!(names, ["c1", "b2", "b1", "a3", "a2", "a1"]);
    }

    #[test]
    fn apply_order_follows_displaced_elements() {
        // A 5-cycle and a 3-cycle with a fixed point between them.
        let order = vec![4, 0, 1, 2, 3, 5, 8, 6, 7];
        let mut items: Vec<usize> = (0..order.len()).collect();
        apply_order(order.clone(), &mut |a, b| items.swap(a, b));
        assert_eq!(items, order);
    }
}

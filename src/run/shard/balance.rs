//! Splitting a run's inputs into shards balanced by bytes.
//!
//! Largest first: customers in falling order of bytes, each placed whole on the least loaded
//! shard when that keeps the shard within [`SLACK`] of the mean, so a partition gets files
//! from few shards. A customer too large for that is split file by file (largest first),
//! filling the shards it already occupies before opening the least loaded one. The largest
//! shard then exceeds the mean by at most the slack or one input, whichever is more.

use std::collections::BTreeMap;

/// How far above the mean a shard may grow to keep a customer's inputs together.
pub const SLACK: f64 = 1.05;

/// One input as the balancer sees it.
#[derive(Debug, Clone, Copy)]
pub struct Item<'a> {
    /// Its customer (inputs without one count as one group).
    pub customer: Option<&'a str>,
    /// Its size in bytes.
    pub bytes: u64,
}

/// Indices of `items` per shard: exactly `shards` lists (some empty when there are fewer
/// inputs than shards), each in input order.
pub fn balance(items: &[Item<'_>], shards: usize) -> Vec<Vec<usize>> {
    let shards = shards.max(1);
    let mut groups: BTreeMap<Option<&str>, Vec<usize>> = BTreeMap::new();
    for (i, item) in items.iter().enumerate() {
        groups.entry(item.customer).or_default().push(i);
    }
    let bytes = |i: &usize| items[*i].bytes;
    let mut groups: Vec<(u64, Vec<usize>)> = groups
        .into_values()
        .map(|g| (g.iter().map(bytes).sum(), g))
        .collect();
    // Largest first; ties keep the customers' order (the sort is stable).
    groups.sort_by_key(|g| std::cmp::Reverse(g.0));
    let total: u64 = groups.iter().map(|g| g.0).sum();
    let cap = (total as f64 / shards as f64 * SLACK).ceil() as u64;

    let mut loads = vec![0u64; shards];
    let mut out = vec![Vec::new(); shards];
    let least = |loads: &[u64]| {
        (0..loads.len())
            .min_by_key(|&s| (loads[s], s))
            .expect("at least one shard")
    };
    for (group_bytes, mut group) in groups {
        let s = least(&loads);
        if loads[s] + group_bytes <= cap {
            loads[s] += group_bytes;
            out[s].extend(group);
            continue;
        }
        group.sort_by_key(|i| std::cmp::Reverse(bytes(i)));
        let mut holding: Vec<usize> = Vec::new();
        for i in group {
            let size = bytes(&i);
            // The fullest shard of this customer's that still has room, else the least loaded.
            let s = holding
                .iter()
                .copied()
                .filter(|&s| loads[s] + size <= cap)
                .max_by_key(|&s| loads[s])
                .unwrap_or_else(|| least(&loads));
            if !holding.contains(&s) {
                holding.push(s);
            }
            loads[s] += size;
            out[s].push(i);
        }
    }
    for list in &mut out {
        list.sort_unstable();
    }
    out
}

/// The shard count that gives shards of about `target_bytes` each (at least one).
pub fn shards_for(total_bytes: u64, target_bytes: u64) -> usize {
    total_bytes.div_ceil(target_bytes.max(1)).max(1) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loads(items: &[Item<'_>], shards: &[Vec<usize>]) -> Vec<u64> {
        shards
            .iter()
            .map(|s| s.iter().map(|&i| items[i].bytes).sum())
            .collect()
    }

    /// Every input in exactly one shard.
    fn assert_partition(items: &[Item<'_>], shards: &[Vec<usize>]) {
        let mut all: Vec<usize> = shards.iter().flatten().copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..items.len()).collect::<Vec<_>>());
    }

    #[test]
    fn a_customer_with_most_of_the_bytes_is_spread_within_a_quarter_of_the_mean() {
        // One customer holds 70% of the bytes over many files of varied sizes; seven others
        // share the rest. Sizes vary as real logs do (a deterministic pseudo-random walk).
        let mut sizes = Vec::new();
        let mut x: u64 = 12345;
        let mut next = |scale: u64| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            scale / 2 + (x >> 33) % scale
        };
        let names = ["big", "c1", "c2", "c3", "c4", "c5", "c6", "c7"];
        for _ in 0..140 {
            sizes.push(("big", next(10_000_000)));
        }
        let big: u64 = sizes.iter().map(|s| s.1).sum();
        let per_other = big * 3 / 7 / 7;
        for name in &names[1..] {
            let mut left = per_other;
            while left > 0 {
                let s = next(4_000_000).min(left);
                sizes.push((name, s));
                left -= s;
            }
        }
        let items: Vec<Item<'_>> = sizes
            .iter()
            .map(|(c, b)| Item {
                customer: Some(c),
                bytes: *b,
            })
            .collect();
        let total: u64 = items.iter().map(|i| i.bytes).sum();
        assert!((0.69..0.71).contains(&(big as f64 / total as f64)));
        for shards in [2, 3, 4, 8, 16] {
            let out = balance(&items, shards);
            assert_eq!(out.len(), shards);
            assert_partition(&items, &out);
            let loads = loads(&items, &out);
            let mean = total as f64 / shards as f64;
            let max = *loads.iter().max().unwrap() as f64;
            assert!(
                max <= 1.25 * mean,
                "{shards} shards: {loads:?}, mean {mean}"
            );
            // The small customers are not split while shards are larger than they are (at 16
            // shards a shard is barely larger than one of them, and balance comes first).
            if shards > 8 {
                continue;
            }
            for name in &names[1..] {
                let holding = out
                    .iter()
                    .filter(|s| s.iter().any(|&i| items[i].customer == Some(*name)))
                    .count();
                assert_eq!(holding, 1, "{name} over {holding} shards of {shards}");
            }
        }
    }

    #[test]
    fn customers_stay_whole_when_balance_allows() {
        let items: Vec<Item<'_>> = ["a", "a", "b", "b", "c", "c", "d", "d"]
            .iter()
            .map(|c| Item {
                customer: Some(c),
                bytes: 100,
            })
            .collect();
        let out = balance(&items, 4);
        assert_eq!(out, [vec![0, 1], vec![2, 3], vec![4, 5], vec![6, 7]]);
    }

    #[test]
    fn fewer_inputs_than_shards_leave_shards_empty_and_one_shard_takes_all() {
        let items = [
            Item {
                customer: None,
                bytes: 5,
            },
            Item {
                customer: Some("x"),
                bytes: 7,
            },
        ];
        let out = balance(&items, 4);
        assert_partition(&items, &out);
        assert_eq!(out.iter().filter(|s| s.is_empty()).count(), 2);
        assert_eq!(balance(&items, 1), [vec![0, 1]]);
        assert_eq!(balance(&[], 3), [vec![], vec![], vec![]] as [Vec<usize>; 3]);
    }

    #[test]
    fn a_target_size_gives_the_shard_count() {
        assert_eq!(shards_for(0, 1_000), 1);
        assert_eq!(shards_for(1_000, 1_000), 1);
        assert_eq!(shards_for(1_001, 1_000), 2);
        assert_eq!(shards_for(10_000, 1_000), 10);
    }
}

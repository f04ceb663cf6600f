//! A consistent hash ring with virtual nodes: which replica owns a policy (by `namespace/name`)
//! when policies are shared across operator replicas. Each member is placed at `vnodes` points
//! of a 64-bit ring; a key belongs to the member at the first point at or after its hash. A
//! change of membership moves only the keys between the changed member's points and their
//! predecessors (about 1/N of them), and every key has exactly one owner.
//!
//! The hash is FNV-1a with a 64-bit finalizer, fixed by this file: every replica, whatever its
//! build, computes the same ring from the same members.
//!
//! Depends on nothing else in the crate; `controller::shard` builds the replicas' rings with it.

/// A ring over a set of members.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ring {
    /// (point, member index), sorted by point.
    points: Vec<(u64, usize)>,
    members: Vec<String>,
}

/// Virtual nodes per member by default: owners within a few percent of an even share.
pub const DEFAULT_VNODES: u32 = 128;
/// The most virtual nodes per member, and the most members, a ring is built with.
pub const MAX_VNODES: u32 = 4096;
pub const MAX_MEMBERS: usize = 1024;

/// The ring's hash of `bytes`.
pub fn hash(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    // splitmix64's finalizer spreads FNV's weak low bits over the whole word.
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

impl Ring {
    /// A ring over `members` (duplicates count once; at most [`MAX_MEMBERS`]), each at `vnodes`
    /// points (1 to [`MAX_VNODES`]).
    pub fn new(members: &[String], vnodes: u32) -> Self {
        let vnodes = vnodes.clamp(1, MAX_VNODES);
        let mut unique: Vec<String> = members.to_vec();
        unique.sort();
        unique.dedup();
        unique.truncate(MAX_MEMBERS);
        let mut points = Vec::with_capacity(unique.len().saturating_mul(vnodes as usize));
        for (i, member) in unique.iter().enumerate() {
            for v in 0..vnodes {
                points.push((hash(format!("{member}#{v}").as_bytes()), i));
            }
        }
        // Ties (two members at one point) go to the member that sorts first, on every replica.
        points.sort_unstable();
        points.dedup_by_key(|p| p.0);
        Self {
            points,
            members: unique,
        }
    }

    /// The members, sorted.
    pub fn members(&self) -> &[String] {
        &self.members
    }

    /// The member that owns `key`; `None` on an empty ring.
    pub fn owner(&self, key: &str) -> Option<&str> {
        let h = hash(key.as_bytes());
        let at = self.points.partition_point(|(point, _)| *point < h);
        let (_, member) = self.points.get(at).or_else(|| self.points.first())?;
        self.members.get(*member).map(String::as_str)
    }

    /// The owner of a policy `namespace/name`.
    pub fn owner_of(&self, namespace: &str, name: &str) -> Option<&str> {
        self.owner(&format!("{namespace}/{name}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn ring(members: &[&str]) -> Ring {
        let members: Vec<String> = members.iter().map(|m| (*m).to_owned()).collect();
        Ring::new(&members, DEFAULT_VNODES)
    }

    fn keys(n: usize) -> Vec<String> {
        (0..n)
            .map(|i| format!("ns-{}/policy-{i}", i % 37))
            .collect()
    }

    #[test]
    fn the_hash_is_fixed_by_this_file() {
        // The same on every replica and every build: changing it would reshuffle every policy.
        // FNV-1a then splitmix64's finalizer, worked out independently of this code.
        assert_eq!(hash(b""), 0xf52a_15e9_a9b5_e89b);
        assert_eq!(hash(b"shop/web"), 0xbcdb_ab90_1d2a_36bb);
    }

    #[test]
    fn an_empty_ring_owns_nothing_and_one_member_owns_everything() {
        assert_eq!(ring(&[]).owner("a/b"), None);
        let one = ring(&["op-0"]);
        assert!(keys(100).iter().all(|k| one.owner(k) == Some("op-0")));
    }

    #[test]
    fn shares_are_close_to_even() {
        let r = ring(&["op-0", "op-1", "op-2"]);
        let mut count: HashMap<&str, usize> = HashMap::new();
        let all = keys(30_000);
        for k in &all {
            *count.entry(r.owner(k).unwrap()).or_default() += 1;
        }
        for (member, n) in &count {
            assert!(
                (8_000..=12_000).contains(n),
                "{member} owns {n} of 30000: {count:?}"
            );
        }
    }

    proptest::proptest! {
        /// Adding a member moves keys only to it, removing one moves only its keys, and each
        /// key has one owner among the members whatever their order.
        #[test]
        fn a_change_of_membership_moves_only_the_changed_members_keys(
            n in 1usize..8,
            added in "[a-z]{1,8}",
            order in proptest::collection::vec(0usize..8, 0..8),
        ) {
            let members: Vec<String> = (0..n).map(|i| format!("op-{i}")).collect();
            let mut shuffled = members.clone();
            for (i, j) in order.iter().enumerate() {
                let (a, b) = (i % shuffled.len(), j % shuffled.len());
                shuffled.swap(a, b);
            }
            let before = Ring::new(&members, 64);
            proptest::prop_assert_eq!(&before, &Ring::new(&shuffled, 64));
            let mut grown = members.clone();
            grown.push(format!("new-{added}"));
            let after = Ring::new(&grown, 64);
            let removed = Ring::new(&members[1..], 64);
            let mut moved = 0usize;
            for k in keys(2_000) {
                let was = before.owner(&k).unwrap();
                let now = after.owner(&k).unwrap();
                if was != now {
                    proptest::prop_assert_eq!(now, format!("new-{added}"));
                    moved += 1;
                }
                match removed.owner(&k) {
                    Some(owner) if was != "op-0" => proptest::prop_assert_eq!(owner, was),
                    Some(owner) => proptest::prop_assert_ne!(owner, "op-0"),
                    None => proptest::prop_assert_eq!(n, 1),
                }
            }
            // About 1/(n+1) of the keys move to the new member; never most of them.
            proptest::prop_assert!(moved <= 2_000 * 3 / (n + 1) + 100, "{} moved", moved);
        }
    }
}

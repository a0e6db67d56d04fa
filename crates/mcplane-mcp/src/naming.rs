//! Namespacing: the names under which upstream tools and prompts are exposed downstream.
//!
//! [`assign`] takes the naming rules ([`NamingConfig`]: prefix mode, delimiter, `max_len`) and
//! every `(server, item)` pair of one kind (tools, or prompts) and returns each item's exposed
//! name plus the reverse map that routes a call back to `(server, original name)`.
//!
//! - `always`: `server{delimiter}name`.
//! - `when_needed`: `name`, unless the same name is listed by two or more servers; then every one
//!   of those is prefixed.
//! - `never`: `name`; when two servers list the same name, the first server (in input order,
//!   which is config order) keeps it and the others are hidden and reported as [`Collision`]s.
//!
//! Every exposed name matches `^[A-Za-z0-9_.-]{1,max_len}$`: other characters become `_`, and a
//! longer name is cut and given `-` plus 8 hex digits of the SHA-256 of the full name, so it is
//! the same after every restart. If two different items still end up with one name (after
//! sanitising or shortening, or `a__b`+`c` against `a`+`b__c`), the item whose name needed no
//! change keeps it, ties going to the earlier server and then the smaller original name, and the
//! others get a hash suffix derived from their `(server, name)`. No two items ever share an
//! exposed name, and the result depends only on the set of items and the order of servers, never
//! on the order of items within a server.

use mcplane_config::{NamingConfig, PrefixMode};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;

/// Length of the `-` + 8 hex digits suffix of a shortened name.
const SUFFIX_LEN: usize = 9;

/// How many disambiguation suffixes are tried before an item is reported as unnameable (only
/// reachable with a tiny `max_len`).
const MAX_ATTEMPTS: u32 = 64;

/// Where an exposed name leads: the upstream server and the item's own name there.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Origin {
    /// The upstream server's configured name.
    pub server: String,
    /// The item's name as the server lists it.
    pub name: String,
}

/// Why an item got no exposed name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CollisionReason {
    /// Prefix mode `never`: an earlier server lists an item with the same name.
    Shadowed {
        /// The server whose item keeps the name.
        kept: String,
    },
    /// The server listed the same name more than once; the first is exposed.
    Duplicate,
    /// No unique name fits in `max_len`.
    NoFreeName,
}

/// An item hidden because it could not get an exposed name of its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Collision {
    /// The server listing the hidden item.
    pub server: String,
    /// The hidden item's name.
    pub name: String,
    /// Why it is hidden.
    pub reason: CollisionReason,
}

impl fmt::Display for Collision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (server, name) = (&self.server, &self.name);
        match &self.reason {
            CollisionReason::Shadowed { kept } => write!(
                f,
                "{name:?} of server {server} is hidden: server {kept} (earlier in config) exposes \
                 the same name and prefix mode is `never`"
            ),
            CollisionReason::Duplicate => write!(
                f,
                "{name:?} of server {server} is hidden: the server lists that name more than once"
            ),
            CollisionReason::NoFreeName => write!(
                f,
                "{name:?} of server {server} is hidden: no unique name fits in max_len"
            ),
        }
    }
}

/// The exposed names of one kind of item.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Assignment {
    /// One entry per input pair, in input order: the exposed name, or `None` if the item is
    /// hidden (see `collisions`).
    pub exposed: Vec<Option<String>>,
    /// Exposed name → where it leads. A bijection with the exposed items.
    pub reverse: BTreeMap<String, Origin>,
    /// Items left without a name, for logs and `/readyz`.
    pub collisions: Vec<Collision>,
}

impl Assignment {
    /// Where an exposed name leads.
    pub fn lookup(&self, exposed: &str) -> Option<&Origin> {
        self.reverse.get(exposed)
    }

    /// An exposed name split into `(server, original name)`.
    pub fn split(&self, exposed: &str) -> Option<(&str, &str)> {
        self.lookup(exposed)
            .map(|o| (o.server.as_str(), o.name.as_str()))
    }

    /// The exposed name of `server`'s item `name`, if it has one.
    pub fn exposed_name(&self, server: &str, name: &str) -> Option<&str> {
        self.reverse
            .iter()
            .find(|(_, o)| o.server == server && o.name == name)
            .map(|(e, _)| e.as_str())
    }
}

/// Whether `name` may be exposed: 1 to `max_len` characters of `[A-Za-z0-9_.-]`.
pub fn is_valid(name: &str, max_len: usize) -> bool {
    !name.is_empty() && name.len() <= max_len && name.chars().all(allowed)
}

fn allowed(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')
}

/// `name` with every character outside `[A-Za-z0-9_.-]` replaced by `_` (`_` for an empty name).
pub fn sanitize(name: &str) -> String {
    if name.is_empty() {
        return "_".into();
    }
    name.chars()
        .map(|c| if allowed(c) { c } else { '_' })
        .collect()
}

/// The first 8 hex digits of the SHA-256 of `parts` joined by NUL bytes.
fn hash8(parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            h.update([0u8]);
        }
        h.update(p);
    }
    hex::encode(&h.finalize()[..4])
}

/// `base` cut to leave room for `-` + `hash`, then the suffix; all of it within `max_len`.
fn with_suffix(base: &str, hash: &str, max_len: usize) -> String {
    if max_len <= SUFFIX_LEN {
        // No room for a readable part: the hash alone (cut to fit).
        return hash[..max_len.min(hash.len())].to_string();
    }
    // `base` is sanitised, hence ASCII: byte indices are character boundaries.
    let keep = base.len().min(max_len - SUFFIX_LEN);
    format!("{}-{hash}", &base[..keep])
}

/// The exposed form of a full name: sanitised, and if longer than `max_len`, cut with a stable
/// suffix from the SHA-256 of the full (unsanitised, uncut) name.
pub fn shorten(full: &str, max_len: usize) -> String {
    let max_len = max_len.max(1);
    let clean = sanitize(full);
    if clean.len() <= max_len {
        clean
    } else {
        with_suffix(&clean, &hash8(&[full.as_bytes()]), max_len)
    }
}

/// One distinct `(server, name)` of the input.
struct Item<'a> {
    server: &'a str,
    name: &'a str,
    /// Position of the server among the input's servers (first appearance).
    rank: usize,
    /// The name it asks for before sanitising and shortening.
    desired: String,
    /// `desired` made valid.
    candidate: String,
}

impl Item<'_> {
    /// Lower sorts first when two items want the same name: unchanged names, then earlier
    /// servers, then smaller original names.
    fn priority(&self) -> (bool, usize, &str) {
        (self.candidate != self.desired, self.rank, self.name)
    }
}

/// Computes the exposed names of one kind of item (tools, or prompts).
///
/// `items` are `(server, name)` pairs; servers count in the order they first appear (config
/// order). The order of items within a server does not matter.
pub fn assign<S: AsRef<str>, N: AsRef<str>>(rules: &NamingConfig, items: &[(S, N)]) -> Assignment {
    assign_reserved(rules, items, &BTreeSet::new())
}

/// [`assign`], with `reserved` names already taken (e.g. names a virtual server's overrides
/// give): an item that would get one of them is disambiguated as if another item held it.
pub fn assign_reserved<S: AsRef<str>, N: AsRef<str>>(
    rules: &NamingConfig,
    items: &[(S, N)],
    reserved: &BTreeSet<String>,
) -> Assignment {
    let max_len = rules.max_len.max(1);
    let mut out = Assignment {
        exposed: vec![None; items.len()],
        ..Assignment::default()
    };

    // Distinct items, server ranks, duplicates.
    let mut ranks: HashMap<&str, usize> = HashMap::new();
    let mut seen: HashSet<(&str, &str)> = HashSet::new();
    let mut unique: Vec<(usize, &str, &str)> = Vec::new(); // (input index, server, name)
    for (i, (s, n)) in items.iter().enumerate() {
        let (s, n) = (s.as_ref(), n.as_ref());
        let next = ranks.len();
        ranks.entry(s).or_insert(next);
        if seen.insert((s, n)) {
            unique.push((i, s, n));
        } else {
            out.collisions.push(Collision {
                server: s.into(),
                name: n.into(),
                reason: CollisionReason::Duplicate,
            });
        }
    }
    let rank = |s: &str| ranks.get(s).copied().unwrap_or(usize::MAX);

    // The name each item asks for, by prefix mode.
    let prefixed = |s: &str, n: &str| format!("{s}{}{n}", rules.delimiter);
    let mut wanted: Vec<(usize, Item<'_>)> = Vec::with_capacity(unique.len());
    match rules.prefix {
        PrefixMode::Always => {
            for &(i, s, n) in &unique {
                wanted.push((i, item(s, n, rank(s), prefixed(s, n), max_len)));
            }
        }
        PrefixMode::WhenNeeded => {
            // Items whose unprefixed names would meet (same name, or same once made valid)
            // on two or more servers are all prefixed.
            let mut servers_by_name: HashMap<String, BTreeSet<&str>> = HashMap::new();
            for &(_, s, n) in &unique {
                servers_by_name
                    .entry(shorten(n, max_len))
                    .or_default()
                    .insert(s);
            }
            for &(i, s, n) in &unique {
                let shared = servers_by_name
                    .get(&shorten(n, max_len))
                    .is_some_and(|set| set.len() > 1);
                let desired = if shared {
                    prefixed(s, n)
                } else {
                    n.to_string()
                };
                wanted.push((i, item(s, n, rank(s), desired, max_len)));
            }
        }
        PrefixMode::Never => {
            // The earliest server listing a name keeps it.
            let mut owner: HashMap<&str, &str> = HashMap::new();
            for &(_, s, n) in &unique {
                let slot = owner.entry(n).or_insert(s);
                if rank(s) < rank(slot) {
                    *slot = s;
                }
            }
            for &(i, s, n) in &unique {
                match owner.get(n) {
                    Some(&kept) if kept != s => out.collisions.push(Collision {
                        server: s.into(),
                        name: n.into(),
                        reason: CollisionReason::Shadowed { kept: kept.into() },
                    }),
                    _ => wanted.push((i, item(s, n, rank(s), n.to_string(), max_len))),
                }
            }
        }
    }

    // Claim: in priority order, each item takes its candidate if still free.
    wanted.sort_by(|(_, a), (_, b)| a.priority().cmp(&b.priority()));
    let mut taken: BTreeSet<String> = reserved.clone();
    let mut losers = Vec::new();
    for (i, it) in wanted {
        if taken.insert(it.candidate.clone()) {
            out.exposed[i] = Some(it.candidate.clone());
            out.reverse.insert(it.candidate, origin(it.server, it.name));
        } else {
            losers.push((i, it));
        }
    }
    // Disambiguate: only after every candidate is claimed, so no suffixed name can take a
    // name another item asked for.
    for (i, it) in losers {
        let base = sanitize(&it.desired);
        let free = (0..MAX_ATTEMPTS)
            .map(|k| {
                let hash = hash8(&[
                    it.server.as_bytes(),
                    it.name.as_bytes(),
                    k.to_string().as_bytes(),
                ]);
                with_suffix(&base, &hash, max_len)
            })
            .find(|name| !taken.contains(name));
        match free {
            Some(name) => {
                taken.insert(name.clone());
                out.exposed[i] = Some(name.clone());
                out.reverse.insert(name, origin(it.server, it.name));
            }
            None => out.collisions.push(Collision {
                server: it.server.into(),
                name: it.name.into(),
                reason: CollisionReason::NoFreeName,
            }),
        }
    }
    out.collisions.sort_by(|a, b| {
        (rank(&a.server), &a.server, &a.name).cmp(&(rank(&b.server), &b.server, &b.name))
    });
    out
}

fn item<'a>(
    server: &'a str,
    name: &'a str,
    rank: usize,
    desired: String,
    max_len: usize,
) -> Item<'a> {
    let candidate = shorten(&desired, max_len);
    Item {
        server,
        name,
        rank,
        desired,
        candidate,
    }
}

fn origin(server: &str, name: &str) -> Origin {
    Origin {
        server: server.into(),
        name: name.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(prefix: PrefixMode) -> NamingConfig {
        NamingConfig {
            prefix,
            delimiter: "__".into(),
            max_len: 64,
        }
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(s, n)| (s.to_string(), n.to_string()))
            .collect()
    }

    fn names(a: &Assignment) -> Vec<Option<&str>> {
        a.exposed.iter().map(Option::as_deref).collect()
    }

    #[test]
    fn always_prefixes_with_the_delimiter() {
        let mut r = rules(PrefixMode::Always);
        let items = pairs(&[("files", "read"), ("github", "read")]);
        assert_eq!(
            names(&assign(&r, &items)),
            [Some("files__read"), Some("github__read")]
        );
        r.delimiter = ".".into();
        let a = assign(&r, &items);
        assert_eq!(names(&a), [Some("files.read"), Some("github.read")]);
        assert_eq!(a.split("github.read"), Some(("github", "read")));
        assert_eq!(a.lookup("nope"), None);
        assert_eq!(a.exposed_name("files", "read"), Some("files.read"));
        assert!(a.collisions.is_empty());
    }

    #[test]
    fn when_needed_prefixes_only_shared_names() {
        let items = pairs(&[
            ("a", "search"),
            ("a", "only_a"),
            ("b", "search"),
            ("c", "only_c"),
        ]);
        let a = assign(&rules(PrefixMode::WhenNeeded), &items);
        assert_eq!(
            names(&a),
            [
                Some("a__search"),
                Some("only_a"),
                Some("b__search"),
                Some("only_c")
            ]
        );
        assert_eq!(a.split("b__search"), Some(("b", "search")));
        assert!(a.collisions.is_empty());
    }

    #[test]
    fn when_needed_prefixes_names_that_meet_once_sanitised() {
        let items = pairs(&[("a", "get data"), ("b", "get_data")]);
        let a = assign(&rules(PrefixMode::WhenNeeded), &items);
        assert_eq!(names(&a), [Some("a__get_data"), Some("b__get_data")]);
        assert_eq!(a.split("a__get_data"), Some(("a", "get data")));
    }

    #[test]
    fn never_keeps_the_first_server_and_reports_the_rest() {
        let items = pairs(&[("a", "x"), ("b", "x"), ("c", "x"), ("b", "y")]);
        let a = assign(&rules(PrefixMode::Never), &items);
        assert_eq!(names(&a), [Some("x"), None, None, Some("y")]);
        assert_eq!(a.split("x"), Some(("a", "x")));
        assert_eq!(a.collisions.len(), 2);
        assert_eq!(
            a.collisions[0],
            Collision {
                server: "b".into(),
                name: "x".into(),
                reason: CollisionReason::Shadowed { kept: "a".into() }
            }
        );
        let text = a.collisions[1].to_string();
        assert!(
            text.contains("server c") && text.contains("server a") && text.contains("never"),
            "{text}"
        );
    }

    #[test]
    fn never_ranks_servers_by_first_appearance_not_by_name() {
        let items = pairs(&[("zeta", "x"), ("alpha", "x")]);
        let a = assign(&rules(PrefixMode::Never), &items);
        assert_eq!(a.split("x"), Some(("zeta", "x")));
    }

    #[test]
    fn invalid_characters_become_underscores() {
        let items = pairs(&[("s", "my tool!"), ("s", "ünï"), ("s", "")]);
        let a = assign(&rules(PrefixMode::Never), &items);
        assert_eq!(names(&a), [Some("my_tool_"), Some("_n_"), Some("_")]);
        assert_eq!(a.split("my_tool_"), Some(("s", "my tool!")));
    }

    #[test]
    fn long_names_are_cut_with_a_stable_hash_of_the_full_name() {
        let r = NamingConfig {
            max_len: 20,
            ..rules(PrefixMode::Always)
        };
        let long = "a_really_long_tool_name_for_testing";
        let a = assign(&r, &pairs(&[("srv", long)]));
        let full = format!("srv__{long}");
        let digest = Sha256::digest(full.as_bytes());
        let expected = format!("{}-{}", &full[..11], hex::encode(&digest[..4]));
        assert_eq!(a.exposed[0].as_deref(), Some(expected.as_str()));
        assert_eq!(expected.len(), 20);
        // Golden value: changing it renames tools for every deployed client.
        assert_eq!(shorten("x".repeat(70).as_str(), 64), {
            let d = Sha256::digest("x".repeat(70).as_bytes());
            format!("{}-{}", "x".repeat(55), hex::encode(&d[..4]))
        });
        assert_eq!(
            shorten("srv__a_really_long_tool_name_for_testing", 20),
            "srv__a_real-2e869a53"
        );
    }

    #[test]
    fn sanitising_collisions_are_disambiguated_and_clean_names_win() {
        let items = pairs(&[("s", "a b"), ("s", "a_b"), ("s", "a+b")]);
        let a = assign(&rules(PrefixMode::Never), &items);
        assert_eq!(a.exposed[1].as_deref(), Some("a_b"));
        let others: Vec<&str> = [0, 2]
            .iter()
            .filter_map(|&i| a.exposed[i].as_deref())
            .collect();
        assert_eq!(others.len(), 2);
        assert_ne!(others[0], others[1]);
        for o in &others {
            assert!(o.starts_with("a_b-") && o.len() == 12, "{o}");
        }
        assert_eq!(a.split(others[0]), Some(("s", "a b")));
        assert_eq!(a.split(others[1]), Some(("s", "a+b")));
    }

    #[test]
    fn delimiter_ambiguity_never_merges_two_items() {
        // `a__b` + `c` and `a` + `b__c` both spell `a__b__c`.
        let items = pairs(&[("a__b", "c"), ("a", "b__c")]);
        let a = assign(&rules(PrefixMode::Always), &items);
        assert_eq!(a.exposed[0].as_deref(), Some("a__b__c"));
        let other = a.exposed[1].as_deref().unwrap_or_default();
        assert!(other.starts_with("a__b__c-"), "{other}");
        assert_eq!(a.split(other), Some(("a", "b__c")));
        assert_eq!(a.reverse.len(), 2);
    }

    #[test]
    fn duplicates_within_a_server_are_reported_once() {
        let items = pairs(&[("s", "x"), ("s", "x")]);
        let a = assign(&rules(PrefixMode::Always), &items);
        assert_eq!(names(&a), [Some("s__x"), None]);
        assert_eq!(a.collisions[0].reason, CollisionReason::Duplicate);
    }

    #[test]
    fn tiny_max_len_still_yields_valid_unique_names_or_reports() {
        let r = NamingConfig {
            max_len: 2,
            ..rules(PrefixMode::Always)
        };
        let items: Vec<(String, String)> =
            (0..300).map(|i| ("s".into(), format!("t{i}"))).collect();
        let a = assign(&r, &items);
        let exposed: Vec<&String> = a.exposed.iter().flatten().collect();
        assert!(exposed.iter().all(|n| is_valid(n, 2)));
        assert_eq!(exposed.len(), a.reverse.len());
        assert_eq!(exposed.len() + a.collisions.len(), 300);
        // 2 hex digits give 256 names at most: the rest are reported, not merged.
        assert!(exposed.len() <= 256 && !a.collisions.is_empty());
        assert!(
            a.collisions
                .iter()
                .all(|c| c.reason == CollisionReason::NoFreeName)
        );
    }

    #[test]
    fn reserved_names_are_never_handed_out() {
        let items = pairs(&[("a", "issues"), ("b", "x")]);
        let reserved = BTreeSet::from(["issues".to_string(), "b__x".to_string()]);
        let a = assign_reserved(&rules(PrefixMode::Never), &items, &reserved);
        let first = a.exposed[0].as_deref().unwrap_or_default();
        assert!(first.starts_with("issues-") && first.len() == 15, "{first}");
        assert_eq!(a.exposed[1].as_deref(), Some("x"));
        let a = assign_reserved(&rules(PrefixMode::Always), &items, &reserved);
        assert_eq!(a.exposed[0].as_deref(), Some("a__issues"));
        assert!(
            a.exposed[1]
                .as_deref()
                .is_some_and(|n| n.starts_with("b__x-"))
        );
        assert!(a.reverse.keys().all(|k| !reserved.contains(k)));
    }

    #[test]
    fn validity_rules() {
        assert!(is_valid("a.b-c_D9", 64));
        assert!(!is_valid("", 64));
        assert!(!is_valid("a b", 64));
        assert!(!is_valid("abc", 2));
        assert_eq!(sanitize("a/b"), "a_b");
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;
    use proptest::sample::select;

    /// Item names: small alphabets so names collide, delimiters inside names, characters that
    /// need sanitising, and names far beyond `max_len`.
    fn item_name() -> impl Strategy<Value = String> {
        let chars = select(vec!['a', 'b', '_', '-', '.', ' ', 'é', '/', '_', '1']);
        prop_oneof![
            4 => prop::collection::vec(select(vec!['a', 'b', 'c']), 1..3)
                .prop_map(|v| v.into_iter().collect::<String>()),
            3 => prop::collection::vec(chars.clone(), 0..8)
                .prop_map(|v| v.into_iter().collect::<String>()),
            2 => (prop::collection::vec(chars, 0..6), 40usize..90).prop_map(|(v, n)| {
                let head: String = v.into_iter().collect();
                format!("{head}{}", "x".repeat(n))
            }),
            1 => Just("a__b".to_string()),
        ]
    }

    fn server_name() -> impl Strategy<Value = String> {
        prop_oneof![
            select(vec!["a", "b", "a__b", "files", "x-y", "s_1"]).prop_map(String::from),
            (1usize..70).prop_map(|n| "s".repeat(n)),
        ]
    }

    /// Servers in config order (distinct), each with its items (order within a server random).
    fn catalogue() -> impl Strategy<Value = Vec<(String, Vec<String>)>> {
        prop::collection::vec(
            (server_name(), prop::collection::vec(item_name(), 0..8)),
            0..5,
        )
        .prop_map(|servers| {
            let mut seen = HashSet::new();
            servers
                .into_iter()
                .filter(|(s, _)| seen.insert(s.clone()))
                .collect()
        })
    }

    fn naming() -> impl Strategy<Value = NamingConfig> {
        (
            select(vec![
                PrefixMode::Always,
                PrefixMode::WhenNeeded,
                PrefixMode::Never,
            ]),
            select(vec!["__", "_", ".", "-", "--"]),
            16usize..=64,
        )
            .prop_map(|(prefix, delimiter, max_len)| NamingConfig {
                prefix,
                delimiter: delimiter.into(),
                max_len,
            })
    }

    fn flatten(c: &[(String, Vec<String>)]) -> Vec<(String, String)> {
        c.iter()
            .flat_map(|(s, items)| items.iter().map(move |n| (s.clone(), n.clone())))
            .collect()
    }

    /// (server, name) → exposed name, for comparing runs with different item orders.
    fn mapping(items: &[(String, String)], a: &Assignment) -> BTreeMap<(String, String), String> {
        items
            .iter()
            .zip(&a.exposed)
            .filter_map(|(k, e)| e.clone().map(|e| (k.clone(), e)))
            .collect()
    }

    /// A deterministic shuffle driven by `seed` (xorshift), without extra dependencies.
    fn shuffle<T>(v: &mut [T], mut seed: u64) {
        for i in (1..v.len()).rev() {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            v.swap(i, (seed % (i as u64 + 1)) as usize);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn every_exposed_name_is_valid(rules in naming(), c in catalogue()) {
            let items = flatten(&c);
            let a = assign(&rules, &items);
            prop_assert_eq!(a.exposed.len(), items.len());
            for name in a.exposed.iter().flatten() {
                prop_assert!(is_valid(name, rules.max_len), "{:?} (max_len {})", name, rules.max_len);
            }
        }

        #[test]
        fn reverse_map_is_a_bijection(rules in naming(), c in catalogue()) {
            let items = flatten(&c);
            let a = assign(&rules, &items);
            let exposed: Vec<&String> = a.exposed.iter().flatten().collect();
            let distinct: HashSet<&String> = exposed.iter().copied().collect();
            prop_assert_eq!(distinct.len(), exposed.len(), "two items share a name");
            prop_assert_eq!(a.reverse.len(), exposed.len());
            let mut origins = HashSet::new();
            for ((s, n), e) in items.iter().zip(&a.exposed) {
                if let Some(e) = e {
                    prop_assert_eq!(a.split(e), Some((s.as_str(), n.as_str())));
                    prop_assert!(origins.insert((s, n)), "one item exposed twice");
                }
            }
            // Every distinct item is exposed or reported, never silently lost.
            let unique: HashSet<(&String, &String)> = items.iter().map(|(s, n)| (s, n)).collect();
            let hidden = a.collisions.iter().filter(|c| c.reason != CollisionReason::Duplicate).count();
            prop_assert_eq!(origins.len() + hidden, unique.len());
            if rules.prefix != PrefixMode::Never {
                prop_assert_eq!(hidden, 0, "only `never` hides items: {:?}", a.collisions);
            }
        }

        #[test]
        fn deterministic_and_independent_of_item_order(rules in naming(), c in catalogue(), seed in any::<u64>()) {
            let items = flatten(&c);
            let a = assign(&rules, &items);
            prop_assert_eq!(&a, &assign(&rules, &items));
            let mut shuffled = c.clone();
            for (i, (_, list)) in shuffled.iter_mut().enumerate() {
                shuffle(list, seed.wrapping_add(i as u64) | 1);
            }
            let items2 = flatten(&shuffled);
            let b = assign(&rules, &items2);
            prop_assert_eq!(mapping(&items, &a), mapping(&items2, &b));
            prop_assert_eq!(&a.reverse, &b.reverse);
            let collisions = |x: &Assignment| {
                let mut v: Vec<String> = x.collisions.iter().map(ToString::to_string).collect();
                v.sort();
                v
            };
            prop_assert_eq!(collisions(&a), collisions(&b));
        }

        #[test]
        fn names_that_need_no_change_are_kept(rules in naming(), c in catalogue()) {
            let items = flatten(&c);
            let a = assign(&rules, &items);
            if rules.prefix == PrefixMode::Always {
                let wanted: Vec<String> = items.iter().map(|(s, n)| format!("{s}{}{n}", rules.delimiter)).collect();
                for (i, w) in wanted.iter().enumerate() {
                    let unique = wanted.iter().filter(|x| *x == w).count() == 1;
                    if unique && is_valid(w, rules.max_len) {
                        prop_assert_eq!(a.exposed[i].as_deref(), Some(w.as_str()));
                    }
                }
            }
            if rules.prefix == PrefixMode::Never {
                // The first server listing a valid name exposes it unchanged.
                let mut first = HashSet::new();
                for ((_, n), e) in items.iter().zip(&a.exposed) {
                    if first.insert(n) && is_valid(n, rules.max_len) {
                        prop_assert_eq!(e.as_deref(), Some(n.as_str()));
                    }
                }
            }
        }

        #[test]
        fn tiny_limits_still_never_share_a_name(
            rules in naming(),
            max_len in 1usize..16,
            c in catalogue(),
        ) {
            // Below the config minimum (16) names run out; items may then be reported, but
            // never share a name or break the character rules.
            let rules = NamingConfig { max_len, ..rules };
            let items = flatten(&c);
            let a = assign(&rules, &items);
            let exposed: Vec<&String> = a.exposed.iter().flatten().collect();
            prop_assert!(exposed.iter().all(|n| is_valid(n, max_len)));
            prop_assert_eq!(exposed.iter().collect::<HashSet<_>>().len(), exposed.len());
            prop_assert_eq!(a.reverse.len(), exposed.len());
            for ((s, n), e) in items.iter().zip(&a.exposed) {
                if let Some(e) = e {
                    prop_assert_eq!(a.split(e), Some((s.as_str(), n.as_str())));
                }
            }
        }

        #[test]
        fn never_hides_exactly_the_later_servers_duplicates(c in catalogue()) {
            let rules = NamingConfig { prefix: PrefixMode::Never, ..NamingConfig::default() };
            let items = flatten(&c);
            let a = assign(&rules, &items);
            let mut owner: HashMap<&String, &String> = HashMap::new();
            for (s, n) in &items {
                owner.entry(n).or_insert(s);
            }
            for ((s, n), e) in items.iter().zip(&a.exposed) {
                if owner[n] != s {
                    prop_assert!(e.is_none());
                    let shadowed = CollisionReason::Shadowed { kept: owner[n].clone() };
                    prop_assert!(a.collisions.iter().any(|c| &c.server == s && &c.name == n && c.reason == shadowed));
                }
            }
        }
    }
}

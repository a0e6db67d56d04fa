//! `mcp.virtual_servers`: curated endpoints at `/mcp/{name}` that include or exclude upstream
//! items by `SERVER/ITEM` glob and override their exposed names, titles and descriptions.
//!
//! [`VirtualServerSpec`] is the section as written; [`VirtualServerConfig`] the validated form
//! with compiled patterns ([`ItemPattern`]) that the gateway applies.

use crate::validate::{field, index, non_empty};
use crate::{ConfigError, NamingConfig, PrefixMode};
use globset::{GlobBuilder, GlobMatcher};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// One `mcp.virtual_servers.<name>` entry: a curated MCP endpoint at `/mcp/<name>` (Streamable
/// HTTP) and `/mcp/<name>/sse` (legacy SSE). Reloaded in place when the config file changes.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VirtualServerSpec {
    /// What the endpoint is for (shown to clients as the server's instructions).
    pub description: Option<String>,
    /// `SERVER/ITEM` patterns of the tools, prompts, resources and templates exposed: ITEM is a
    /// tool or prompt name, a resource URI or a URI template. `*` (any characters, `/`
    /// included), `?` (one character) and `[abc]` work in either part; `{` and `}` are literal.
    /// Unset: everything.
    pub include: Option<Vec<String>>,
    /// `SERVER/ITEM` patterns removed again after `include`.
    pub exclude: Option<Vec<String>>,
    /// Per item (`SERVER/ITEM`, no globs): a new exposed name, title or description.
    pub overrides: Option<BTreeMap<String, ItemOverrideSpec>>,
    /// Prefix mode for this endpoint, overriding `mcp.naming.prefix` (e.g. `never` to expose the
    /// upstreams' own names on a curated set; a name two included servers share is then kept by
    /// the first server in config order and reported).
    pub prefix: Option<PrefixMode>,
}

/// New presentation of one item.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ItemOverrideSpec {
    /// Exposed name (1 to `mcp.naming.max_len` of `[A-Za-z0-9_.-]`), used as is: no prefix.
    /// For resources and templates it replaces the display `name` (the URI is unchanged).
    pub name: Option<String>,
    /// Human-readable title.
    pub title: Option<String>,
    /// Description shown to the model.
    pub description: Option<String>,
}

/// A compiled `SERVER/ITEM` pattern.
#[derive(Debug, Clone)]
pub struct ItemPattern {
    text: String,
    server: GlobMatcher,
    item: GlobMatcher,
}

impl PartialEq for ItemPattern {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

/// Compiles one part of a pattern: `*`, `?` and `[…]` are wildcards (`*` crosses `/`), braces
/// are literal (URI templates are full of them).
fn glob(part: &str) -> Result<GlobMatcher, String> {
    let mut escaped = String::with_capacity(part.len());
    for c in part.chars() {
        match c {
            '{' => escaped.push_str("[{]"),
            '}' => escaped.push_str("[}]"),
            c => escaped.push(c),
        }
    }
    GlobBuilder::new(&escaped)
        .literal_separator(false)
        .backslash_escape(true)
        .build()
        .map(|g| g.compile_matcher())
        .map_err(|e| e.kind().to_string())
}

impl ItemPattern {
    /// Parses `SERVER/ITEM` (split at the first `/`; globs allowed in both parts).
    pub fn parse(text: &str) -> Result<ItemPattern, String> {
        let (server, item) = text
            .split_once('/')
            .filter(|(s, i)| !s.is_empty() && !i.is_empty())
            .ok_or_else(|| {
                format!(
                    "{text:?} is not SERVER/ITEM (e.g. \"github/list_issues\", \"files/*\" or \
                     \"docs/file:///*\")"
                )
            })?;
        let bad = |e: String| format!("{text:?} is not a valid pattern: {e}");
        Ok(ItemPattern {
            text: text.to_string(),
            server: glob(server).map_err(bad)?,
            item: glob(item).map_err(bad)?,
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether item `item` (name, URI or URI template) of server `server` matches.
    pub fn matches(&self, server: &str, item: &str) -> bool {
        self.server.is_match(server) && self.item.is_match(item)
    }
}

/// New presentation of one item, validated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ItemOverride {
    /// Exposed name (valid under the naming rules).
    pub name: Option<String>,
    /// Title.
    pub title: Option<String>,
    /// Description.
    pub description: Option<String>,
}

/// One validated virtual server.
#[derive(Debug, Clone, PartialEq)]
pub struct VirtualServerConfig {
    /// Its name: the endpoint is `/mcp/<name>`.
    pub name: String,
    /// What the endpoint is for (sent as `instructions`).
    pub description: Option<String>,
    /// Items shown (`None`: everything).
    pub include: Option<Vec<ItemPattern>>,
    /// Items removed again.
    pub exclude: Vec<ItemPattern>,
    /// `(server, item)` → new presentation.
    pub overrides: BTreeMap<(String, String), ItemOverride>,
    /// Naming rules of this endpoint (`mcp.naming` with this server's `prefix`).
    pub naming: NamingConfig,
}

impl VirtualServerConfig {
    /// Whether `include` lets `server`'s `item` through (before `exclude`).
    pub fn included(&self, server: &str, item: &str) -> bool {
        self.include
            .as_ref()
            .is_none_or(|list| list.iter().any(|p| p.matches(server, item)))
    }

    /// Whether `exclude` removes `server`'s `item`.
    pub fn excluded(&self, server: &str, item: &str) -> bool {
        self.exclude.iter().any(|p| p.matches(server, item))
    }

    /// Whether `server`'s `item` (name, URI or URI template) is exposed.
    pub fn shows(&self, server: &str, item: &str) -> bool {
        self.included(server, item) && !self.excluded(server, item)
    }

    /// The override for `server`'s `item`, if any.
    pub fn override_for(&self, server: &str, item: &str) -> Option<&ItemOverride> {
        self.overrides.get(&(server.to_string(), item.to_string()))
    }
}

/// Checks a `SERVER/ITEM` reference; `globs` allows wildcards.
fn item_ref(at: &str, r: &str, servers: &BTreeSet<&str>, globs: bool) -> Result<(), ConfigError> {
    let pattern = ItemPattern::parse(r).map_err(|m| ConfigError::invalid(at, m))?;
    let (server, item) = r.split_once('/').unwrap_or_default();
    if !globs && (has_glob(server) || has_glob(item)) {
        return Err(ConfigError::invalid(
            at,
            format!("{r:?}: globs are not allowed here; name one item"),
        ));
    }
    if has_glob(server) {
        if !servers.iter().any(|s| pattern.server.is_match(s)) {
            return Err(ConfigError::invalid(
                at,
                format!("{server:?} matches no server in mcp.servers"),
            ));
        }
    } else if !servers.contains(server) {
        return Err(ConfigError::invalid(
            at,
            format!("no server named {server:?} in mcp.servers"),
        ));
    }
    Ok(())
}

fn has_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// Whether `name` may be exposed: 1 to `max_len` of `[A-Za-z0-9_.-]`.
fn valid_exposed(name: &str, max_len: usize) -> bool {
    !name.is_empty()
        && name.len() <= max_len
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

impl VirtualServerSpec {
    /// Validates and compiles `mcp.virtual_servers.<name>` (at `at`).
    pub(crate) fn lower(
        self,
        name: &str,
        at: &str,
        servers: &BTreeSet<&str>,
        naming: &NamingConfig,
    ) -> Result<VirtualServerConfig, ConfigError> {
        let max_len = naming.max_len;
        let mut lists = Vec::new();
        for (key, list) in [("include", &self.include), ("exclude", &self.exclude)] {
            let mut compiled = Vec::new();
            for (i, p) in list.iter().flatten().enumerate() {
                let at = index(&field(at, key), i);
                item_ref(&at, p, servers, true)?;
                compiled.push(ItemPattern::parse(p).map_err(|m| ConfigError::invalid(at, m))?);
            }
            lists.push(compiled);
        }
        let exclude = lists.pop().unwrap_or_default();
        let include = self
            .include
            .as_ref()
            .map(|_| lists.pop().unwrap_or_default());
        let mut names = BTreeSet::new();
        let mut overrides = BTreeMap::new();
        for (r, o) in self.overrides.into_iter().flatten() {
            let at = field(&field(at, "overrides"), &r);
            item_ref(&at, &r, servers, false)?;
            if o == ItemOverrideSpec::default() {
                return Err(ConfigError::invalid(
                    at,
                    "must set name, title or description",
                ));
            }
            if let Some(name) = &o.name {
                let at = field(&at, "name");
                non_empty(&at, name)?;
                if !valid_exposed(name, max_len) {
                    return Err(ConfigError::invalid(
                        at,
                        format!(
                            "{name:?} is not a valid name; expected 1 to {max_len} of [A-Za-z0-9_.-]"
                        ),
                    ));
                }
                if !names.insert(name.clone()) {
                    return Err(ConfigError::invalid(at, format!("duplicate name {name:?}")));
                }
            }
            let (server, item) = r.split_once('/').unwrap_or_default();
            overrides.insert(
                (server.to_string(), item.to_string()),
                ItemOverride {
                    name: o.name,
                    title: o.title,
                    description: o.description,
                },
            );
        }
        Ok(VirtualServerConfig {
            name: name.to_string(),
            description: self.description,
            include,
            exclude,
            overrides,
            naming: NamingConfig {
                prefix: self.prefix.unwrap_or(naming.prefix),
                ..naming.clone()
            },
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn p(s: &str) -> ItemPattern {
        ItemPattern::parse(s).unwrap()
    }

    #[test]
    fn globs_match_server_and_item_separately() {
        assert!(p("files/*").matches("files", "read"));
        assert!(p("files/*").matches("files", "demo://notes/a/b"));
        assert!(!p("files/*").matches("filesx", "read"));
        assert!(p("*/read").matches("github", "read"));
        assert!(!p("*/read").matches("github", "read_more"));
        assert!(p("git?ub/list_*").matches("github", "list_issues"));
        assert!(!p("github/list_*").matches("github", "get_issue"));
        assert!(p("gh/[lg]et*").matches("gh", "get_x"));
        assert!(!p("gh/[lg]et*").matches("gh", "set_x"));
        // Exact names, `.` and `-` are literal.
        assert!(p("a/x.y-z").matches("a", "x.y-z"));
        assert!(!p("a/x.y-z").matches("a", "xzy-z"));
        // Braces of URI templates are literal, never alternation.
        assert!(p("a/demo://notes/{name}").matches("a", "demo://notes/{name}"));
        assert!(!p("a/demo://notes/{name}").matches("a", "demo://notes/name"));
        assert!(p("a/demo://notes/*").matches("a", "demo://notes/{name}"));
        // The first `/` splits: the item may hold more.
        assert!(p("a/ui://widget/app.html").matches("a", "ui://widget/app.html"));
    }

    #[test]
    fn malformed_patterns_say_why() {
        assert!(
            ItemPattern::parse("nothing")
                .unwrap_err()
                .contains("SERVER/ITEM")
        );
        assert!(ItemPattern::parse("/x").is_err());
        assert!(ItemPattern::parse("a/").is_err());
        assert!(
            ItemPattern::parse("a/[x")
                .unwrap_err()
                .contains("not a valid pattern")
        );
    }

    fn servers() -> BTreeSet<&'static str> {
        ["files", "github"].into_iter().collect()
    }

    fn lower(spec: VirtualServerSpec) -> Result<VirtualServerConfig, ConfigError> {
        spec.lower(
            "v",
            "mcp.virtual_servers.v",
            &servers(),
            &NamingConfig::default(),
        )
    }

    fn path(e: ConfigError) -> String {
        match e {
            ConfigError::Invalid { path, .. } => path,
            other => other.to_string(),
        }
    }

    #[test]
    fn include_exclude_and_overrides_lower() {
        let spec = VirtualServerSpec {
            include: Some(vec!["github/list_*".into(), "files/*".into()]),
            exclude: Some(vec!["files/delete*".into()]),
            overrides: Some(BTreeMap::from([(
                "github/list_issues".to_string(),
                ItemOverrideSpec {
                    name: Some("issues".into()),
                    ..Default::default()
                },
            )])),
            prefix: Some(PrefixMode::Never),
            ..Default::default()
        };
        let c = lower(spec).unwrap();
        assert!(c.shows("github", "list_issues"));
        assert!(c.shows("files", "read"));
        assert!(!c.shows("files", "delete_all"));
        assert!(!c.shows("github", "create_issue"));
        assert_eq!(
            c.override_for("github", "list_issues")
                .unwrap()
                .name
                .as_deref(),
            Some("issues")
        );
        assert_eq!(c.naming.prefix, PrefixMode::Never);
        assert_eq!(c.naming.delimiter, "__");
        // No include: everything but the excluded.
        let c = lower(VirtualServerSpec {
            exclude: Some(vec!["*/secret".into()]),
            ..Default::default()
        })
        .unwrap();
        assert!(c.shows("files", "read") && !c.shows("github", "secret"));
        assert_eq!(c.naming.prefix, PrefixMode::Always);
    }

    fn with_name(name: &str) -> VirtualServerSpec {
        VirtualServerSpec {
            overrides: Some(BTreeMap::from([(
                "files/read".to_string(),
                ItemOverrideSpec {
                    name: Some(name.into()),
                    ..Default::default()
                },
            )])),
            ..Default::default()
        }
    }

    #[test]
    fn override_names_obey_the_naming_rules_with_key_paths() {
        let at = "mcp.virtual_servers.v.overrides.files/read.name";
        assert_eq!(path(lower(with_name("has space")).unwrap_err()), at);
        assert_eq!(path(lower(with_name(&"x".repeat(65))).unwrap_err()), at);
        assert_eq!(path(lower(with_name("ünï")).unwrap_err()), at);
        assert_eq!(path(lower(with_name("")).unwrap_err()), at);
        assert!(lower(with_name(&"x".repeat(64))).is_ok());
        assert!(lower(with_name("a.b-c_9")).is_ok());
        // max_len is the configured one.
        let short = NamingConfig {
            max_len: 16,
            ..NamingConfig::default()
        };
        let err = with_name(&"x".repeat(17))
            .lower("v", "mcp.virtual_servers.v", &servers(), &short)
            .unwrap_err();
        assert!(err.to_string().contains("1 to 16"), "{err}");
    }

    #[test]
    fn references_must_name_real_servers_and_overrides_one_item() {
        let bad = |include: &str| {
            lower(VirtualServerSpec {
                include: Some(vec!["files/*".into(), include.into()]),
                ..Default::default()
            })
            .map_err(path)
        };
        assert_eq!(
            bad("nope/x").unwrap_err(),
            "mcp.virtual_servers.v.include[1]"
        );
        assert_eq!(
            bad("zz*/x").unwrap_err(),
            "mcp.virtual_servers.v.include[1]"
        );
        assert_eq!(
            bad("files/[x").unwrap_err(),
            "mcp.virtual_servers.v.include[1]"
        );
        assert!(bad("f*/x").is_ok());
        let glob_override = VirtualServerSpec {
            overrides: Some(BTreeMap::from([(
                "files/*".to_string(),
                ItemOverrideSpec {
                    title: Some("t".into()),
                    ..Default::default()
                },
            )])),
            ..Default::default()
        };
        assert_eq!(
            path(lower(glob_override).unwrap_err()),
            "mcp.virtual_servers.v.overrides.files/*"
        );
        let mut dup = with_name("same");
        if let Some(o) = dup.overrides.as_mut() {
            o.insert(
                "github/x".into(),
                ItemOverrideSpec {
                    name: Some("same".into()),
                    ..Default::default()
                },
            );
        }
        assert!(lower(dup).unwrap_err().to_string().contains("duplicate"));
    }
}

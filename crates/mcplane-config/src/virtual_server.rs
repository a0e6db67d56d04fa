//! `mcp.virtual_servers`: curated endpoints at `/mcp/{name}` that include or exclude upstream
//! items by `SERVER/ITEM` glob and override their exposed names, titles and descriptions.

use crate::validate::{field, index, non_empty};
use crate::{ConfigError, PrefixMode};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// One `mcp.virtual_servers.<name>` entry. Not active yet.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VirtualServerSpec {
    /// What the endpoint is for (shown to clients as the server's instructions).
    pub description: Option<String>,
    /// `SERVER/ITEM` patterns (`*` and `?` globs in either part) of the tools, prompts, resources
    /// and templates exposed. Unset: everything.
    pub include: Option<Vec<String>>,
    /// `SERVER/ITEM` patterns removed again after `include`.
    pub exclude: Option<Vec<String>>,
    /// Per item (`SERVER/ITEM`, no globs): a new exposed name, title or description.
    pub overrides: Option<BTreeMap<String, ItemOverrideSpec>>,
    /// Prefix mode for this endpoint, overriding `mcp.naming.prefix` (e.g. `never` to hide
    /// prefixes on a curated set without collisions).
    pub prefix: Option<PrefixMode>,
}

/// New presentation of one item.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ItemOverrideSpec {
    /// Exposed name (`[A-Za-z0-9_.-]`), used as is: no prefix.
    pub name: Option<String>,
    /// Human-readable title.
    pub title: Option<String>,
    /// Description shown to the model.
    pub description: Option<String>,
}

fn has_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// Checks a `SERVER/ITEM` reference; `globs` allows wildcards.
fn item_ref(at: &str, r: &str, servers: &BTreeSet<&str>, globs: bool) -> Result<(), ConfigError> {
    let Some((server, item)) = r
        .split_once('/')
        .filter(|(s, i)| !s.is_empty() && !i.is_empty())
    else {
        return Err(ConfigError::invalid(
            at,
            format!("{r:?} is not SERVER/ITEM (e.g. \"github/list_issues\" or \"files/*\")"),
        ));
    };
    if !globs && (has_glob(server) || has_glob(item)) {
        return Err(ConfigError::invalid(
            at,
            format!("{r:?}: globs are not allowed here; name one item"),
        ));
    }
    if !has_glob(server) && !servers.contains(server) {
        return Err(ConfigError::invalid(
            at,
            format!("no server named {server:?} in mcp.servers"),
        ));
    }
    Ok(())
}

impl VirtualServerSpec {
    pub(crate) fn validate(
        &self,
        at: &str,
        servers: &BTreeSet<&str>,
        max_len: usize,
    ) -> Result<(), ConfigError> {
        for (key, list) in [("include", &self.include), ("exclude", &self.exclude)] {
            for (i, p) in list.iter().flatten().enumerate() {
                item_ref(&index(&field(at, key), i), p, servers, true)?;
            }
        }
        let mut names = BTreeSet::new();
        for (r, o) in self.overrides.iter().flatten() {
            let at = field(&field(at, "overrides"), r);
            item_ref(&at, r, servers, false)?;
            if o == &ItemOverrideSpec::default() {
                return Err(ConfigError::invalid(
                    at,
                    "must set name, title or description",
                ));
            }
            if let Some(name) = &o.name {
                let at = field(&at, "name");
                non_empty(&at, name)?;
                if name.len() > max_len
                    || !name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
                {
                    return Err(ConfigError::invalid(
                        at,
                        format!(
                            "{name:?} is not a valid name; expected 1 to {max_len} of [A-Za-z0-9_.-]"
                        ),
                    ));
                }
                if !names.insert(name.as_str()) {
                    return Err(ConfigError::invalid(at, format!("duplicate name {name:?}")));
                }
            }
        }
        Ok(())
    }
}

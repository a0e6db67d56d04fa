//! The MCP methods a catalogue answers — lists, `tools/call`, `prompts/get`,
//! `completion/complete`, `logging/setLevel` and `resources/*` — served once, by [`serve`], for
//! the full [`Gateway`] and for every virtual server ([`super::curation::Curated`]). What differs
//! between the two is only where the views come from and how names and URIs are resolved: that
//! is the [`Catalogue`] each implements.
//!
//! Policy applies here, for both: using an item (calling a tool, getting a prompt, reading or
//! subscribing to a resource, completing their arguments) is an [`Operation`] the gateway's
//! governance decides about, and a list shows an item only when using it would be allowed
//! (without needing an approval), so a caller never sees what it cannot use.

use super::Gateway;
use super::catalog::{ListKind, View};
use crate::jsonrpc::{FORBIDDEN, RESOURCE_NOT_FOUND, RpcError};
use crate::param_headers::ParamHeader;
use crate::server::RequestContext;
use async_trait::async_trait;
use mcplane_core::policy::Effect;
use mcplane_types::operation::annotations_with_defaults;
use mcplane_types::{Operation, ToolRef};
use serde_json::{Value, json};
use std::sync::Arc;

/// A set of views over the gateway's upstreams, and how names and URIs resolve in it.
#[async_trait]
pub(crate) trait Catalogue: Send + Sync {
    /// The gateway that relays the calls.
    fn gateway(&self) -> &Gateway;

    /// The view of one kind.
    async fn view(&self, kind: ListKind) -> Result<Arc<View>, RpcError>;

    /// The owner of an exposed tool or prompt name (listed in `view` or not) and the name the
    /// owner knows it by; the error to answer when there is none.
    fn owner(&self, kind: ListKind, view: &View, name: &str) -> Result<(usize, String), RpcError>;

    /// The owner of the URI of a `ref/resource` completion and the URI the owner knows it by.
    async fn completion_owner(&self, uri: &str) -> Result<(usize, String), RpcError>;

    /// `resources/read`, `resources/subscribe` and `resources/unsubscribe`.
    async fn resource_request(
        &self,
        cx: &RequestContext,
        method: &str,
        params: Option<Value>,
    ) -> Result<Value, RpcError>;
}

/// The `Mcp-Param-*` headers a call of tool `name` in `catalogue` must carry.
pub(crate) async fn param_headers<C: Catalogue + ?Sized>(
    catalogue: &C,
    name: &str,
) -> Option<Arc<Vec<ParamHeader>>> {
    let view = catalogue.view(ListKind::Tools).await.ok()?;
    view.param_headers.get(name).cloned()
}

/// Answers one client request on `catalogue`; any method not listed here is refused, so nothing
/// reaches past it.
pub(crate) async fn serve<C: Catalogue + ?Sized>(
    catalogue: &C,
    cx: &RequestContext,
    method: &str,
    params: Option<Value>,
) -> Result<Value, RpcError> {
    if cx.session.is_modern() {
        // 2026-07-28: a method of a capability nobody serves does not exist (-32601).
        let capability = method.split('/').next().unwrap_or_default();
        if matches!(capability, "tools" | "prompts" | "resources")
            && !catalogue.gateway().serves(capability)
        {
            return Err(RpcError::method_not_found(method));
        }
    }
    match method {
        "tools/list" => list(catalogue, cx, ListKind::Tools, params.as_ref()).await,
        "prompts/list" => list(catalogue, cx, ListKind::Prompts, params.as_ref()).await,
        "resources/list" => list(catalogue, cx, ListKind::Resources, params.as_ref()).await,
        "resources/templates/list" => {
            list(catalogue, cx, ListKind::Templates, params.as_ref()).await
        }
        "tools/call" => call_named(catalogue, cx, ListKind::Tools, method, params).await,
        "prompts/get" => call_named(catalogue, cx, ListKind::Prompts, method, params).await,
        "completion/complete" => complete(catalogue, cx, params).await,
        "logging/setLevel" => catalogue.gateway().set_level(params).await,
        "resources/read" | "resources/subscribe" => {
            let uri = params
                .as_ref()
                .and_then(|p| p.get("uri"))
                .and_then(Value::as_str)
                .map(str::to_string);
            if let Some(uri) = uri
                && let Ok(owner) = catalogue.completion_owner(&uri).await
            {
                authorize(catalogue, cx, ListKind::Resources, owner, None, None)?;
            }
            catalogue.resource_request(cx, method, params).await
        }
        "resources/unsubscribe" => catalogue.resource_request(cx, method, params).await,
        other => Err(RpcError::method_not_found(other)),
    }
}

/// The operation of using an item: calling a tool, getting a prompt, reading a resource.
fn operation(
    catalogue: &(impl Catalogue + ?Sized),
    kind: ListKind,
    (i, original): (usize, String),
    item: Option<&Value>,
    arguments: Option<&Value>,
) -> Operation {
    let server = catalogue.gateway().server_name(i).to_string();
    match kind {
        ListKind::Tools => Operation::CallTool {
            tool: ToolRef {
                server,
                name: original,
                annotations: annotations_with_defaults(item.and_then(|t| t.get("annotations"))),
            },
            arguments: arguments.cloned().unwrap_or_else(|| json!({})),
        },
        ListKind::Prompts => Operation::GetPrompt {
            server,
            name: original,
        },
        ListKind::Resources | ListKind::Templates => Operation::ReadResource {
            server,
            uri: original,
        },
    }
}

/// Checks the policy for using an item; the error names the rule and its reason.
fn authorize<C: Catalogue + ?Sized>(
    catalogue: &C,
    cx: &RequestContext,
    kind: ListKind,
    owner: (usize, String),
    item: Option<&Value>,
    arguments: Option<&Value>,
) -> Result<(), RpcError> {
    let governance = catalogue.gateway().governance();
    let principal = cx.session.principal();
    if !governance.decides_for(&principal) {
        return Ok(());
    }
    let op = operation(catalogue, kind, owner, item, arguments);
    let decision = governance.decide(&principal, &op, &cx.session.request_attributes());
    match decision.effect {
        Effect::Deny { rule, reason } => Err(RpcError::new(FORBIDDEN, reason).with_data(json!({"policy": rule}))),
        Effect::Allow => match decision.approval {
            Some(rule) => Err(RpcError::new(
                FORBIDDEN,
                format!("policy {rule} requires a human approval for this, which this mcplane cannot collect yet"),
            )
            .with_data(json!({"policy": rule}))),
            None => Ok(()),
        },
    }
}

/// A page of `kind`, showing only the items the caller may use.
async fn list<C: Catalogue + ?Sized>(
    catalogue: &C,
    cx: &RequestContext,
    kind: ListKind,
    params: Option<&Value>,
) -> Result<Value, RpcError> {
    let cursor = params.and_then(|p| p.get("cursor")).and_then(Value::as_str);
    let view = catalogue.view(kind).await?;
    let mut page = view.page(kind, cursor)?;
    let governance = catalogue.gateway().governance();
    let (principal, request) = (cx.session.principal(), cx.session.request_attributes());
    if !governance.decides_for(&principal) {
        return Ok(page);
    }
    if let Some(Value::Array(items)) = page.get_mut(kind.field()) {
        items.retain(|item| {
            let Some(owner) = item
                .get(kind.key_field())
                .and_then(Value::as_str)
                .and_then(|key| view.owners.get(key))
            else {
                return false;
            };
            let op = operation(catalogue, kind, owner.clone(), Some(item), None);
            let d = governance.decide(&principal, &op, &request);
            d.allowed() && d.approval.is_none()
        });
    }
    Ok(page)
}

/// `tools/call` or `prompts/get`: relayed to the owner under its own name; `ui://` URIs in the
/// result are shown as the client knows them.
async fn call_named<C: Catalogue + ?Sized>(
    catalogue: &C,
    cx: &RequestContext,
    kind: ListKind,
    method: &str,
    params: Option<Value>,
) -> Result<Value, RpcError> {
    let mut params = params.unwrap_or_else(|| json!({}));
    let name = params
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| RpcError::invalid_params(format!("{method} needs params.name")))?
        .to_string();
    let view = catalogue.view(kind).await?;
    let (i, original) = catalogue.owner(kind, &view, &name)?;
    authorize(
        catalogue,
        cx,
        kind,
        (i, original.clone()),
        view.item(kind, &name),
        params.get("arguments"),
    )?;
    params["name"] = original.into();
    let mut result = catalogue.gateway().relay(cx, i, method, params).await?;
    view.ui.rewrite_item(i, &mut result);
    Ok(result)
}

async fn complete<C: Catalogue + ?Sized>(
    catalogue: &C,
    cx: &RequestContext,
    params: Option<Value>,
) -> Result<Value, RpcError> {
    let mut params = params.unwrap_or_else(|| json!({}));
    let reference = params.get("ref").cloned().unwrap_or(Value::Null);
    let field = |key: &str| {
        reference
            .get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let i = match reference.get("type").and_then(Value::as_str) {
        Some("ref/prompt") => {
            let name = field("name");
            let view = catalogue.view(ListKind::Prompts).await?;
            let (i, original) = catalogue.owner(ListKind::Prompts, &view, &name)?;
            authorize(
                catalogue,
                cx,
                ListKind::Prompts,
                (i, original.clone()),
                None,
                None,
            )?;
            params["ref"]["name"] = original.into();
            i
        }
        Some("ref/resource") => {
            let uri = field("uri");
            let (i, original) = catalogue.completion_owner(&uri).await?;
            authorize(
                catalogue,
                cx,
                ListKind::Resources,
                (i, original.clone()),
                None,
                None,
            )?;
            if original != uri {
                params["ref"]["uri"] = original.into();
            }
            i
        }
        _ => {
            return Err(RpcError::invalid_params(
                "completion/complete needs ref.type \"ref/prompt\" or \"ref/resource\"",
            ));
        }
    };
    catalogue
        .gateway()
        .relay(cx, i, "completion/complete", params)
        .await
}

/// The error for a tool or prompt name nobody shows.
pub(crate) fn unknown(kind: ListKind, name: &str) -> RpcError {
    let what = if kind == ListKind::Tools {
        "tool"
    } else {
        "prompt"
    };
    RpcError::invalid_params(format!("Unknown {what}: {name}"))
}

/// The error for a resource URI nobody serves.
pub(crate) fn not_found(uri: &str) -> RpcError {
    RpcError::new(RESOURCE_NOT_FOUND, format!("Resource not found: {uri}"))
        .with_data(json!({"uri": uri}))
}

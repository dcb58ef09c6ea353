//! Bearer-key authentication for `/v1`: a middleware that turns a valid key into a
//! [`Principal`](store::Principal) (401 otherwise), and role checks (403) in handlers.

use axum::Json;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use store::{Principal, Role};

use crate::{ApiError, AppState};

/// The authenticated caller of a `/v1` handler.
#[derive(Debug, Clone)]
pub struct Authenticated(pub Principal);

impl Authenticated {
    /// 403 unless the key's role covers `needed`.
    pub fn require(&self, needed: Role) -> Result<&Principal, ApiError> {
        if self.0.role.allows(needed) {
            Ok(&self.0)
        } else {
            Err(ApiError::forbidden(needed))
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        parts
            .extensions
            .get::<Principal>()
            .cloned()
            .map(Authenticated)
            .ok_or_else(ApiError::unauthorized)
    }
}

pub(crate) async fn require_key(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Response {
    let Some(secret) = bearer(&req) else {
        return ApiError::unauthorized().into_response();
    };
    match state
        .store
        .authenticate_api_key(&secret, state.now_ms())
        .await
    {
        Ok(Some(principal)) => {
            req.extensions_mut().insert(principal);
            next.run(req).await
        }
        Ok(None) => ApiError::unauthorized().into_response(),
        Err(e) => ApiError::from(e).into_response(),
    }
}

fn bearer(req: &Request) -> Option<String> {
    let value = req.headers().get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty())
        .then(|| token.trim().to_owned())
}

#[utoipa::path(get, path = "/v1/whoami", tag = "keys", responses((status = 200, body = crate::openapi::WhoAmI), (status = 401, body = crate::openapi::ErrorJson)), security(("bearer" = [])))]
/// `GET /v1/whoami`: the key's tenant and role.
pub(crate) async fn whoami(auth: Authenticated) -> Json<Value> {
    let p = auth.0;
    Json(json!({ "key_id": p.key_id, "tenant_id": p.tenant_id, "role": p.role }))
}

#[utoipa::path(get, path = "/v1/keys", tag = "keys", responses((status = 200, body = crate::openapi::KeyList), (status = 403, body = crate::openapi::ErrorJson)), security(("bearer" = [])))]
/// `GET /v1/keys` (admin): the tenant's keys, without secrets.
pub(crate) async fn list_keys(
    State(state): State<AppState>,
    auth: Authenticated,
) -> Result<Json<Value>, ApiError> {
    let p = auth.require(Role::Admin)?;
    let keys = state.store.list_api_keys(&p.tenant_id).await?;
    let keys: Vec<Value> = keys
        .into_iter()
        .map(|k| {
            json!({ "id": k.id, "role": k.role, "prefix": k.prefix,
                    "created_at": k.created_at, "revoked_at": k.revoked_at })
        })
        .collect();
    Ok(Json(json!({ "keys": keys })))
}

//! The fake's twirp endpoints (`POST /twirp/<service>/<method>`, protobuf or JSON body per
//! the twirp v7 spec; errors as `{"code","msg"}` JSON): `livekit.SIP/TransferSIPParticipant`
//! (`sip.call` + `roomAdmin` on the room, `pkg/service/sip.go`), `livekit.SIP/
//! CreateSIPParticipant` (`sip.call`), `livekit.AgentDispatchService/CreateDispatch`
//! (`roomAdmin`, then the job is offered to the worker). A successful transfer takes the SIP participant out of the room, as the
//! SIP service does after the REFER is accepted.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use livekit::proto;
use livekit::token::{self, Claims};
use prost::Message;

use super::Shared;
use super::agent::bearer;

/// One twirp call the fake received.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum TwirpCall {
    Transfer(Box<proto::TransferSipParticipantRequest>),
    CreateSipParticipant(Box<proto::CreateSipParticipantRequest>),
    CreateDispatch(Box<proto::CreateAgentDispatchRequest>),
    /// `livekit.RoomService/DeleteRoom` for this room name.
    DeleteRoom(String),
}

fn twirp_error(status: StatusCode, code: &str, msg: &str) -> Response {
    (
        status,
        [("content-type", "application/json")],
        serde_json::json!({ "code": code, "msg": msg }).to_string(),
    )
        .into_response()
}

enum Encoding {
    Protobuf,
    Json,
}

fn decode<T: Message + Default + serde::de::DeserializeOwned>(
    encoding: &Encoding,
    body: &[u8],
) -> Option<T> {
    match encoding {
        Encoding::Protobuf => T::decode(body).ok(),
        Encoding::Json => serde_json::from_slice(body).ok(),
    }
}

fn encode<T: Message + serde::Serialize>(encoding: &Encoding, message: &T) -> Response {
    match encoding {
        Encoding::Protobuf => (
            [("content-type", "application/protobuf")],
            message.encode_to_vec(),
        )
            .into_response(),
        Encoding::Json => (
            [("content-type", "application/json")],
            serde_json::to_string(message).unwrap_or_default(),
        )
            .into_response(),
    }
}

pub(crate) async fn handler(
    State(shared): State<Arc<Shared>>,
    Path((service, method)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let encoding = match headers.get("content-type").and_then(|v| v.to_str().ok()) {
        Some(t) if t.starts_with("application/protobuf") => Encoding::Protobuf,
        Some(t) if t.starts_with("application/json") => Encoding::Json,
        _ => {
            return twirp_error(
                StatusCode::BAD_REQUEST,
                "malformed",
                "unsupported content type",
            );
        }
    };
    let claims = bearer(&headers, &HashMap::new())
        .and_then(|t| token::verify(&t, Shared::secret_for, token::unix_now()).ok());
    let Some(claims) = claims else {
        return twirp_error(StatusCode::UNAUTHORIZED, "unauthenticated", "invalid token");
    };
    match (service.as_str(), method.as_str()) {
        ("livekit.SIP", "TransferSIPParticipant") => {
            let Some(req) = decode::<proto::TransferSipParticipantRequest>(&encoding, &body) else {
                return twirp_error(StatusCode::BAD_REQUEST, "malformed", "bad request body");
            };
            if let Err(why) =
                check_sip_call(&claims).and_then(|_| check_room_admin(&claims, &req.room_name))
            {
                return denied(why);
            }
            if req.transfer_to.is_empty() {
                return twirp_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_argument",
                    "transfer_to is required",
                );
            }
            let known = {
                let mut s = shared.lock();
                s.twirp.push(TwirpCall::Transfer(Box::new(req.clone())));
                s.rooms
                    .get(&req.room_name)
                    .is_some_and(|r| r.sip.identity == req.participant_identity)
            };
            shared.changed.notify_waiters();
            if !known {
                return twirp_error(StatusCode::NOT_FOUND, "not_found", "participant not found");
            }
            transfer_done(&shared, &req.room_name);
            encode(&encoding, &proto::TransferSipParticipantResponse::default())
        }
        ("livekit.SIP", "CreateSIPParticipant") => {
            let Some(req) = decode::<proto::CreateSipParticipantRequest>(&encoding, &body) else {
                return twirp_error(StatusCode::BAD_REQUEST, "malformed", "bad request body");
            };
            if let Err(why) = check_sip_call(&claims) {
                return denied(why);
            }
            shared
                .lock()
                .twirp
                .push(TwirpCall::CreateSipParticipant(Box::new(req.clone())));
            shared.changed.notify_waiters();
            match super::outbound::create_sip_participant(&shared, &req).await {
                Ok(info) => encode(&encoding, &info),
                Err(failure) => sip_failure(&failure),
            }
        }
        ("livekit.AgentDispatchService", "CreateDispatch") => {
            let Some(req) = decode::<proto::CreateAgentDispatchRequest>(&encoding, &body) else {
                return twirp_error(StatusCode::BAD_REQUEST, "malformed", "bad request body");
            };
            if let Err(why) = check_room_admin(&claims, &req.room) {
                return denied(why);
            }
            let n = shared.next_id();
            let dispatch = proto::AgentDispatch {
                id: format!("AD_{n}"),
                agent_name: req.agent_name.clone(),
                room: req.room.clone(),
                metadata: req.metadata.clone(),
                ..Default::default()
            };
            shared
                .lock()
                .twirp
                .push(TwirpCall::CreateDispatch(Box::new(req.clone())));
            shared.changed.notify_waiters();
            // The server then offers the job to a worker registered under that name.
            let job_shared = shared.clone();
            tokio::spawn(async move {
                let _ = super::agent::dispatch(&job_shared, &req.room, &req.metadata).await;
            });
            encode(&encoding, &dispatch)
        }
        ("livekit.RoomService", "DeleteRoom") => {
            let Some(req) = decode::<proto::DeleteRoomRequest>(&encoding, &body) else {
                return twirp_error(StatusCode::BAD_REQUEST, "malformed", "bad request body");
            };
            // pkg/service/roomservice.go: DeleteRoom requires the roomCreate grant.
            if !claims.video().room_create {
                return denied("roomCreate grant required");
            }
            let tx = {
                let mut s = shared.lock();
                s.twirp.push(TwirpCall::DeleteRoom(req.room.clone()));
                s.rooms.get(&req.room).and_then(|r| r.commands.clone())
            };
            shared.changed.notify_waiters();
            let Some(tx) = tx else {
                return twirp_error(StatusCode::NOT_FOUND, "not_found", "room not found");
            };
            let _ = tx.try_send(super::rtc::Command::CloseRoom);
            encode(&encoding, &proto::DeleteRoomResponse::default())
        }
        _ => twirp_error(StatusCode::NOT_FOUND, "bad_route", "no such method"),
    }
}

/// Why a token may not make a call (answered as twirp `permission_denied`).
fn check_sip_call(claims: &Claims) -> Result<(), &'static str> {
    if claims.sip().call {
        Ok(())
    } else {
        Err("requires SIP call grant")
    }
}

fn check_room_admin(claims: &Claims, room: &str) -> Result<(), &'static str> {
    let video = claims.video();
    if video.room_admin && video.room == room {
        Ok(())
    } else {
        Err("requires roomAdmin on the room")
    }
}

/// A dial that ended with a final SIP status: the twirp error carries it in `meta`
/// (`sip_status_code`, `sip_status`), which is what clients read; the twirp code is the
/// nearest HTTP-ish one.
fn sip_failure(failure: &super::outbound::DialFailure) -> Response {
    let (status, code) = match failure.status {
        400 => (StatusCode::BAD_REQUEST, "invalid_argument"),
        404 => (StatusCode::NOT_FOUND, "not_found"),
        _ => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
    };
    (
        status,
        [("content-type", "application/json")],
        serde_json::json!({
            "code": code,
            "msg": format!("INVITE failed: sip status: {}", failure.status),
            "meta": {
                "sip_status_code": failure.status.to_string(),
                "sip_status": failure.status_name(),
            },
        })
        .to_string(),
    )
        .into_response()
}

fn denied(why: &str) -> Response {
    twirp_error(StatusCode::FORBIDDEN, "permission_denied", why)
}

/// After an accepted REFER the SIP participant leaves the room.
fn transfer_done(shared: &Shared, room: &str) {
    let tx = shared
        .lock()
        .rooms
        .get(room)
        .and_then(|r| r.commands.clone());
    if let Some(tx) = tx {
        let _ = tx.try_send(super::rtc::Command::SipLeave);
    }
}

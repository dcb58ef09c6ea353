//! The server APIs a call needs, over twirp: `livekit.SIP/TransferSIPParticipant`,
//! `livekit.SIP/CreateSIPParticipant` (`livekit_sip.proto`) and
//! `livekit.AgentDispatchService/CreateDispatch` (`livekit_agent_dispatch.proto`).
//!
//! Twirp (https://twitchtv.github.io/twirp/docs/spec_v7.html): `POST /twirp/<package>.<Service>/<Method>`
//! with a protobuf body (`Content-Type: application/protobuf`); success is 200 with the
//! protobuf response, failure is a non-200 with the JSON error `{"code", "msg", "meta"}`.
//! Auth is a bearer JWT: `sip.call` for both SIP methods, plus `roomAdmin` on the room for a
//! transfer (`livekit/livekit:pkg/service/sip.go`); `roomAdmin` for dispatch.

use std::collections::HashMap;
use std::time::Duration;

use livekit_protocol as proto;
use prost::Message;

use crate::token::{AccessToken, Credentials, VideoGrants};

/// A twirp API client for one LiveKit server.
#[derive(Debug, Clone)]
pub struct ServerApi {
    http: reqwest::Client,
    base: String,
    credentials: Credentials,
}

/// A twirp call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    #[error("invalid LiveKit URL {url:?}: {reason}")]
    InvalidUrl { url: String, reason: &'static str },
    /// The server answered with a twirp error (e.g. `permission_denied`, `not_found`,
    /// `invalid_argument`, `unavailable`).
    #[error("{method}: twirp error {code} (HTTP {status}): {msg}")]
    Twirp {
        method: &'static str,
        status: u16,
        code: String,
        msg: String,
        meta: HashMap<String, String>,
    },
    /// A non-200 answer that was not a twirp error (a proxy's page, say).
    #[error("{method}: HTTP {status} without a twirp error body")]
    Status { method: &'static str, status: u16 },
    #[error("{method}: request failed: {source}")]
    Http {
        method: &'static str,
        #[source]
        source: reqwest::Error,
    },
    #[error("{method}: response is not a valid protobuf message")]
    Decode { method: &'static str },
}

impl ApiError {
    /// The twirp error code, if the server sent one.
    pub fn twirp_code(&self) -> Option<&str> {
        match self {
            ApiError::Twirp { code, .. } => Some(code),
            _ => None,
        }
    }
}

impl ApiError {
    /// The final SIP status of a failed dial or transfer, as the server reports it in the
    /// twirp error's meta (`sip_status_code`, e.g. 486), with its name (`sip_status`).
    pub fn sip_status(&self) -> Option<(u16, &str)> {
        let ApiError::Twirp { meta, .. } = self else {
            return None;
        };
        let code = meta.get("sip_status_code")?.parse().ok()?;
        Some((code, meta.get("sip_status").map_or("", String::as_str)))
    }
}

#[derive(serde::Deserialize)]
struct TwirpError {
    code: String,
    #[serde(default)]
    msg: String,
    #[serde(default)]
    meta: HashMap<String, String>,
}

/// A transfer of the SIP participant to another number or SIP URI (SIP REFER).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Transfer {
    pub room_name: String,
    pub participant_identity: String,
    /// `tel:+15551234567` or `sip:…`.
    pub transfer_to: String,
    pub play_dialtone: bool,
    /// Added to the REFER.
    pub headers: HashMap<String, String>,
}

impl Transfer {
    pub fn new(room_name: &str, participant_identity: &str, transfer_to: &str) -> Self {
        Self {
            room_name: room_name.to_owned(),
            participant_identity: participant_identity.to_owned(),
            transfer_to: transfer_to.to_owned(),
            ..Self::default()
        }
    }
}

/// A phone call placed into a room: LiveKit SIP dials `to` through the outbound trunk and the
/// callee joins `room_name` as a SIP participant (`CreateSIPParticipant`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Dial {
    /// The LiveKit outbound trunk (`ST_…`).
    pub trunk_id: String,
    /// The number to call.
    pub to: String,
    /// Caller ID; empty: the trunk's number.
    pub from_number: String,
    pub room_name: String,
    /// Empty: the server's `sip_<to>`.
    pub participant_identity: String,
    /// Give up ringing after this long; `None`: the server's default.
    pub ringing_timeout: Option<Duration>,
    /// Answer the request only once the callee picked up (or the call failed, with its SIP
    /// status in the error); otherwise at once, with `sip.callStatus` telling the rest.
    pub wait_until_answered: bool,
}

impl Dial {
    pub fn new(trunk_id: &str, to: &str, room_name: &str) -> Self {
        Self {
            trunk_id: trunk_id.to_owned(),
            to: to.to_owned(),
            room_name: room_name.to_owned(),
            ..Self::default()
        }
    }

    fn into_request(self) -> proto::CreateSipParticipantRequest {
        proto::CreateSipParticipantRequest {
            sip_trunk_id: self.trunk_id,
            sip_call_to: self.to,
            sip_number: self.from_number,
            room_name: self.room_name,
            participant_identity: self.participant_identity,
            ringing_timeout: self.ringing_timeout.map(|d| pbjson_types::Duration {
                seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
                nanos: i32::try_from(d.subsec_nanos()).unwrap_or(0),
            }),
            wait_until_answered: self.wait_until_answered,
            ..proto::CreateSipParticipantRequest::default()
        }
    }
}

/// Requests wait at most this long by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

impl ServerApi {
    /// A client for the server at `url` (ws/wss/http/https).
    pub fn new(url: &str, credentials: Credentials) -> Result<Self, ApiError> {
        Self::with_timeout(url, credentials, DEFAULT_TIMEOUT)
    }

    pub fn with_timeout(
        url: &str,
        credentials: Credentials,
        timeout: Duration,
    ) -> Result<Self, ApiError> {
        let base = crate::url::http_base(url).map_err(|reason| ApiError::InvalidUrl {
            url: url.to_owned(),
            reason,
        })?;
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|source| ApiError::Http {
                method: "client",
                source,
            })?;
        Ok(Self {
            http,
            base,
            credentials,
        })
    }

    /// `TransferSIPParticipant`: the SIP side sends a REFER; the call leaves the room when
    /// the transfer succeeds.
    pub async fn transfer_sip_participant(
        &self,
        transfer: Transfer,
    ) -> Result<proto::TransferSipParticipantResponse, ApiError> {
        let token = AccessToken::for_sip_call(&self.credentials.api_key, &transfer.room_name)
            .sign(self.credentials.api_secret());
        let request = proto::TransferSipParticipantRequest {
            participant_identity: transfer.participant_identity,
            room_name: transfer.room_name,
            transfer_to: transfer.transfer_to,
            play_dialtone: transfer.play_dialtone,
            headers: transfer.headers,
            ringing_timeout: None,
        };
        self.call("livekit.SIP", "TransferSIPParticipant", &token, &request)
            .await
    }

    /// `CreateSIPParticipant`: dials out through a trunk and puts the callee in the room.
    /// With `wait_until_answered` this lasts as long as the phone rings: give the client a
    /// timeout above the ringing timeout ([`ServerApi::with_timeout`]).
    pub async fn create_sip_participant(
        &self,
        dial: Dial,
    ) -> Result<proto::SipParticipantInfo, ApiError> {
        let request = dial.into_request();
        let token = AccessToken::for_sip_call(&self.credentials.api_key, &request.room_name)
            .sign(self.credentials.api_secret());
        self.call("livekit.SIP", "CreateSIPParticipant", &token, &request)
            .await
    }

    /// `RoomService.DeleteRoom`: ends the room for everyone in it; a SIP participant's phone
    /// call is hung up (LiveKit's documented way for an agent to hang up a call). Needs the
    /// `roomCreate` grant.
    pub async fn delete_room(&self, room: &str) -> Result<proto::DeleteRoomResponse, ApiError> {
        let token = AccessToken::new(&self.credentials.api_key, "")
            .with_video(VideoGrants {
                room_create: true,
                ..VideoGrants::default()
            })
            .sign(self.credentials.api_secret());
        let request = proto::DeleteRoomRequest {
            room: room.to_owned(),
        };
        self.call("livekit.RoomService", "DeleteRoom", &token, &request)
            .await
    }

    /// `CreateDispatch`: asks the server to dispatch `agent_name` to `room`.
    pub async fn create_dispatch(
        &self,
        request: proto::CreateAgentDispatchRequest,
    ) -> Result<proto::AgentDispatch, ApiError> {
        let token = AccessToken::new(&self.credentials.api_key, "")
            .with_video(VideoGrants {
                room_admin: true,
                room: request.room.clone(),
                ..VideoGrants::default()
            })
            .sign(self.credentials.api_secret());
        self.call(
            "livekit.AgentDispatchService",
            "CreateDispatch",
            &token,
            &request,
        )
        .await
    }

    async fn call<Req: Message, Resp: Message + Default>(
        &self,
        service: &'static str,
        method: &'static str,
        token: &str,
        request: &Req,
    ) -> Result<Resp, ApiError> {
        let url = format!("{}/twirp/{service}/{method}", self.base);
        let response = self
            .http
            .post(url)
            .bearer_auth(token)
            .header("Content-Type", "application/protobuf")
            .body(request.encode_to_vec())
            .send()
            .await
            .map_err(|source| ApiError::Http { method, source })?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|source| ApiError::Http { method, source })?;
        if !status.is_success() {
            return Err(match serde_json::from_slice::<TwirpError>(&body) {
                Ok(e) => ApiError::Twirp {
                    method,
                    status: status.as_u16(),
                    code: e.code,
                    msg: e.msg,
                    meta: e.meta,
                },
                Err(_) => ApiError::Status {
                    method,
                    status: status.as_u16(),
                },
            });
        }
        Resp::decode(body.as_ref()).map_err(|_| ApiError::Decode { method })
    }
}

//! The `/rtc` signal websocket: binary protobuf `SignalRequest` out, `SignalResponse` in
//! (`livekit/protocol:protobufs/livekit_rtc.proto`; docs "client protocol"). The first
//! response must be `join`; the server closes the connection to end the session.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use livekit_protocol as proto;
use prost::Message as _;
use proto::{signal_request, signal_response};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tracing::{debug, warn};

use super::RoomError;

/// The client protocol version we speak (dual peer connection, `ping_req`/`pong_resp`).
pub(crate) const PROTOCOL_VERSION: u32 = 16;
/// Signal messages waiting in either direction.
const QUEUE: usize = 64;

/// What the reader task passes on.
#[derive(Debug)]
pub(crate) enum SignalInput {
    Message(Box<signal_response::Message>),
    /// The connection ended; `malformed` if a frame was not a `SignalResponse`.
    Closed {
        malformed: bool,
    },
}

/// Sends requests to the server.
#[derive(Debug, Clone)]
pub(crate) struct SignalSender {
    tx: mpsc::Sender<signal_request::Message>,
}

impl SignalSender {
    /// Queues a request; false if the connection is gone.
    pub(crate) async fn send(&self, message: signal_request::Message) -> bool {
        self.tx.send(message).await.is_ok()
    }
}

/// Connects, waits for the `JoinResponse` and starts the reader and writer tasks.
pub(crate) async fn connect(
    url: &str,
    token: &str,
    auto_subscribe: bool,
    timeout: Duration,
) -> Result<
    (
        proto::JoinResponse,
        SignalSender,
        mpsc::Receiver<SignalInput>,
    ),
    RoomError,
> {
    let endpoint = crate::url::endpoint(url, "rtc").map_err(|reason| RoomError::InvalidUrl {
        url: url.to_owned(),
        reason,
    })?;
    // The token goes in the query (what every SDK does) and as a bearer header
    // (`pkg/service/auth.go` accepts either).
    let query = format!(
        "{endpoint}?access_token={token}&protocol={PROTOCOL_VERSION}&sdk=rust&version={}&auto_subscribe={}&adaptive_stream=0",
        env!("CARGO_PKG_VERSION"),
        u8::from(auto_subscribe),
    );
    let mut request = query
        .as_str()
        .into_client_request()
        .map_err(|e| RoomError::Connect(e.to_string()))?;
    let bearer = format!("Bearer {token}")
        .parse()
        .map_err(|_| RoomError::Connect("token is not a valid header value".into()))?;
    request.headers_mut().insert("Authorization", bearer);

    let connected = tokio::time::timeout(timeout, tokio_tungstenite::connect_async(request))
        .await
        .map_err(|_| RoomError::Timeout("signal connection"))?;
    let (ws, _) = connected.map_err(|e| match e {
        tokio_tungstenite::tungstenite::Error::Http(response) => RoomError::Refused {
            status: response.status().as_u16(),
        },
        other => RoomError::Connect(other.to_string()),
    })?;
    let (mut sink, mut stream) = ws.split();

    let join = tokio::time::timeout(timeout, async {
        loop {
            match stream.next().await {
                Some(Ok(Message::Binary(bytes))) => {
                    let response = proto::SignalResponse::decode(bytes.as_ref())
                        .map_err(|_| RoomError::Protocol("malformed SignalResponse"))?;
                    return match response.message {
                        Some(signal_response::Message::Join(join)) => Ok(join),
                        Some(signal_response::Message::Leave(_)) => {
                            Err(RoomError::Protocol("server sent leave instead of join"))
                        }
                        _ => Err(RoomError::Protocol("first signal message was not join")),
                    };
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                Some(Ok(_)) => return Err(RoomError::Protocol("unexpected frame before join")),
                Some(Err(e)) => return Err(RoomError::Connect(e.to_string())),
                None => return Err(RoomError::Connect("closed before join".into())),
            }
        }
    })
    .await
    .map_err(|_| RoomError::Timeout("JoinResponse"))??;

    let (request_tx, mut request_rx) = mpsc::channel::<signal_request::Message>(QUEUE);
    let (input_tx, input_rx) = mpsc::channel(QUEUE);

    // Writer: ends when every sender is dropped (the room is done), closing the socket.
    tokio::spawn(async move {
        while let Some(message) = request_rx.recv().await {
            let bytes = proto::SignalRequest {
                message: Some(message),
            }
            .encode_to_vec();
            if sink.send(Message::Binary(bytes.into())).await.is_err() {
                break;
            }
        }
        let _ = sink.send(Message::Close(None)).await;
    });

    // Reader: ends at close, error, a malformed frame, or when the room stops listening.
    tokio::spawn(async move {
        let malformed = loop {
            match stream.next().await {
                Some(Ok(Message::Binary(bytes))) => {
                    match proto::SignalResponse::decode(bytes.as_ref()) {
                        Ok(proto::SignalResponse {
                            message: Some(message),
                        }) => {
                            if input_tx
                                .send(SignalInput::Message(Box::new(message)))
                                .await
                                .is_err()
                            {
                                return;
                            }
                        }
                        // An empty oneof is a message from a newer protocol: skip it.
                        Ok(_) => {}
                        Err(e) => {
                            warn!(error = %e, "livekit signal: malformed SignalResponse");
                            break true;
                        }
                    }
                }
                Some(Ok(Message::Text(_))) => {
                    warn!("livekit signal: text frame on a protobuf connection");
                    break true;
                }
                Some(Ok(Message::Close(frame))) => {
                    debug!(?frame, "livekit signal: closed by the server");
                    break false;
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    debug!(error = %e, "livekit signal: connection error");
                    break false;
                }
                None => break false,
            }
        };
        let _ = input_tx.send(SignalInput::Closed { malformed }).await;
    });

    Ok((join, SignalSender { tx: request_tx }, input_rx))
}

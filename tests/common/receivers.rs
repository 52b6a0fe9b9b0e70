//! Loopback webhook and heartbeat receivers that enforce what each service documents, so a
//! test fails the way the real service would refuse a message.
//!
//! - Slack incoming webhooks: 400 `no_text` without a non-empty `text`; 400 `invalid_blocks`
//!   when `blocks` is not an array of at most 50 objects with a `type`, or a section's text is
//!   longer than 3000 characters; else 200 `ok`.
//! - Discord webhooks: 400 (code 50006) with neither `content` nor `embeds`; 400 when
//!   `content` is longer than 2000 characters; else 204.
//! - Teams Workflows: 400 unless `type` is `message` with an attachment of content type
//!   `application/vnd.microsoft.card.adaptive` whose `AdaptiveCard` has a non-empty `body`;
//!   else 202.
//! - Generic: any JSON object, 200.
//! - Heartbeat: records each GET's path, 200 `OK`.
//! - Hang: reads the request, never answers. Status: answers that status, quoting the path
//!   (as an Express 404 page would: a test that the path, the secret, is not logged).
//!
//! Each is a [`Loopback`] server with the request reading and answers of [`super::http`]: one
//! request per connection, `Connection: close`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::net::TcpStream;

use super::http::{read_request, respond_text, Loopback};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Slack,
    Discord,
    Teams,
    Generic,
    Heartbeat,
    Hang,
    Status(u16),
}

/// One request as received, and what the receiver answered.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub path: String,
    pub body: Vec<u8>,
    pub status: u16,
    pub answer: String,
}

impl Received {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

pub struct Receiver {
    server: Loopback,
    kind: Kind,
    log: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    pub fn start(kind: Kind) -> Receiver {
        let log = Arc::new(Mutex::new(Vec::new()));
        let shared = log.clone();
        let server = Loopback::start("receiver", move |stream| {
            handle(stream, kind, shared.clone())
        });
        Receiver { server, kind, log }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.server.addr())
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// Every request so far, oldest first.
    pub fn received(&self) -> Vec<Received> {
        self.log.lock().unwrap().clone()
    }

    /// The bodies of the messages the receiver accepted (2xx), oldest first.
    pub fn accepted(&self) -> Vec<Value> {
        self.received()
            .iter()
            .filter(|r| (200..300).contains(&r.status))
            .map(Received::json)
            .collect()
    }

    /// Requests answered with an error, as `(status, answer)`.
    pub fn refused(&self) -> Vec<(u16, String)> {
        self.received()
            .iter()
            .filter(|r| r.status >= 300)
            .map(|r| (r.status, r.answer.clone()))
            .collect()
    }

    /// The paths requested so far (heartbeat pings), oldest first.
    pub fn paths(&self) -> Vec<String> {
        self.received().into_iter().map(|r| r.path).collect()
    }
}

async fn handle(mut stream: TcpStream, kind: Kind, log: Arc<Mutex<Vec<Received>>>) {
    let Some(request) = read_request(&mut stream).await else {
        return;
    };
    let (method, path, body) = (request.method, request.target, request.body);
    let (status, answer) = match kind {
        Kind::Hang => {
            log.lock().unwrap().push(Received {
                method,
                path,
                body,
                status: 0,
                answer: String::new(),
            });
            tokio::time::sleep(Duration::from_secs(120)).await;
            return;
        }
        Kind::Status(s) => (s, format!("Cannot POST {path}")),
        Kind::Heartbeat => (200, "OK".to_string()),
        _ => match serde_json::from_slice::<Value>(&body) {
            Ok(v) if v.is_object() => judge(kind, &v),
            _ => (400, "invalid_payload".to_string()),
        },
    };
    log.lock().unwrap().push(Received {
        method,
        path,
        body,
        status,
        answer: answer.clone(),
    });
    let _ = respond_text(&mut stream, status, &answer).await;
}

/// The service's answer to a JSON object.
fn judge(kind: Kind, v: &Value) -> (u16, String) {
    let chars = |v: &Value| v.as_str().map(|s| s.chars().count());
    match kind {
        Kind::Slack => {
            if chars(&v["text"]).unwrap_or(0) == 0 {
                return (400, "no_text".into());
            }
            if let Some(blocks) = v.get("blocks") {
                let Some(blocks) = blocks.as_array() else {
                    return (400, "invalid_blocks".into());
                };
                let bad = |b: &Value| {
                    !b["type"].is_string()
                        || (b["type"] == "section"
                            && !(1..=3000).contains(&chars(&b["text"]["text"]).unwrap_or(0)))
                };
                if blocks.len() > 50 || blocks.iter().any(bad) {
                    return (400, "invalid_blocks".into());
                }
            }
            (200, "ok".into())
        }
        Kind::Discord => {
            let content = chars(&v["content"]).unwrap_or(0);
            let embeds = v["embeds"].as_array().is_some_and(|e| !e.is_empty());
            if content == 0 && !embeds {
                return (
                    400,
                    r#"{"message": "Cannot send an empty message", "code": 50006}"#.into(),
                );
            }
            if content > 2000 {
                return (
                    400,
                    r#"{"content": ["Must be 2000 or fewer in length."]}"#.into(),
                );
            }
            (204, String::new())
        }
        Kind::Teams => {
            let card = v["attachments"].as_array().and_then(|a| {
                a.iter().find(|a| {
                    a["contentType"] == "application/vnd.microsoft.card.adaptive"
                        && a["content"]["type"] == "AdaptiveCard"
                })
            });
            let body = card
                .and_then(|c| c["content"]["body"].as_array())
                .is_some_and(|b| !b.is_empty());
            if v["type"] != "message" || !body {
                return (
                    400,
                    "Bad Request: expected a message with an adaptive card attachment".into(),
                );
            }
            (202, String::new())
        }
        _ => (200, "ok".into()),
    }
}

//! A loopback TCP proxy in front of the S3 server that counts HTTP requests and misbehaves on
//! the ones a test names.
//!
//! Requests are numbered from 0 across all connections in the order their heads arrive (the S3
//! client never pipelines, and snapsync's publish issues one request at a time, so the numbering
//! of a run is deterministic). A plan maps request numbers to a [`FaultKind`]; every other
//! request is forwarded byte for byte (request heads and bodies parsed just enough to find where
//! each request ends: `Content-Length` or chunked), and responses are copied back untouched.
//!
//! It runs on its own thread with its own tokio runtime, so it serves plain `#[test]`s that run
//! the binary as well as `#[tokio::test]`s, and it stops when dropped.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::TcpStream;

use super::http::Loopback;

/// What to do with one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FaultKind {
    /// Not forwarded; answered `500` with S3's `InternalError` XML body.
    InternalError,
    /// Not forwarded: the connection is closed after the head and half of the body arrived.
    CutMidRequest,
    /// Forwarded (the server does it), but the connection is closed as the response starts,
    /// so the client never learns that it succeeded.
    LostResponse,
    /// Held silently past the client's timeout, then forwarded anyway (a late duplicate the
    /// server applies after the client gave up, racing with its retry).
    DelayPastTimeout,
}

/// One request as the proxy saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub method: String,
    /// Path and query, as sent.
    pub target: String,
    pub fault: Option<FaultKind>,
}

impl Seen {
    /// `PUT /bucket/prefix/d/latest.json` without the query.
    pub fn label(&self) -> String {
        format!(
            "{} {}",
            self.method,
            self.target.split('?').next().unwrap_or("")
        )
    }
}

#[derive(Debug, Default)]
struct State {
    seen: Vec<Seen>,
    plan: BTreeMap<usize, FaultKind>,
    /// Every request waits this long before it is forwarded (to slow a publish down).
    delay_each: Duration,
    /// How long [`FaultKind::DelayPastTimeout`] holds a request.
    hold: Duration,
    /// Delayed requests not yet answered by the server.
    in_flight: usize,
}

pub struct Proxy {
    server: Loopback,
    state: Arc<Mutex<State>>,
}

impl Proxy {
    /// Listens on `127.0.0.1:0` and forwards to `upstream` (`http://127.0.0.1:PORT`).
    pub fn start(upstream: &str) -> Proxy {
        let upstream: SocketAddr = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .parse()
            .expect("the S3 endpoint is http://IP:PORT");
        assert!(upstream.ip().is_loopback(), "only loopback upstreams");
        let state = Arc::new(Mutex::new(State {
            hold: Duration::from_millis(1500),
            ..State::default()
        }));
        let shared = state.clone();
        let server = Loopback::start("s3-proxy", move |client| {
            connection(client, upstream, shared.clone())
        });
        Proxy { server, state }
    }

    /// `http://127.0.0.1:PORT`: the endpoint to give the S3 client.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.server.addr())
    }

    /// Requests are numbered from 0 again, and these faults apply to the coming ones.
    pub fn reset(&self, plan: impl IntoIterator<Item = (usize, FaultKind)>) {
        let mut s = self.lock();
        s.seen.clear();
        s.plan = plan.into_iter().collect();
    }

    /// Every request waits `d` before it is forwarded.
    pub fn set_delay_each(&self, d: Duration) {
        self.lock().delay_each = d;
    }

    /// How long [`FaultKind::DelayPastTimeout`] holds a request (default 1.5 s).
    pub fn set_hold(&self, d: Duration) {
        self.lock().hold = d;
    }

    /// The requests since the last [`Proxy::reset`], in order.
    pub fn seen(&self) -> Vec<Seen> {
        self.lock().seen.clone()
    }

    pub fn count(&self) -> usize {
        self.lock().seen.len()
    }

    /// Waits until every held request has reached the server and been answered, so nothing
    /// from an earlier run can land later.
    pub fn wait_idle(&self, limit: Duration) {
        let t = Instant::now();
        while self.lock().in_flight > 0 {
            assert!(t.elapsed() < limit, "held requests still in flight");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

/// One request: its head as received, and how its body is framed.
struct Head {
    bytes: Vec<u8>,
    method: String,
    target: String,
    body: Body,
}

enum Body {
    Length(u64),
    Chunked,
}

/// Reads one request head; `None` at a clean end of the connection (or garbage).
async fn read_head(r: &mut BufReader<OwnedReadHalf>) -> Option<Head> {
    let mut bytes = Vec::new();
    loop {
        let before = bytes.len();
        let n = r.read_until(b'\n', &mut bytes).await.ok()?;
        if n == 0 || bytes.len() > 64 * 1024 {
            return None;
        }
        let line = &bytes[before..];
        if line == b"\r\n" || line == b"\n" {
            break;
        }
    }
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let mut lines = text.lines();
    let mut first = lines.next()?.split_whitespace();
    let (method, target) = (first.next()?.to_string(), first.next()?.to_string());
    let mut body = Body::Length(0);
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let (name, value) = (name.trim().to_ascii_lowercase(), value.trim());
        if name == "content-length" {
            body = Body::Length(value.parse().ok()?);
        } else if name == "transfer-encoding" && value.to_ascii_lowercase().contains("chunked") {
            body = Body::Chunked;
        }
    }
    Some(Head {
        bytes,
        method,
        target,
        body,
    })
}

/// Reads the whole body of a request (raw, chunk framing included), at most `limit` bytes of
/// it when `limit` is set.
async fn read_body(
    r: &mut BufReader<OwnedReadHalf>,
    body: &Body,
    limit: Option<u64>,
) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    match body {
        Body::Length(n) => {
            let n = limit.map_or(*n, |l| l.min(*n));
            let mut taken = r.take(n);
            taken.read_to_end(&mut out).await.ok()?;
            (out.len() as u64 == n).then_some(out)
        }
        Body::Chunked => loop {
            if limit.is_some_and(|l| out.len() as u64 >= l) {
                return Some(out);
            }
            let start = out.len();
            if r.read_until(b'\n', &mut out).await.ok()? == 0 {
                return None;
            }
            let line = String::from_utf8_lossy(&out[start..]).into_owned();
            let size = u64::from_str_radix(line.trim().split(';').next()?.trim(), 16).ok()?;
            if size == 0 {
                // Trailers, then the empty line.
                loop {
                    let s = out.len();
                    if r.read_until(b'\n', &mut out).await.ok()? == 0 {
                        return None;
                    }
                    if &out[s..] == b"\r\n" {
                        return Some(out);
                    }
                }
            }
            let mut taken = (&mut *r).take(size + 2);
            let before = out.len();
            taken.read_to_end(&mut out).await.ok()?;
            if (out.len() - before) as u64 != size + 2 {
                return None;
            }
        },
    }
}

async fn connection(client: TcpStream, upstream: SocketAddr, state: Arc<Mutex<State>>) {
    let _ = client.set_nodelay(true);
    let Ok(server) = TcpStream::connect(upstream).await else {
        return;
    };
    let _ = server.set_nodelay(true);
    let (client_r, client_w) = client.into_split();
    let (mut server_r, mut server_w) = server.into_split();
    let mut client_r = BufReader::new(client_r);
    let client_w = Arc::new(tokio::sync::Mutex::new(Some(client_w)));
    // Set when the next response must not reach the client.
    let drop_next = Arc::new(AtomicBool::new(false));

    let copier = {
        let client_w = client_w.clone();
        let drop_next = drop_next.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = match server_r.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                let mut w = client_w.lock().await;
                if drop_next.load(Ordering::SeqCst) {
                    // The server has answered: it did the work. The client hears nothing.
                    w.take();
                    break;
                }
                let Some(w) = w.as_mut() else { break };
                if w.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
            if let Some(mut w) = client_w.lock().await.take() {
                let _ = w.shutdown().await;
            }
        })
    };

    while let Some(head) = read_head(&mut client_r).await {
        let (fault, delay, hold) = {
            let mut s = lock(&state);
            let index = s.seen.len();
            let fault = s.plan.get(&index).copied();
            s.seen.push(Seen {
                method: head.method.clone(),
                target: head.target.clone(),
                fault,
            });
            (fault, s.delay_each, s.hold)
        };
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        match fault {
            None => {
                let Some(body) = read_body(&mut client_r, &head.body, None).await else {
                    break;
                };
                if server_w.write_all(&head.bytes).await.is_err()
                    || server_w.write_all(&body).await.is_err()
                {
                    break;
                }
            }
            Some(FaultKind::InternalError) => {
                let _ = read_body(&mut client_r, &head.body, None).await;
                let body =
                    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>InternalError</Code>\
                    <Message>We encountered an internal error. Please try again.</Message>\
                    <RequestId>snapsync-fault-proxy</RequestId></Error>";
                let shown = if head.method == "HEAD" { "" } else { body };
                let response = format!(
                    "HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/xml\r\n\
                     Content-Length: {}\r\nConnection: close\r\n\r\n{shown}",
                    body.len()
                );
                if let Some(w) = client_w.lock().await.as_mut() {
                    let _ = w.write_all(response.as_bytes()).await;
                    let _ = w.flush().await;
                }
                break;
            }
            Some(FaultKind::CutMidRequest) => {
                let half = match head.body {
                    Body::Length(n) => n / 2,
                    Body::Chunked => 16,
                };
                let _ = read_body(&mut client_r, &head.body, Some(half)).await;
                break;
            }
            Some(FaultKind::LostResponse) => {
                let Some(body) = read_body(&mut client_r, &head.body, None).await else {
                    break;
                };
                drop_next.store(true, Ordering::SeqCst);
                let _ = server_w.write_all(&head.bytes).await;
                let _ = server_w.write_all(&body).await;
                // The copier closes the client when the server's answer starts.
                let _ = copier.await;
                return;
            }
            Some(FaultKind::DelayPastTimeout) => {
                let Some(body) = read_body(&mut client_r, &head.body, None).await else {
                    break;
                };
                lock(&state).in_flight += 1;
                let state = state.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(hold).await;
                    late_delivery(upstream, &head.bytes, &body).await;
                    lock(&state).in_flight -= 1;
                });
                // Silence on this connection until the client gives up on it.
                let mut sink = Vec::new();
                let _ = tokio::time::timeout(hold, client_r.read_to_end(&mut sink)).await;
                break;
            }
        }
    }
    copier.abort();
    let writer = client_w.lock().await.take();
    if let Some(mut w) = writer {
        let _ = w.shutdown().await;
    }
}

/// Sends a held request on a connection of its own and waits for the start of the answer.
async fn late_delivery(upstream: SocketAddr, head: &[u8], body: &[u8]) {
    let Ok(mut s) = TcpStream::connect(upstream).await else {
        return;
    };
    if s.write_all(head).await.is_err() || s.write_all(body).await.is_err() {
        return;
    }
    let mut buf = [0u8; 1024];
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf)).await;
}

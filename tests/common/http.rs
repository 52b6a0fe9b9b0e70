//! Loopback HTTP/1.1 test server with scriptable faults, for the integration tests.
//!
//! Hand-written over tokio's `TcpListener` (no hyper) so every byte on the wire is under the
//! test's control. It runs on its own std thread with a current-thread tokio runtime, so it works
//! from plain `#[test]` functions (e.g. ones that run the snapsync binary as a process) as well as
//! from `#[tokio::test]`.
//!
//! Every response carries `Connection: close`; one request per connection. Request bodies are
//! read by `Content-Length` and kept (see [`HttpServer::bodies`]; chunked request bodies are not
//! supported). Paths are matched without their query string (`/data.json?x=1` is `/data.json`).

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

/// One scripted misbehaviour, consumed by one request (see [`HttpServer::push_faults`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// That status with a short `text/plain` body.
    Status(u16),
    /// Anything (e.g. HTML with 200). `Content-Length` (of `body`) and `Connection: close` are
    /// added unless `headers` already has `content-length`/`transfer-encoding` or `connection`.
    Respond {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
    /// Read the request, then close the connection without answering.
    Close,
    /// Sleep before sending anything, then serve normally.
    DelayHeaders(Duration),
    /// Serve normally, but send the headers and the first `after` body bytes, sleep, then the rest.
    StallBody { after: usize, stall: Duration },
    /// Serve normally with the `Content-Length` of the full body, but send only `send` body bytes,
    /// then close.
    Truncate { send: usize },
    /// 302 with `Location: to` (sent as given; may be a path or a full URL).
    Redirect { to: String },
    /// 200 `application/json` with chunked transfer encoding and a never-ending body
    /// (`[` then `0,0,0,...`) in chunks of `chunk` bytes; stops when the client disconnects.
    Endless { chunk: usize },
}

#[derive(Debug, Default)]
struct PathState {
    /// `None`: 404 (unless a fault answers).
    body: Option<Vec<u8>>,
    etag: String,
    /// Unix seconds.
    last_modified: u64,
    no_etag: bool,
    no_last_modified: bool,
    gzip: bool,
    content_type: Option<String>,
    faults: VecDeque<Fault>,
    /// Headers (lower-cased names) of every request so far, oldest first.
    requests: Vec<Vec<(String, String)>>,
    /// Bodies of every request so far (empty for GET), oldest first.
    bodies: Vec<Vec<u8>>,
}

#[derive(Debug)]
struct Shared {
    paths: HashMap<String, PathState>,
    /// The last `Last-Modified` handed out (unix seconds); each `set` moves it 1 s forward.
    clock: u64,
    total_requests: usize,
}

/// A loopback HTTP/1.1 server; stops (and closes all its connections) when dropped.
pub struct HttpServer {
    server: Loopback,
    shared: Arc<Mutex<Shared>>,
}

impl HttpServer {
    /// Binds `127.0.0.1:0` and starts serving on a background thread.
    pub fn start() -> HttpServer {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let shared = Arc::new(Mutex::new(Shared {
            paths: HashMap::new(),
            // A day in the past, so that Last-Modified values stay in the past for 86400 `set`s.
            clock: now.saturating_sub(86_400),
            total_requests: 0,
        }));
        let state = shared.clone();
        let server = Loopback::start("test-http", move |stream| handle(stream, state.clone()));
        HttpServer { server, shared }
    }

    /// `http://127.0.0.1:PORT` + `path` (`path` starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.server.addr(), path)
    }

    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// Serve `body` at `path` with 200, `Content-Type: application/json`, an `ETag` (quoted hex
    /// sha256 of `body`, see [`etag_for`]) and a `Last-Modified` that increases (by 1 s) on every
    /// `set`. Honours `If-None-Match` (exact ETag match, or `*`) and, when the request has no
    /// `If-None-Match`, `If-Modified-Since` (>= Last-Modified) with 304 and no body.
    pub fn set(&self, path: &str, body: impl Into<Vec<u8>>) {
        let body = body.into();
        let mut shared = self.lock();
        shared.clock += 1;
        let clock = shared.clock;
        let state = shared.paths.entry(path.to_string()).or_default();
        state.etag = etag_for(&body);
        state.last_modified = clock;
        state.body = Some(body);
    }

    /// [`HttpServer::set`], but with this `ETag` (quoted, e.g. `"\"v7\""`) instead of the
    /// content hash: a server whose tags are not per file (a release number, a build id).
    pub fn set_with_etag(&self, path: &str, body: impl Into<Vec<u8>>, etag: &str) {
        self.set(path, body);
        self.lock().paths.get_mut(path).expect("just set").etag = etag.to_string();
    }

    /// Stop serving `path` (404 from now on); faults, settings and counters are kept.
    pub fn remove(&self, path: &str) {
        if let Some(state) = self.lock().paths.get_mut(path) {
            state.body = None;
        }
    }

    /// Turn validators off/on for a path (no ETag / no Last-Modified headers sent, no 304s on
    /// that validator). Both are on by default.
    pub fn set_validators(&self, path: &str, etag: bool, last_modified: bool) {
        let mut shared = self.lock();
        let state = shared.paths.entry(path.to_string()).or_default();
        state.no_etag = !etag;
        state.no_last_modified = !last_modified;
    }

    /// When on, and the request's `Accept-Encoding` contains `gzip`, the body is sent
    /// gzip-compressed with `Content-Encoding: gzip` (the ETag stays the same).
    pub fn set_gzip(&self, path: &str, on: bool) {
        self.lock().paths.entry(path.to_string()).or_default().gzip = on;
    }

    /// Content-Type of normal responses for `path` (default `application/json`).
    pub fn set_content_type(&self, path: &str, content_type: &str) {
        self.lock()
            .paths
            .entry(path.to_string())
            .or_default()
            .content_type = Some(content_type.to_string());
    }

    /// Faults consumed one per request, in order, before normal serving resumes.
    pub fn push_faults(&self, path: &str, faults: impl IntoIterator<Item = Fault>) {
        self.lock()
            .paths
            .entry(path.to_string())
            .or_default()
            .faults
            .extend(faults);
    }

    /// Faults pushed for `path` and not consumed yet.
    pub fn pending_faults(&self, path: &str) -> usize {
        self.lock().paths.get(path).map_or(0, |s| s.faults.len())
    }

    /// Number of requests received for the path (any method, faulted ones included).
    pub fn requests(&self, path: &str) -> usize {
        self.lock().paths.get(path).map_or(0, |s| s.requests.len())
    }

    /// Number of requests received for all paths.
    pub fn total_requests(&self) -> usize {
        self.lock().total_requests
    }

    /// Headers (lower-cased names, trimmed values, in order) of the last request for the path;
    /// empty if there was none.
    pub fn last_headers(&self, path: &str) -> Vec<(String, String)> {
        self.lock()
            .paths
            .get(path)
            .and_then(|s| s.requests.last().cloned())
            .unwrap_or_default()
    }

    /// Headers of every request for the path, oldest first.
    pub fn all_headers(&self, path: &str) -> Vec<Vec<(String, String)>> {
        self.lock()
            .paths
            .get(path)
            .map(|s| s.requests.clone())
            .unwrap_or_default()
    }

    /// Bodies of every request for the path (a webhook's POSTs), oldest first.
    pub fn bodies(&self, path: &str) -> Vec<Vec<u8>> {
        self.lock()
            .paths
            .get(path)
            .map(|s| s.bodies.clone())
            .unwrap_or_default()
    }

    /// The ETag currently sent for `path` (with its quotes), if it has a body.
    pub fn etag(&self, path: &str) -> Option<String> {
        let shared = self.lock();
        let state = shared.paths.get(path)?;
        state.body.as_ref().map(|_| state.etag.clone())
    }

    /// The Last-Modified currently sent for `path` (an HTTP date), if it has a body.
    pub fn last_modified(&self, path: &str) -> Option<String> {
        let shared = self.lock();
        let state = shared.paths.get(path)?;
        state
            .body
            .as_ref()
            .map(|_| format_http_date(state.last_modified))
    }

    fn lock(&self) -> MutexGuard<'_, Shared> {
        lock(&self.shared)
    }
}

/// A listener on `127.0.0.1:0` served on its own std thread with a current-thread tokio
/// runtime, so it works from plain `#[test]` functions as well as from `#[tokio::test]`: every
/// connection goes to `handle`, as a task. Dropping it stops the accept loop and cancels the
/// connections still open. [`HttpServer`], [`TlsServer`] and the webhook receivers are each one
/// of these with their own handler.
pub struct Loopback {
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Loopback {
    pub fn start<H, F>(name: &str, handle: H) -> Loopback
    where
        H: Fn(TcpStream) -> F + Send + 'static,
        F: Future<Output = ()> + Send + 'static,
    {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap_or_else(|e| panic!("bind {name} on 127.0.0.1:0: {e}"));
        listener.set_nonblocking(true).expect("set_nonblocking");
        let addr = listener.local_addr().expect("local_addr");
        let (shutdown, mut stop) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(format!("{name}-{}", addr.port()))
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("build a loopback server runtime");
                rt.block_on(async move {
                    let listener = TcpListener::from_std(listener).expect("tokio TcpListener");
                    loop {
                        tokio::select! {
                            _ = &mut stop => break,
                            accepted = listener.accept() => match accepted {
                                Ok((stream, _)) => {
                                    tokio::spawn(handle(stream));
                                }
                                // e.g. too many open files: back off instead of spinning
                                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                            },
                        }
                    }
                });
                // Dropping the runtime here cancels the connection tasks still running.
            })
            .unwrap_or_else(|e| panic!("spawn the {name} thread: {e}"));
        Loopback {
            addr,
            shutdown: Some(shutdown),
            thread: Some(thread),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Loopback {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The ETag the server sends for `body`: `"` + hex sha256 + `"`.
pub fn etag_for(body: &[u8]) -> String {
    format!("\"{}\"", hex::encode(Sha256::digest(body)))
}

/// IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`) of unix seconds.
pub fn format_http_date(secs: u64) -> String {
    const WEEKDAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    let days = (secs / 86_400) as i64;
    let second_of_day = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{}, {:02} {} {:04} {:02}:{:02}:{:02} GMT",
        WEEKDAYS[((days + 4) % 7) as usize], // 1970-01-01 was a Thursday
        day,
        MONTHS[(month - 1) as usize],
        year,
        second_of_day / 3600,
        second_of_day / 60 % 60,
        second_of_day % 60
    )
}

/// Unix seconds of an IMF-fixdate; `None` for anything else (obsolete formats included).
pub fn parse_http_date(text: &str) -> Option<u64> {
    let mut parts = text.split_whitespace();
    let _weekday = parts.next()?;
    let day: u32 = parts.next()?.parse().ok()?;
    let month = parts.next()?;
    let month = MONTHS.iter().position(|m| m.eq_ignore_ascii_case(month))? as u32 + 1;
    let year: i64 = parts.next()?.parse().ok()?;
    let mut hms = parts.next()?.split(':').map(|p| p.parse::<i64>().ok());
    let (hour, minute, second) = (hms.next()??, hms.next()??, hms.next()??);
    if parts.next()? != "GMT" || parts.next().is_some() || hms.next().is_some() {
        return None;
    }
    if !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let days = days_from_civil(year, month, day);
    u64::try_from(days * 86_400 + hour * 3600 + minute * 60 + second).ok()
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

// Howard Hinnant's civil-date algorithms (proleptic Gregorian calendar).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = (if mp < 10 { mp + 3 } else { mp - 9 }) as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year - era * 400;
    let month = i64::from(month);
    let doy = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn lock(shared: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    // A test that panicked while holding the lock must not take the server down with it.
    shared.lock().unwrap_or_else(|e| e.into_inner())
}

/// One request as read off the wire: headers lower-cased, the body by `Content-Length`.
pub struct Request {
    pub method: String,
    /// The request target as sent: path, query and all.
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn path(&self) -> &str {
        self.target.split(['?', '#']).next().unwrap_or("")
    }

    fn is_head(&self) -> bool {
        self.method == "HEAD"
    }
}

struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    /// Adds `Content-Length` (except for 1xx/204/304) and `Connection: close` unless present.
    fn new(status: u16, mut headers: Vec<(String, String)>, body: Vec<u8>) -> Response {
        let has = |headers: &[(String, String)], name: &str| {
            headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name))
        };
        let bodiless = status < 200 || status == 204 || status == 304;
        if !bodiless && !has(&headers, "content-length") && !has(&headers, "transfer-encoding") {
            headers.push(("Content-Length".into(), body.len().to_string()));
        }
        if !has(&headers, "connection") {
            headers.push(("Connection".into(), "close".into()));
        }
        Response {
            status,
            headers,
            body,
        }
    }

    fn text(status: u16, text: &str) -> Response {
        Response::new(
            status,
            vec![("Content-Type".into(), "text/plain; charset=utf-8".into())],
            text.as_bytes().to_vec(),
        )
    }

    fn head_bytes(&self) -> Vec<u8> {
        let mut head = format!("HTTP/1.1 {} {}\r\n", self.status, reason(self.status));
        for (name, value) in &self.headers {
            head.push_str(name);
            head.push_str(": ");
            head.push_str(value);
            head.push_str("\r\n");
        }
        head.push_str("\r\n");
        head.into_bytes()
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        410 => "Gone",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}

/// Reads one request: its head, and a `Content-Length` body (kept up to 1 MiB). `None` if the
/// client went away or sent garbage.
pub async fn read_request(stream: &mut TcpStream) -> Option<Request> {
    const MAX_HEAD: usize = 64 * 1024;
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    let end = loop {
        if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break pos;
        }
        if buf.len() > MAX_HEAD {
            return None;
        }
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..end]);
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next()?.split(' ');
    let method = request_line.next()?.to_string();
    let target = request_line.next()?.to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_string()))
        .collect();
    let mut request = Request {
        method,
        target,
        headers,
        body: Vec::new(),
    };
    const MAX_BODY: usize = 1 << 20;
    let content_length: usize = request
        .header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[end + 4..].to_vec();
    let mut read = body.len();
    while read < content_length {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            break;
        }
        read += n;
        if body.len() < MAX_BODY {
            body.extend_from_slice(&chunk[..n]);
        }
    }
    body.truncate(content_length.min(MAX_BODY));
    request.body = body;
    Some(request)
}

/// The response the path's settings give for `request` when no fault is in the way.
fn normal_response(shared: &Mutex<Shared>, request: &Request) -> Response {
    let shared = lock(shared);
    let Some(state) = shared.paths.get(request.path()) else {
        return Response::text(404, "not found\n");
    };
    let Some(body) = &state.body else {
        return Response::text(404, "not found\n");
    };
    if request.method != "GET" && request.method != "HEAD" {
        return Response::new(
            405,
            vec![("Allow".into(), "GET, HEAD".into())],
            b"method not allowed\n".to_vec(),
        );
    }
    let etag_on = !state.no_etag;
    let last_modified_on = !state.no_last_modified;
    let mut headers = Vec::new();
    if etag_on {
        headers.push(("ETag".to_string(), state.etag.clone()));
    }
    if last_modified_on {
        headers.push((
            "Last-Modified".to_string(),
            format_http_date(state.last_modified),
        ));
    }
    if state.gzip {
        headers.push(("Vary".to_string(), "Accept-Encoding".to_string()));
    }
    // RFC 9110 13.2.2: If-Modified-Since is ignored when If-None-Match is present.
    let not_modified = if let Some(tags) = request.header("if-none-match") {
        etag_on
            && tags
                .split(',')
                .map(str::trim)
                .any(|tag| tag == "*" || tag == state.etag)
    } else if let Some(since) = request.header("if-modified-since") {
        last_modified_on && parse_http_date(since).is_some_and(|t| t >= state.last_modified)
    } else {
        false
    };
    if not_modified {
        return Response::new(304, headers, Vec::new());
    }
    headers.push((
        "Content-Type".to_string(),
        state
            .content_type
            .clone()
            .unwrap_or_else(|| "application/json".to_string()),
    ));
    let wants_gzip = request
        .header("accept-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("gzip"));
    let body = if state.gzip && wants_gzip {
        headers.push(("Content-Encoding".to_string(), "gzip".to_string()));
        gzip(body)
    } else {
        body.clone()
    };
    Response::new(200, headers, body)
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(data).expect("gzip into memory");
    encoder.finish().expect("gzip into memory")
}

async fn handle(mut stream: TcpStream, shared: Arc<Mutex<Shared>>) {
    let _ = stream.set_nodelay(true);
    let Some(request) = read_request(&mut stream).await else {
        return;
    };
    let fault = {
        let mut guard = lock(&shared);
        guard.total_requests += 1;
        let state = guard.paths.entry(request.path().to_string()).or_default();
        state.requests.push(request.headers.clone());
        state.bodies.push(request.body.clone());
        state.faults.pop_front()
    };
    // Write errors mean the client went away; there is nobody to tell.
    let _ = serve(&mut stream, &shared, &request, fault).await;
}

async fn serve(
    stream: &mut TcpStream,
    shared: &Mutex<Shared>,
    request: &Request,
    fault: Option<Fault>,
) -> std::io::Result<()> {
    let head_only = request.is_head();
    let response = match fault {
        None => normal_response(shared, request),
        Some(Fault::Status(status)) => Response::text(status, &format!("fault: status {status}\n")),
        Some(Fault::Respond {
            status,
            headers,
            body,
        }) => Response::new(status, headers, body),
        Some(Fault::Close) => return Ok(()),
        Some(Fault::DelayHeaders(delay)) => {
            tokio::time::sleep(delay).await;
            normal_response(shared, request)
        }
        Some(Fault::Redirect { to }) => {
            Response::new(302, vec![("Location".to_string(), to)], Vec::new())
        }
        Some(Fault::StallBody { after, stall }) => {
            let response = normal_response(shared, request);
            let body: &[u8] = if head_only { &[] } else { &response.body };
            let (first, rest) = body.split_at(after.min(body.len()));
            let mut out = response.head_bytes();
            out.extend_from_slice(first);
            stream.write_all(&out).await?;
            stream.flush().await?;
            tokio::time::sleep(stall).await;
            stream.write_all(rest).await?;
            return finish(stream).await;
        }
        Some(Fault::Truncate { send }) => {
            let response = normal_response(shared, request);
            let mut out = response.head_bytes();
            if !head_only {
                out.extend_from_slice(&response.body[..send.min(response.body.len())]);
            }
            stream.write_all(&out).await?;
            return finish(stream).await;
        }
        Some(Fault::Endless { chunk }) => return endless(stream, chunk, head_only).await,
    };
    let mut out = response.head_bytes();
    if !head_only {
        out.extend_from_slice(&response.body);
    }
    stream.write_all(&out).await?;
    finish(stream).await
}

/// Answers `status` with `text` as a `text/plain` body (no body for 1xx, 204 and 304) and
/// closes the connection.
pub async fn respond_text(stream: &mut TcpStream, status: u16, text: &str) -> std::io::Result<()> {
    let response = Response::text(status, text);
    let mut out = response.head_bytes();
    if !(status < 200 || status == 204 || status == 304) {
        out.extend_from_slice(&response.body);
    }
    stream.write_all(&out).await?;
    finish(stream).await
}

async fn finish(stream: &mut TcpStream) -> std::io::Result<()> {
    stream.flush().await?;
    stream.shutdown().await
}

async fn endless(stream: &mut TcpStream, chunk: usize, head_only: bool) -> std::io::Result<()> {
    let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\
                Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
    stream.write_all(head.as_bytes()).await?;
    if head_only {
        return finish(stream).await;
    }
    let chunk = chunk.max(1);
    let mut pattern = b"0,".iter().copied().cycle();
    let mut data = Vec::with_capacity(chunk + 32);
    let mut first = true;
    loop {
        data.clear();
        data.extend_from_slice(format!("{chunk:x}\r\n").as_bytes());
        if first {
            data.push(b'[');
            data.extend(pattern.by_ref().take(chunk - 1));
            first = false;
        } else {
            data.extend(pattern.by_ref().take(chunk));
        }
        data.extend_from_slice(b"\r\n");
        stream.write_all(&data).await?;
    }
}

/// A loopback HTTPS server whose certificate is self-signed (freshly made for `127.0.0.1` and
/// `localhost`), so a client that checks certificates refuses it. A client that got past the
/// handshake would be served `[]` with 200 for any path, so a TLS test cannot pass by accident
/// on an HTTP-level error.
pub struct TlsServer {
    server: Loopback,
}

impl TlsServer {
    pub fn start() -> TlsServer {
        use tokio_rustls::rustls;
        let certified =
            rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string(), "localhost".into()])
                .expect("self-signed certificate");
        let cert = certified.cert.der().clone();
        let key =
            rustls::pki_types::PrivatePkcs8KeyDer::from(certified.signing_key.serialize_der());
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(vec![cert], key.into())
        .expect("TLS server config");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let server = Loopback::start("test-https", move |stream| {
            let acceptor = acceptor.clone();
            async move {
                // The handshake fails when the client refuses the certificate.
                let Ok(mut tls) = acceptor.accept(stream).await else {
                    return;
                };
                let mut buf = [0u8; 4096];
                let _ = tls.read(&mut buf).await;
                let _ = tls.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n[]").await;
                let _ = tls.shutdown().await;
            }
        });
        TlsServer { server }
    }

    /// `https://127.0.0.1:PORT` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("https://{}{}", self.server.addr(), path)
    }
}

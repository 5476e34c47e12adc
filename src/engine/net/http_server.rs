//! The HTTP/1.1 server and [`Net`], the application's handle on everything network.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body, Incoming};
use hyper::header::{HeaderName, HeaderValue, CONNECTION, CONTENT_LENGTH, SEC_WEBSOCKET_ACCEPT, UPGRADE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::upgrade::OnUpgrade;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::{sleep_until, timeout, timeout_at, Instant};
use tungstenite::handshake::derive_accept_key;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::CloseFrame;
use tungstenite::Message;

use super::events::{BodyStart, EventQueue, IncomingRequest, NetEvent};
use super::idle::{Activity, Tracked, Watched};
use super::limits::ServerLimits;
use super::request_body::{pump, BodyPump};
use super::request_checks::{check, Verdict};
use super::response_body::{streamed, BodyWriter, ResponseBody, WriteOutcome};
use super::link::Link;
use super::runtime::runtime;
use super::sockets::{AutoResponse, Outgoing, SocketError, Sockets};
use super::websocket::{self, HostConnection, HostLoop};

/// Bodies up to this size (with a Content-Length) are read whole before the request is
/// delivered: one event instead of a stream for the common small POST.
const WHOLE_BODY_LIMIT: u64 = 64 * 1024;

/// How long close() lets in-flight requests finish (Cloudflare's grace on shutdown).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// How long the accept loop rests when the process is out of file descriptors: accepting
/// again at once fails again at once (the listener stays readable), which spins a core.
const OUT_OF_DESCRIPTORS_PAUSE: Duration = Duration::from_millis(100);

/// How the application answers a request.
pub enum ResponseStart {
    Whole(Option<Bytes>),
    /// Chunks follow through [`Net::write_body`] and [`Net::end_body`].
    Streamed,
}

#[derive(Debug)]
pub enum NetError {
    /// The request was already answered, or its client left.
    UnknownRequest,
    BadStatus(u16),
    BadHeader(String),
    /// accept_websocket on a request that is not a WebSocket upgrade.
    NotWebSocket,
    /// The socket to adopt is unknown, closed or already on a connection.
    UnknownSocket,
    Io(std::io::Error),
}

impl std::fmt::Display for NetError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NetError::UnknownRequest => write!(f, "This request was already answered or its client went away."),
            NetError::BadStatus(s) => write!(f, "Invalid HTTP status code {s}."),
            NetError::BadHeader(h) => write!(f, "Invalid header {h}."),
            NetError::NotWebSocket => write!(f, "This request is not a WebSocket upgrade: a 101 response cannot answer it."),
            NetError::UnknownSocket => write!(f, "This WebSocket was already used or closed."),
            NetError::Io(e) => write!(f, "{e}"),
        }
    }
}

struct Pending {
    answer: oneshot::Sender<Response<ResponseBody>>,
    upgrade: Option<(OnUpgrade, String)>,
    server: u32,
}

struct Server {
    stop: Option<oneshot::Sender<()>>,
    limits: ServerLimits,
}

pub(crate) struct Inner {
    queue: Arc<EventQueue>,
    host_loop: Arc<HostLoop>,
    sockets: Arc<Sockets>,
    requests: Mutex<HashMap<u32, Pending>>,
    pumps: Mutex<HashMap<u32, Arc<BodyPump>>>,
    writers: Mutex<HashMap<u32, BodyWriter>>,
    servers: Mutex<HashMap<u32, Server>>,
    next_request: AtomicU32,
    next_server: AtomicU32,
}

/// The network of one host thread: its servers, requests and sockets.
#[derive(Clone)]
pub struct Net {
    inner: Arc<Inner>,
}

impl Net {
    /// `wake` runs when events are waiting (see [`EventQueue`]).
    pub fn new(wake: Box<dyn Fn() + Send + Sync>) -> Net {
        Net {
            inner: Arc::new(Inner {
                queue: Arc::new(EventQueue::new(wake)),
                sockets: Arc::new(Sockets::default()),
                host_loop: Arc::default(),
                requests: Mutex::new(HashMap::new()),
                pumps: Mutex::new(HashMap::new()),
                writers: Mutex::new(HashMap::new()),
                servers: Mutex::new(HashMap::new()),
                next_request: AtomicU32::new(0),
                next_server: AtomicU32::new(0),
            }),
        }
    }

    pub fn take_events(&self) -> Vec<NetEvent> {
        self.inner.queue.take()
    }

    /// The host polls sockets itself from now on (see link.rs): new WebSocket connections
    /// wait in [`Net::take_host_connections`], announced by a wake-up.
    pub fn enable_host_loop(&self) {
        self.inner.host_loop.enable();
    }

    pub fn take_host_connections(&self) -> Vec<HostConnection> {
        self.inner.host_loop.take()
    }

    /// See [`EventQueue::hold`].
    pub fn hold_events(&self) {
        self.inner.queue.hold();
    }

    /// See [`EventQueue::release`].
    pub fn release_events(&self) -> bool {
        self.inner.queue.release()
    }

    /// Starts a server on `hostname:port` (port 0: any free port). Returns its id and the
    /// address it listens on.
    pub fn listen(&self, hostname: &str, port: u16, limits: ServerLimits) -> Result<(u32, SocketAddr), NetError> {
        let listener = std::net::TcpListener::bind((hostname, port)).map_err(NetError::Io)?;
        listener.set_nonblocking(true).map_err(NetError::Io)?;
        let address = listener.local_addr().map_err(NetError::Io)?;
        let server = self.inner.next_server.fetch_add(1, Ordering::Relaxed) + 1;
        let (stop, stopped) = oneshot::channel();
        self.inner.servers.lock().unwrap().insert(server, Server { stop: Some(stop), limits });
        let inner = self.inner.clone();
        let rt = runtime();
        let _guard = rt.enter();
        let listener = TcpListener::from_std(listener).map_err(NetError::Io)?;
        rt.spawn(accept_loop(inner, server, listener, stopped, limits));
        Ok((server, address))
    }

    /// Stops accepting, closes the server's WebSockets with 1001 and lets in-flight
    /// requests finish (30 s at most); then [`NetEvent::ServerClosed`] follows.
    pub fn close_server(&self, server: u32) {
        let stop = self.inner.servers.lock().unwrap().get_mut(&server).and_then(|s| s.stop.take());
        if let Some(stop) = stop {
            // Here, on the host thread, where inline connections may be written.
            self.inner.sockets.close_server(server);
            let _ = stop.send(());
        }
    }

    pub fn respond(&self, request: u32, status: u16, headers: Vec<(String, String)>, body: ResponseStart) -> Result<(), NetError> {
        let mut response = Response::new(ResponseBody::empty());
        *response.status_mut() = StatusCode::from_u16(status).ok().filter(|s| *s != StatusCode::SWITCHING_PROTOCOLS).ok_or(NetError::BadStatus(status))?;
        append_headers(response.headers_mut(), headers)?;
        let pending = self.inner.requests.lock().unwrap().remove(&request).ok_or(NetError::UnknownRequest)?;
        *response.body_mut() = match body {
            ResponseStart::Whole(data) => ResponseBody::Full(data.filter(|d| !d.is_empty())),
            ResponseStart::Streamed => {
                let (writer, body) = streamed(request, self.inner.queue.clone());
                self.inner.writers.lock().unwrap().insert(request, writer);
                ResponseBody::Stream(body)
            }
        };
        // The client may have left already: its connection dropped the receiver.
        let _ = pending.answer.send(response);
        Ok(())
    }

    /// Writes a chunk of a streamed response.
    pub fn write_body(&self, request: u32, data: Bytes) -> WriteOutcome {
        match self.inner.writers.lock().unwrap().get(&request) {
            Some(writer) => writer.write(data),
            None => WriteOutcome::Gone,
        }
    }

    pub fn end_body(&self, request: u32, failed: bool) {
        if let Some(writer) = self.inner.writers.lock().unwrap().remove(&request) {
            writer.end(failed);
        }
    }

    /// Lets one more chunk of a streamed request body through.
    pub fn pull_body(&self, request: u32) {
        if let Some(pump) = self.inner.pumps.lock().unwrap().get(&request) {
            pump.pull();
        }
    }

    pub fn cancel_body(&self, request: u32) {
        if let Some(pump) = self.inner.pumps.lock().unwrap().remove(&request) {
            pump.cancel();
        }
    }

    /// Answers a WebSocket upgrade request with 101 and returns the socket's id: `adopt`'s
    /// (a socket the application created earlier, see [`Net::create_socket`]) or a new one.
    pub fn accept_websocket(&self, request: u32, headers: Vec<(String, String)>, adopt: Option<u32>) -> Result<u32, NetError> {
        let mut response = Response::new(ResponseBody::empty());
        append_headers(response.headers_mut(), headers)?;
        let mut requests = self.inner.requests.lock().unwrap();
        if requests.get(&request).ok_or(NetError::UnknownRequest)?.upgrade.is_none() {
            return Err(NetError::NotWebSocket);
        }
        let pending = requests.remove(&request).unwrap();
        drop(requests);
        let (upgrade, key) = pending.upgrade.unwrap();
        *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let h = response.headers_mut();
        h.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
        h.insert(UPGRADE, HeaderValue::from_static("websocket"));
        h.insert(SEC_WEBSOCKET_ACCEPT, HeaderValue::from_str(&derive_accept_key(key.as_bytes())).unwrap());
        let limit = self.inner.servers.lock().unwrap().get(&pending.server).map_or_else(|| ServerLimits::default().websocket_buffer, |s| s.limits.websocket_buffer);
        let link = Arc::new(Link::new(limit));
        let shared = match adopt {
            Some(socket) => self.inner.sockets.attach(socket, pending.server, link.clone()).ok_or(NetError::UnknownSocket)?,
            None => self.inner.sockets.create(pending.server, Some(link.clone())),
        };
        let socket = shared.id;
        let inner = &self.inner;
        runtime().spawn(websocket::serve(upgrade, shared, link, limit, inner.queue.clone(), inner.sockets.clone(), inner.host_loop.clone()));
        let _ = pending.answer.send(response);
        Ok(socket)
    }

    // ---- sockets ---------------------------------------------------------------------

    /// Whether the runtime answers a peer's Close itself (see Sockets).
    pub fn set_close_auto_reply(&self, on: bool) {
        self.inner.sockets.set_close_auto_reply(on)
    }

    /// A socket whose transport the host runs (only its hibernation state lives here).
    pub fn create_socket(&self) -> u32 {
        self.inner.sockets.create(0, None).id
    }

    pub fn send_text(&self, socket: u32, text: String) -> bool {
        self.inner.sockets.send(socket, Outgoing::Message(Message::Text(text.into())))
    }

    pub fn send_binary(&self, socket: u32, data: Bytes) -> bool {
        self.inner.sockets.send(socket, Outgoing::Message(Message::Binary(data)))
    }

    /// Sends a Close frame (None: without a code).
    pub fn close_socket(&self, socket: u32, code: Option<(u16, String)>) -> bool {
        let frame = code.map(|(code, reason)| CloseFrame { code: CloseCode::from(code), reason: reason.into() });
        self.inner.sockets.send(socket, Outgoing::Close(frame))
    }

    /// The application started handling messages of `bytes` from `socket` (or dropped them).
    pub fn delivered(&self, socket: u32, bytes: usize) {
        self.inner.sockets.delivered(socket, bytes)
    }

    pub fn release_socket(&self, socket: u32) {
        self.inner.sockets.release(socket)
    }

    pub fn socket_ended(&self, socket: u32) {
        self.inner.sockets.ended(socket)
    }

    pub fn create_group(&self) -> u32 {
        self.inner.sockets.create_group()
    }

    pub fn release_group(&self, group: u32) -> bool {
        self.inner.sockets.release_group(group)
    }

    pub fn hibernate(&self, socket: u32, group: u32, tags: Vec<String>) -> Result<(), SocketError> {
        self.inner.sockets.hibernate(socket, group, tags)
    }

    pub fn group_sockets(&self, group: u32, tag: Option<&str>) -> Vec<u32> {
        self.inner.sockets.group_sockets(group, tag)
    }

    pub fn group_size(&self, group: u32) -> usize {
        self.inner.sockets.group_size(group)
    }

    pub fn tags(&self, socket: u32) -> Option<Vec<String>> {
        self.inner.sockets.tags(socket)
    }

    pub fn set_attachment(&self, socket: u32, attachment: Option<Vec<u8>>) -> Result<(), SocketError> {
        self.inner.sockets.set_attachment(socket, attachment)
    }

    pub fn attachment(&self, socket: u32) -> Option<Vec<u8>> {
        self.inner.sockets.attachment(socket)
    }

    pub fn set_auto_response(&self, group: u32, pair: Option<AutoResponse>) -> Result<(), SocketError> {
        self.inner.sockets.set_auto_response(group, pair)
    }

    pub fn auto_response(&self, group: u32) -> Option<AutoResponse> {
        self.inner.sockets.auto_response(group)
    }

    pub fn auto_responded_at(&self, socket: u32) -> Option<i64> {
        self.inner.sockets.auto_responded_at(socket)
    }

    pub fn auto_reply(&self, socket: u32, text: &str) -> Option<String> {
        self.inner.sockets.auto_reply(socket, text)
    }
}

fn append_headers(map: &mut hyper::HeaderMap, headers: Vec<(String, String)>) -> Result<(), NetError> {
    for (name, value) in headers {
        let header = HeaderName::from_bytes(name.as_bytes()).map_err(|_| NetError::BadHeader(name.clone()))?;
        // Header values are ByteStrings in the Fetch API: each char is one byte.
        let bytes: Vec<u8> = value.chars().map(|c| c as u32).map(|c| u8::try_from(c).unwrap_or(b'?')).collect();
        let value = HeaderValue::from_bytes(&bytes).map_err(|_| NetError::BadHeader(name))?;
        map.append(header, value);
    }
    Ok(())
}

async fn accept_loop(inner: Arc<Inner>, server: u32, listener: TcpListener, stopped: oneshot::Receiver<()>, limits: ServerLimits) {
    // Connections hold a sender each; when all are dropped, every connection ended.
    let (alive, mut all_ended) = mpsc::channel::<()>(1);
    let (shutdown, shutting_down) = watch::channel(false);
    let mut stopped = pin!(stopped);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) if out_of_descriptors(&e) => {
                        inner.queue.log("accept-descriptors", server, || format!("open-do: cannot accept connections: {e}; retrying every {} ms until descriptors free up.", OUT_OF_DESCRIPTORS_PAUSE.as_millis()));
                        tokio::time::sleep(OUT_OF_DESCRIPTORS_PAUSE).await;
                        continue;
                    }
                    // The client gave up before we took it (ECONNABORTED and the like).
                    Err(_) => continue,
                };
                let _ = stream.set_nodelay(true);
                tokio::spawn(serve_connection(inner.clone(), server, stream, limits, shutting_down.clone(), alive.clone()));
            }
            _ = &mut stopped => break,
        }
    }
    drop(listener);
    drop(alive);
    let _ = shutdown.send(true);
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, all_ended.recv()).await;
    inner.servers.lock().unwrap().remove(&server);
    inner.queue.push(NetEvent::ServerClosed { server });
}

/// Errors of accept() that mean the process (or system) has no descriptor (or buffer) to
/// give the connection: they last until something closes, so retrying at once only spins.
fn out_of_descriptors(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM))
}

/// One HTTP connection, until it ends, is upgraded, is idle past `limits.idle`, or its
/// server shuts down. `_alive` tells the server it still runs.
async fn serve_connection(inner: Arc<Inner>, server: u32, stream: TcpStream, limits: ServerLimits, mut shutting_down: watch::Receiver<bool>, _alive: mpsc::Sender<()>) {
    let activity = Arc::new(Activity::default());
    let io = TokioIo::new(Watched { stream, activity: activity.clone() });
    let service = {
        let activity = activity.clone();
        service_fn(move |request| {
            let inner = inner.clone();
            let in_flight = activity.begin();
            async move {
                let response = dispatch(inner, server, request, limits.request).await;
                Ok::<_, Infallible>(response.map(|body| Tracked { body, _request: in_flight }))
            }
        })
    };
    // hyper's header timer runs from when it starts waiting for a request's head until
    // the head is in: on a new connection and between keep-alive requests alike.
    let connection = http1::Builder::new().timer(TokioTimer::new()).header_read_timeout(limits.headers).serve_connection(io, service).with_upgrades();
    let mut connection = pin!(connection);
    // Checked now and then rather than re-armed per request: a busy connection costs one
    // timer wake-up per idle period, not one per request.
    let mut check_at = Instant::now() + limits.idle;
    loop {
        tokio::select! {
            _ = connection.as_mut() => return,
            _ = sleep_until(check_at) => {
                let now = Instant::now();
                match activity.idle_deadline(limits.idle).map(Instant::from_std) {
                    Some(at) if at <= now => break,
                    Some(at) => check_at = at,
                    // A request in flight or arriving: look again a period later.
                    None => check_at = now + limits.idle,
                }
            }
            _ = shutting_down.changed() => break,
        }
    }
    // Idle, or the server is closing: hyper closes an idle connection at once and lets a
    // request in progress finish first — within the shutdown grace.
    connection.as_mut().graceful_shutdown();
    let _ = timeout(SHUTDOWN_GRACE, connection).await;
}

/// Answers a request whose application side never answered (or failed to).
fn plain(status: StatusCode, text: &'static str) -> Response<ResponseBody> {
    let mut response = Response::new(ResponseBody::Full(Some(Bytes::from_static(text.as_bytes()))));
    *response.status_mut() = status;
    response
}

/// `response`, after which the connection closes (what is left of the request on it
/// cannot be trusted to end where a next request begins).
fn closing(mut response: Response<ResponseBody>) -> Response<ResponseBody> {
    response.headers_mut().insert(CONNECTION, HeaderValue::from_static("close"));
    response
}

/// Forgets a request the client abandoned before it was answered.
struct Unanswered {
    inner: Arc<Inner>,
    request: u32,
    answered: bool,
}

impl Drop for Unanswered {
    fn drop(&mut self) {
        if !self.answered && self.inner.requests.lock().unwrap().remove(&self.request).is_some() {
            self.inner.queue.push(NetEvent::ResponseAborted { request: self.request });
        }
    }
}

/// `receive`: how long the request's body may take to arrive (see [`ServerLimits::request`]).
async fn dispatch(inner: Arc<Inner>, server: u32, mut request: Request<Incoming>, receive: Duration) -> Response<ResponseBody> {
    let deadline = Instant::now() + receive;
    let upgrade = match check(&request) {
        Verdict::Plain => None,
        Verdict::WebSocket(key) => Some((hyper::upgrade::on(&mut request), key)),
        Verdict::Refuse(response) => return response,
    };
    let id = inner.next_request.fetch_add(1, Ordering::Relaxed) + 1;
    let (parts, body) = request.into_parts();
    let length = parts.headers.get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    let start = if body.is_end_stream() {
        BodyStart::Empty
    } else if length.is_some_and(|l| l <= WHOLE_BODY_LIMIT) {
        match timeout_at(deadline, body.collect()).await {
            Ok(Ok(collected)) => BodyStart::Full(collected.to_bytes()),
            Ok(Err(_)) => return closing(plain(StatusCode::BAD_REQUEST, "The request body could not be read.")),
            Err(_) => return closing(plain(StatusCode::REQUEST_TIMEOUT, "The request body did not arrive in time.")),
        }
    } else {
        let done = {
            let inner = inner.clone();
            move || {
                inner.pumps.lock().unwrap().remove(&id);
            }
        };
        let pump = pump(id, body, deadline.into_std(), inner.queue.clone(), done);
        inner.pumps.lock().unwrap().insert(id, pump);
        BodyStart::Stream
    };
    let headers = parts
        .headers
        .iter()
        .map(|(name, value)| (name.as_str().to_owned(), value.as_bytes().iter().map(|&b| b as char).collect()))
        .collect();
    let (answer, answered) = oneshot::channel();
    let websocket = upgrade.is_some();
    inner.requests.lock().unwrap().insert(id, Pending { answer, upgrade, server });
    let mut guard = Unanswered { inner: inner.clone(), request: id, answered: false };
    inner.queue.push(NetEvent::Request(IncomingRequest {
        server,
        request: id,
        method: parts.method.as_str().to_owned(),
        target: parts.uri.to_string(),
        headers,
        body: start,
        websocket,
    }));
    let response = answered.await;
    guard.answered = true;
    response.unwrap_or_else(|_| plain(StatusCode::INTERNAL_SERVER_ERROR, "The application did not answer."))
}

//! The network (engine::net) for lib/server.ts and lib/websocket.ts. Events come back in
//! batches: a weak threadsafe function says "events are waiting" and `netTakeEvents`
//! hands over everything queued, one small array per event (see lib/net-events.ts for
//! their shapes). Sockets, requests, servers and groups are plain integer ids.

use std::cell::RefCell;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use napi::bindgen_prelude::{Array, ArrayBuffer, Buffer, Function, Null};
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::{Env, Error, JsValue, Status};
use napi_derive::napi;

use super::host_loop;
use crate::engine::net::{AutoResponse, BodyStart, Net, NetError, NetEvent, Payload, ResponseStart, ServerLimits, SocketError, WriteOutcome, MAX_HIBERNATABLE_SOCKETS};

type Wake = ThreadsafeFunction<(), (), (), Status, false, true>;

thread_local! {
    /// Created on first use (sockets work without a server); `netInit` supplies the wake-up.
    static NET: RefCell<Option<(Net, Arc<OnceLock<Wake>>)>> = const { RefCell::new(None) };
}

fn with_net<T>(f: impl FnOnce(&Net, &Arc<OnceLock<Wake>>) -> T) -> T {
    NET.with_borrow_mut(|slot| {
        let (net, wake) = slot.get_or_insert_with(|| {
            let wake: Arc<OnceLock<Wake>> = Arc::new(OnceLock::new());
            let waker = wake.clone();
            let net = Net::new(Box::new(move || {
                if let Some(w) = waker.get() {
                    w.call((), ThreadsafeFunctionCallMode::NonBlocking);
                }
            }));
            (net, wake)
        });
        f(net, wake)
    })
}

/// This thread's network (created on first use, so this cannot fail).
fn net() -> Net {
    with_net(|net, _| net.clone())
}

fn throw(e: NetError) -> Error {
    let status = match e {
        NetError::Io(_) => Status::GenericFailure,
        _ => Status::InvalidArg,
    };
    Error::new(status, e.to_string())
}

fn pairs(flat: Vec<String>) -> Vec<(String, String)> {
    let mut pairs = Vec::with_capacity(flat.len() / 2);
    let mut items = flat.into_iter();
    while let (Some(name), Some(value)) = (items.next(), items.next()) {
        pairs.push((name, value));
    }
    pairs
}

/// Sets up the network of this thread: `wake()` runs when events are waiting. With
/// `message` and `event` (Node), this thread's event loop polls WebSocket connections
/// itself and hands their events over from there (see host_loop.rs): messages to
/// `message(socket, group, data, size)`, anything else to `event(e)` (e shaped as netTakeEvents
/// gives it). Returns whether it does.
#[napi(ts_args_type = "wake: () => void, message: ((socket: number, group: number, data: string | ArrayBuffer, size: number) => void) | null, event: ((e: unknown[]) => void) | null")]
pub fn net_init(env: &Env, wake: Function<(), ()>, message: Option<Function<(), ()>>, event: Option<Function<(), ()>>) -> napi::Result<bool> {
    let callback = wake.build_threadsafe_function().callee_handled::<false>().weak::<true>().build()?;
    with_net(|_, slot| {
        let _ = slot.set(callback);
    });
    let (Some(message), Some(event)) = (message, event) else { return Ok(false) };
    // SAFETY: this thread's environment and function values of it.
    Ok(unsafe { host_loop::install(env.raw(), message.raw(), event.raw(), &net()) })
}

/// Every waiting event, oldest first. Shapes (first element is the kind):
/// 0 request [0, server, request, method, target, headers (flat), body, websocket] where
///   body is null (none), a Buffer (whole) or true (streamed);
/// 1 body chunk [1, request, Buffer]; 2 body end [2, request]; 3 body error [3, request, message, late];
/// 4 response drained [4, request]; 5 response aborted [5, request];
/// 6 socket message [6, socket, group, string | ArrayBuffer, size] (size: its bytes, to
///   hand back to netDelivered once its handler starts);
/// 7 socket closed [7, socket, group, code, reason, clean]; 8 socket error [8, socket, group, message];
/// 9 server closed [9, server]; 10 log line [10, line].
#[napi(ts_return_type = "unknown[][]")]
pub fn net_take_events(env: &Env) -> napi::Result<Array<'_>> {
    let net = net();
    let connections = net.take_host_connections();
    if !connections.is_empty() {
        // Their first reads may queue events: taken below, no wake-up needed.
        net.hold_events();
        host_loop::adopt(connections);
        net.release_events();
    }
    let events = net.take_events();
    let mut list = env.create_array(events.len() as u32)?;
    for (i, event) in events.into_iter().enumerate() {
        list.set(i as u32, event_value(env, event)?)?;
    }
    Ok(list)
}

/// One event as JS sees it (shapes: see [`net_take_events`]).
pub(crate) fn event_value(env: &Env, event: NetEvent) -> napi::Result<Array<'_>> {
    let mut item;
    match event {
        NetEvent::Request(r) => {
            item = env.create_array(8)?;
            item.set(0, 0)?;
            item.set(1, r.server)?;
            item.set(2, r.request)?;
            item.set(3, r.method)?;
            item.set(4, r.target)?;
            let mut headers = env.create_array((r.headers.len() * 2) as u32)?;
            for (j, (name, value)) in r.headers.into_iter().enumerate() {
                headers.set((j * 2) as u32, name)?;
                headers.set((j * 2 + 1) as u32, value)?;
            }
            item.set(5, headers)?;
            match r.body {
                BodyStart::Empty => item.set(6, Null)?,
                BodyStart::Full(data) => item.set(6, Buffer::from(data.to_vec()))?,
                BodyStart::Stream => item.set(6, true)?,
            }
            item.set(7, r.websocket)?;
        }
        NetEvent::BodyChunk { request, data } => {
            item = env.create_array(3)?;
            item.set(0, 1)?;
            item.set(1, request)?;
            item.set(2, Buffer::from(data.to_vec()))?;
        }
        NetEvent::BodyEnd { request } => item = pair(env, 2, request)?,
        NetEvent::BodyError { request, message, late } => {
            item = pair(env, 3, request)?;
            item.set(2, message)?;
            item.set(3, late)?;
        }
        NetEvent::ResponseDrained { request } => item = pair(env, 4, request)?,
        NetEvent::ResponseAborted { request } => item = pair(env, 5, request)?,
        NetEvent::SocketMessage { socket, group, data } => {
            item = pair(env, 6, socket)?;
            item.set(2, group)?;
            let size = data.len() as u32;
            match data {
                Payload::Text(text) => item.set(3, text)?,
                Payload::Binary(data) => item.set(3, ArrayBuffer::from_data(env, data.to_vec())?)?,
            }
            item.set(4, size)?;
        }
        NetEvent::SocketClosed { socket, group, code, reason, clean } => {
            item = pair(env, 7, socket)?;
            item.set(2, group)?;
            item.set(3, code as u32)?;
            item.set(4, reason)?;
            item.set(5, clean)?;
        }
        NetEvent::SocketError { socket, group, message } => {
            item = pair(env, 8, socket)?;
            item.set(2, group)?;
            item.set(3, message)?;
        }
        NetEvent::ServerClosed { server } => item = pair(env, 9, server)?,
        NetEvent::Log { line } => {
            item = env.create_array(2)?;
            item.set(0, 10)?;
            item.set(1, line)?;
        }
    }
    Ok(item)
}


fn pair(env: &Env, kind: u32, id: u32) -> napi::Result<Array<'_>> {
    let mut item = env.create_array(2)?;
    item.set(0, kind)?;
    item.set(1, id)?;
    Ok(item)
}

/// A server's timeouts (ms) and WebSocket buffer bound (bytes); unset ones take the
/// defaults of engine::net::ServerLimits. lib/server.ts checks them.
#[napi(object)]
pub struct NetLimits {
    pub headers_ms: Option<u32>,
    pub idle_ms: Option<u32>,
    pub request_ms: Option<u32>,
    pub web_socket_buffer_bytes: Option<u32>,
}

/// Starts a server; returns [server id, bound address, bound port].
#[napi(ts_return_type = "[number, string, number]")]
pub fn net_listen(env: &Env, hostname: String, port: u32, limits: Option<NetLimits>) -> napi::Result<Array<'_>> {
    let port = u16::try_from(port).map_err(|_| Error::new(Status::InvalidArg, format!("Invalid port {port}.")))?;
    let mut chosen = ServerLimits::default();
    if let Some(limits) = limits {
        let ms = |v: Option<u32>, default: Duration| v.map_or(default, |ms| Duration::from_millis(ms.into()));
        chosen.headers = ms(limits.headers_ms, chosen.headers);
        chosen.idle = ms(limits.idle_ms, chosen.idle);
        chosen.request = ms(limits.request_ms, chosen.request);
        chosen.websocket_buffer = limits.web_socket_buffer_bytes.map_or(chosen.websocket_buffer, |b| b as usize);
    }
    let (server, address) = net().listen(&hostname, port, chosen).map_err(throw)?;
    let mut result = env.create_array(3)?;
    result.set(0, server)?;
    result.set(1, address.ip().to_string())?;
    result.set(2, address.port() as u32)?;
    Ok(result)
}

#[napi]
pub fn net_close_server(server: u32) -> napi::Result<()> {
    net().close_server(server);
    Ok(())
}

/// Answers a request: `body` whole (or null), or `streamed` (chunks follow). False when
/// the client went away before the answer.
#[napi]
pub fn net_respond(request: u32, status: u32, headers: Vec<String>, body: Option<&[u8]>, streamed: bool) -> napi::Result<bool> {
    let start = if streamed { ResponseStart::Streamed } else { ResponseStart::Whole(body.map(Bytes::copy_from_slice)) };
    match net().respond(request, status.min(u16::MAX as u32) as u16, pairs(headers), start) {
        Ok(()) => Ok(true),
        Err(NetError::UnknownRequest) => Ok(false),
        Err(e) => Err(throw(e)),
    }
}

/// 0: written, room for more; 1: written, wait for "drained"; 2: the client is gone.
#[napi]
pub fn net_write_body(request: u32, chunk: &[u8]) -> napi::Result<u32> {
    Ok(match net().write_body(request, Bytes::copy_from_slice(chunk)) {
        WriteOutcome::Room => 0,
        WriteOutcome::Full => 1,
        WriteOutcome::Gone => 2,
    })
}

#[napi]
pub fn net_end_body(request: u32, failed: bool) -> napi::Result<()> {
    net().end_body(request, failed);
    Ok(())
}

#[napi]
pub fn net_pull_body(request: u32) -> napi::Result<()> {
    net().pull_body(request);
    Ok(())
}

#[napi]
pub fn net_cancel_body(request: u32) -> napi::Result<()> {
    net().cancel_body(request);
    Ok(())
}

/// Answers a WebSocket upgrade with 101; returns the socket's id.
#[napi]
pub fn net_accept_web_socket(request: u32, headers: Vec<String>, adopt: Option<u32>) -> napi::Result<u32> {
    net().accept_websocket(request, pairs(headers), adopt).map_err(throw)
}

/// A socket whose transport lives in JS (hibernation bookkeeping only).
#[napi]
pub fn net_create_socket() -> napi::Result<u32> {
    Ok(net().create_socket())
}

#[napi]
pub fn net_send_text(socket: u32, text: String) -> napi::Result<bool> {
    Ok(net().send_text(socket, text))
}

#[napi]
pub fn net_send_binary(socket: u32, data: &[u8]) -> napi::Result<bool> {
    Ok(net().send_binary(socket, Bytes::copy_from_slice(data)))
}

/// Sends a Close frame; without `code`, one that carries no code.
#[napi]
pub fn net_close_socket(socket: u32, code: Option<u32>, reason: Option<String>) -> napi::Result<bool> {
    let code = code.map(|c| (c as u16, reason.unwrap_or_default()));
    Ok(net().close_socket(socket, code))
}

#[napi]
pub fn net_socket_ended(socket: u32) -> napi::Result<()> {
    net().socket_ended(socket);
    Ok(())
}

/// The application started handling `bytes` of the socket's messages (the size each
/// message event carries), or dropped them: the peer may be read again (see
/// PAUSE_RECEIVING_ABOVE in src/engine/net/sockets.rs).
#[napi]
pub fn net_delivered(socket: u32, bytes: u32) -> napi::Result<()> {
    net().delivered(socket, bytes as usize);
    Ok(())
}

#[napi]
pub fn net_release_socket(socket: u32) -> napi::Result<()> {
    net().release_socket(socket);
    Ok(())
}

#[napi]
pub fn net_create_group() -> napi::Result<u32> {
    Ok(net().create_group())
}

#[napi]
pub fn net_release_group(group: u32) -> napi::Result<bool> {
    Ok(net().release_group(group))
}

#[napi]
pub fn net_hibernate(socket: u32, group: u32, tags: Vec<String>) -> napi::Result<()> {
    net().hibernate(socket, group, tags).map_err(|e| match e {
        SocketError::TooMany => Error::new(
            Status::GenericFailure,
            format!("A Durable Object can hold at most {MAX_HIBERNATABLE_SOCKETS} hibernatable WebSockets."),
        ),
        SocketError::Unknown => Error::new(Status::InvalidArg, "This WebSocket is no longer known to the runtime."),
    })
}

#[napi]
pub fn net_group_sockets(group: u32, tag: Option<String>) -> napi::Result<Vec<u32>> {
    Ok(net().group_sockets(group, tag.as_deref()))
}

#[napi]
pub fn net_group_size(group: u32) -> napi::Result<u32> {
    Ok(net().group_size(group) as u32)
}

#[napi]
pub fn net_tags(socket: u32) -> napi::Result<Option<Vec<String>>> {
    Ok(net().tags(socket))
}

#[napi]
pub fn net_set_attachment(socket: u32, attachment: Option<&[u8]>) -> napi::Result<()> {
    net()
        .set_attachment(socket, attachment.map(<[u8]>::to_vec))
        .map_err(|_| Error::new(Status::InvalidArg, "This WebSocket is no longer known to the runtime."))
}

#[napi]
pub fn net_attachment(socket: u32) -> napi::Result<Option<Buffer>> {
    Ok(net().attachment(socket).map(Buffer::from))
}

#[napi]
pub fn net_set_auto_response(group: u32, request: Option<String>, response: Option<String>) -> napi::Result<()> {
    let pair = request.zip(response).map(|(request, response)| AutoResponse { request, response });
    net().set_auto_response(group, pair).map_err(|_| Error::new(Status::InvalidArg, "Unknown WebSocket group."))
}

#[napi]
pub fn net_auto_response(group: u32) -> napi::Result<Option<Vec<String>>> {
    Ok(net().auto_response(group).map(|p| vec![p.request, p.response]))
}

#[napi]
pub fn net_auto_responded_at(socket: u32) -> napi::Result<Option<f64>> {
    Ok(net().auto_responded_at(socket).map(|t| t as f64))
}

#[napi]
pub fn net_auto_reply(socket: u32, text: String) -> napi::Result<Option<String>> {
    Ok(net().auto_reply(socket, &text))
}

/// Whether the runtime answers a peer's Close itself (compat flag web_socket_auto_reply_to_close).
#[napi]
pub fn net_set_close_auto_reply(on: bool) -> napi::Result<()> {
    net().set_close_auto_reply(on);
    Ok(())
}

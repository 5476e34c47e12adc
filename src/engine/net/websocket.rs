//! One WebSocket connection of our server: frames in, frames out, and the answers the
//! runtime gives by itself — protocol pongs, the reply to a Close, and the object's
//! auto-response — none of which wakes the application.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use bytes::Bytes;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::error::{CapacityError, Error as WsError};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::events::{EventQueue, NetEvent, Payload};
use super::outbox::Outbox;
use super::sockets::{Outgoing, SocketShared, Sockets};

/// Cloudflare's limit on a received message.
pub const MAX_MESSAGE_SIZE: usize = 32 << 20;

/// How long a peer's Close waits for the application's answer (without auto-reply).
const CLOSE_ANSWER_WAIT: Duration = Duration::from_secs(30);

/// Cloudflare's words when a peer vanishes without a Close frame.
pub const DISCONNECTED: &str = "WebSocket disconnected without sending Close frame.";

/// Reads and discards until the peer closes, goes quiet for a moment, or 5 s have passed.
async fn drain<S: AsyncRead + Unpin>(io: &mut S) {
    let mut buffer = vec![0u8; 64 * 1024];
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while let Ok(Ok(n)) = tokio::time::timeout(Duration::from_millis(250), io.read(&mut buffer)).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
}

fn config() -> WebSocketConfig {
    // Small read buffers: thousands of idle sockets should cost little (tungstenite
    // allocates the read buffer eagerly). Writes go out at once: a message is sent when
    // the application sends it, as on Cloudflare.
    WebSocketConfig::default()
        .read_buffer_size(512)
        .write_buffer_size(0)
        .max_message_size(Some(MAX_MESSAGE_SIZE))
        .max_frame_size(Some(MAX_MESSAGE_SIZE))
}

pub(crate) async fn serve(upgrade: OnUpgrade, shared: Arc<SocketShared>, outbox: Arc<Outbox>, queue: Arc<EventQueue>, sockets: Arc<Sockets>) {
    let upgraded = match upgrade.await {
        Ok(upgraded) => upgraded,
        Err(_) => {
            sockets.ended(shared.id);
            queue.push(NetEvent::SocketClosed { socket: shared.id, group: shared.group_id(), code: 1006, reason: DISCONNECTED.into(), clean: false });
            return;
        }
    };
    // Our own connections are plain TCP: unwrap them, so that hyper's read buffer (kept
    // alive by the bytes it read ahead) is freed; an idle socket then holds little.
    match upgraded.downcast::<TokioIo<TcpStream>>() {
        Ok(parts) => {
            let hyper::upgrade::Parts { io, read_buf, .. } = parts;
            let stream = io.into_inner();
            if read_buf.is_empty() {
                // Dropped before the connection runs: it holds all of hyper's read buffer.
                drop(read_buf);
                let stream = WebSocketStream::from_raw_socket(stream, Role::Server, Some(config())).await;
                run(stream, shared, outbox, queue, sockets).await
            } else {
                // The client sent frames right behind its handshake: read those first.
                let io = Prefixed { first: Bytes::copy_from_slice(&read_buf), io: stream };
                drop(read_buf);
                let stream = WebSocketStream::from_raw_socket(io, Role::Server, Some(config())).await;
                run(stream, shared, outbox, queue, sockets).await
            }
        }
        Err(upgraded) => {
            let stream = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config())).await;
            run(stream, shared, outbox, queue, sockets).await
        }
    }
}

/// A stream that yields `first` before reading from `io`.
struct Prefixed<S> {
    first: Bytes,
    io: S,
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        if !self.first.is_empty() {
            let n = self.first.len().min(buf.remaining());
            let chunk = self.first.split_to(n);
            buf.put_slice(&chunk);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Prefixed<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, data)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

async fn run<S: AsyncRead + AsyncWrite + Unpin>(stream: WebSocketStream<S>, shared: Arc<SocketShared>, outbox: Arc<Outbox>, queue: Arc<EventQueue>, sockets: Arc<Sockets>) {
    let socket = shared.id;
    let closed = |code: u16, reason: String, clean: bool| NetEvent::SocketClosed { socket, group: shared.group_id(), code, reason, clean };
    let (mut sink, mut incoming) = stream.split();
    let mut reported_close = false;
    loop {
        tokio::select! {
            command = outbox.recv() => match command {
                Some(Outgoing::Message(message)) => {
                    // A failed write shows up as the read side ending.
                    let _ = sink.send(message).await;
                }
                Some(Outgoing::Close(frame)) => {
                    // The peer's echo arrives as a Close frame below.
                    let _ = sink.send(Message::Close(frame)).await;
                }
                None => break, // released by the application
            },
            frame = incoming.next() => match frame {
                Some(Ok(Message::Text(text))) => {
                    if let Some(reply) = shared.auto_reply(&text) {
                        let _ = sink.send(Message::Text(reply.into())).await;
                    } else {
                        queue.push(NetEvent::SocketMessage { socket, group: shared.group_id(), data: Payload::Text(text.as_str().to_owned()) });
                    }
                }
                Some(Ok(Message::Binary(data))) => {
                    queue.push(NetEvent::SocketMessage { socket, group: shared.group_id(), data: Payload::Binary(data) });
                }
                Some(Ok(Message::Close(frame))) => {
                    let (code, reason) = match frame {
                        Some(f) => (u16::from(f.code), f.reason.as_str().to_owned()),
                        None => (1005, String::new()),
                    };
                    if reported_close || sockets.close_auto_reply() {
                        // tungstenite queues the answering Close itself; send it now.
                        let _ = sink.flush().await;
                        if !reported_close {
                            reported_close = true;
                            sockets.ended(socket);
                            queue.push(closed(code, reason, true));
                        }
                        continue;
                    }
                    // Before compat date 2026-04-07 the application answers (ws.close() in
                    // webSocketClose): tungstenite's queued answer goes out only when it
                    // does, and a peer nobody answers gives up on its own.
                    reported_close = true;
                    queue.push(closed(code, reason, true));
                    let answered = tokio::time::timeout(CLOSE_ANSWER_WAIT, async {
                        while let Some(command) = outbox.recv().await {
                            if matches!(command, Outgoing::Close(_)) {
                                return true;
                            }
                        }
                        false
                    })
                    .await
                    .unwrap_or(false);
                    if answered {
                        let _ = sink.flush().await;
                    }
                    sockets.ended(socket);
                    break;
                }
                Some(Ok(_)) => {
                    // Ping: the pong is queued by tungstenite; send it now.
                    let _ = sink.flush().await;
                }
                Some(Err(WsError::Capacity(CapacityError::MessageTooLong { size, max_size }))) => {
                    let message = format!("WebSocket message of {size} bytes is larger than the limit of {max_size} bytes.");
                    let frame = CloseFrame { code: CloseCode::Size, reason: "Message too big".into() };
                    let _ = sink.send(Message::Close(Some(frame))).await;
                    if !reported_close {
                        reported_close = true;
                        sockets.ended(socket);
                        queue.push(NetEvent::SocketError { socket, group: shared.group_id(), message });
                    }
                    // The peer is still sending the oversized message. Cutting the
                    // connection now would make its kernel discard our Close (the peer
                    // would see 1006): read and drop what it sends until it goes quiet.
                    if let Ok(mut stream) = sink.reunite(incoming) {
                        drain(stream.get_mut()).await;
                    }
                    break;
                }
                Some(Err(_)) | None => break,
            },
        }
    }
    if !reported_close {
        sockets.ended(socket);
        queue.push(closed(1006, DISCONNECTED.into(), false));
    }
}

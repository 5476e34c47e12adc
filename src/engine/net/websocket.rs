//! A WebSocket connection's start: the upgraded TCP stream becomes a [`Connection`] and
//! goes to its driver — the host's event loop when the host offers one (see link.rs),
//! otherwise a task on the network runtime.

use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

use super::connection::{Connection, DISCONNECTED};
use super::events::{EventQueue, NetEvent};
use super::idle::Watched;
use super::link::{drive, Link};
use super::runtime::runtime;
use super::sockets::{SocketShared, Sockets};

/// Connections waiting for the host thread to poll them.
#[derive(Default)]
pub(crate) struct HostLoop {
    enabled: AtomicBool,
    waiting: Mutex<Vec<HostConnection>>,
}

impl HostLoop {
    pub fn enable(&self) {
        self.enabled.store(true, Ordering::Relaxed);
    }

    pub fn take(&self) -> Vec<HostConnection> {
        std::mem::take(&mut *self.waiting.lock().unwrap())
    }
}

/// A connection for the host's loop to drive: poll [`HostConnection::fd`], then
/// [`HostConnection::start`].
pub struct HostConnection {
    link: Arc<Link>,
    connection: Connection,
}

impl HostConnection {
    pub fn fd(&self) -> RawFd {
        self.connection.as_raw_fd()
    }

    /// Starts driving from the host thread (reading what already arrived). `stop` ends the
    /// host's polling: it runs on the host thread, once, when the connection ends or moves
    /// to the network runtime — possibly before this returns.
    pub fn start(self, stop: Box<dyn FnOnce() + Send>) -> HostSocket {
        self.link.drive_inline(self.connection, stop);
        HostSocket(self.link)
    }

    /// The host cannot poll it after all: the network runtime drives it.
    pub fn drive_on_runtime(self) {
        runtime().spawn(drive(self.connection, self.link));
    }
}

/// The host's handle on a connection it polls.
#[derive(Clone)]
pub struct HostSocket(Arc<Link>);

impl HostSocket {
    /// The socket is readable (or failed): reads, answers what the runtime answers itself,
    /// and queues the rest as events.
    pub fn readable(&self) {
        self.0.readable();
    }
}

/// `limit`: what may wait to go out to the peer (see connection.rs).
pub(crate) async fn serve(upgrade: OnUpgrade, shared: Arc<SocketShared>, link: Arc<Link>, limit: usize, queue: Arc<EventQueue>, sockets: Arc<Sockets>, host: Arc<HostLoop>) {
    // Our connections are plain TCP: unwrap them, so that hyper's read buffer is freed
    // (an idle socket then holds little) and the socket can be polled by the host.
    let stream = match upgrade.await.map(|upgraded| upgraded.downcast::<TokioIo<Watched>>()) {
        Ok(Ok(parts)) => {
            let read_ahead = parts.read_buf.to_vec();
            parts.io.into_inner().stream.into_std().map(|stream| (stream, read_ahead))
        }
        _ => Err(std::io::ErrorKind::Unsupported.into()),
    };
    let Ok((stream, read_ahead)) = stream else {
        sockets.ended(shared.id);
        queue.push(NetEvent::SocketClosed { socket: shared.id, group: shared.group_id(), code: 1006, reason: DISCONNECTED.into(), clean: false });
        return;
    };
    let connection = Connection::new(stream, read_ahead, shared, queue.clone(), sockets, limit);
    if host.enabled.load(Ordering::Relaxed) {
        host.waiting.lock().unwrap().push(HostConnection { link, connection });
        queue.wake_host();
    } else {
        drive(connection, link).await;
    }
}

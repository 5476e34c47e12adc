//! Every WebSocket the application holds a server end of, and what hibernation keeps of
//! it: the hibernation group (one per object), its tags, its attachment and when it was
//! last auto-answered. Keeping these here rather than in JS objects is what lets an object
//! with thousands of idle sockets leave the JS heap entirely.
//!
//! A socket's transport is either a connection of our own server (messages go out through
//! its task) or something the host runs itself (an in-process WebSocketPair, a socket of
//! another server): then only the bookkeeping lives here.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::CloseFrame;
use tungstenite::Message;

use super::link::Link;

/// Cloudflare's limit of hibernatable sockets per object.
pub const MAX_HIBERNATABLE_SOCKETS: usize = 32_768;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AutoResponse {
    pub request: String,
    pub response: String,
}

#[derive(Debug, PartialEq, Eq)]
pub enum SocketError {
    /// The socket id is not (or no longer) known.
    Unknown,
    /// The group already holds [`MAX_HIBERNATABLE_SOCKETS`].
    TooMany,
}

/// What a socket task is told to send.
pub(crate) enum Outgoing {
    Message(Message),
    Close(Option<CloseFrame>),
}

/// The part of a socket its connection task reads without the table's lock.
pub(crate) struct SocketShared {
    pub id: u32,
    /// The server whose connection carries the socket (0: a host transport).
    server: AtomicU32,
    group: RwLock<Option<Arc<Group>>>,
    auto_responded_at: AtomicI64,
    /// Bytes of the peer's messages handed to the application whose handlers have not
    /// started yet (see [`PAUSE_RECEIVING_ABOVE`]).
    undelivered: AtomicUsize,
}

/// While more than this of a peer's messages waits for the application (queued for the JS
/// thread, or in the object's mailbox behind a closed input gate), the peer is not read:
/// TCP paces it instead of our queues growing. One message of any size (up to the 32 MiB
/// a peer may send) always goes through, so the most a socket holds is this plus one
/// message. Cloudflare documents no such limit; its bound is the isolate's memory.
pub const PAUSE_RECEIVING_ABOVE: usize = 1 << 20;

impl SocketShared {
    /// The server whose connection carries the socket (0: a host transport).
    pub fn server(&self) -> u32 {
        self.server.load(Ordering::Relaxed)
    }

    pub fn group_id(&self) -> u32 {
        self.group.read().unwrap().as_ref().map_or(0, |g| g.id)
    }

    /// The auto-response for `text`, if the socket's group has one that matches; the
    /// socket's timestamp is stamped when it does.
    pub fn auto_reply(&self, text: &str) -> Option<String> {
        let group = self.group.read().unwrap();
        let pair = group.as_ref()?.auto_response.read().unwrap();
        let pair = pair.as_ref().filter(|p| p.request == text)?;
        self.auto_responded_at.store(now_ms(), Ordering::Relaxed);
        Some(pair.response.clone())
    }

    /// A message of `bytes` went to the application.
    pub fn received(&self, bytes: usize) {
        self.undelivered.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Too much of the peer's waits for the application to read more of it.
    pub fn receiving_paused(&self) -> bool {
        self.undelivered.load(Ordering::Relaxed) > PAUSE_RECEIVING_ABOVE
    }

    /// The application started handling (or dropped) messages of `bytes`. True when that
    /// ends a pause.
    fn delivered(&self, bytes: usize) -> bool {
        let before = self.undelivered.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| Some(n.saturating_sub(bytes))).unwrap_or(0);
        before > PAUSE_RECEIVING_ABOVE && before.saturating_sub(bytes) <= PAUSE_RECEIVING_ABOVE
    }
}

/// The sockets of one object, and its auto-response.
pub(crate) struct Group {
    id: u32,
    auto_response: RwLock<Option<AutoResponse>>,
}

struct Slot {
    shared: Arc<SocketShared>,
    /// Our own connection's task; None for host transports and once the connection ended.
    out: Option<Arc<Link>>,
    tags: Vec<String>,
    attachment: Option<Vec<u8>>,
    /// The connection has not ended (a Close frame from the peer or a disconnect).
    open: bool,
}

struct GroupSlot {
    group: Arc<Group>,
    /// Open hibernatable sockets, in the order they were created.
    members: BTreeSet<u32>,
}

#[derive(Default)]
struct Table {
    sockets: HashMap<u32, Slot>,
    groups: HashMap<u32, GroupSlot>,
}

pub(crate) struct Sockets {
    table: Mutex<Table>,
    next_socket: AtomicU32,
    next_group: AtomicU32,
    /// The runtime answers a peer's Close itself (compat flag web_socket_auto_reply_to_close,
    /// 2026-04-07); otherwise the application's close() does.
    close_auto_reply: AtomicBool,
}

impl Default for Sockets {
    fn default() -> Self {
        Sockets { table: Mutex::default(), next_socket: AtomicU32::new(0), next_group: AtomicU32::new(0), close_auto_reply: AtomicBool::new(true) }
    }
}

impl Sockets {
    /// A new socket (ids start at 1). `out` is its connection's task, if it is ours.
    pub fn create(&self, server: u32, out: Option<Arc<Link>>) -> Arc<SocketShared> {
        let id = self.next_socket.fetch_add(1, Ordering::Relaxed) + 1;
        let shared = Arc::new(SocketShared { id, server: AtomicU32::new(server), group: RwLock::new(None), auto_responded_at: AtomicI64::new(0), undelivered: AtomicUsize::new(0) });
        let slot = Slot { shared: shared.clone(), out, tags: Vec::new(), attachment: None, open: true };
        self.table.lock().unwrap().sockets.insert(id, slot);
        shared
    }

    /// Puts an existing socket (created for a host transport) on a connection of ours:
    /// what the application already did with it (hibernation, tags) carries over.
    pub fn attach(&self, socket: u32, server: u32, out: Arc<Link>) -> Option<Arc<SocketShared>> {
        let mut table = self.table.lock().unwrap();
        let slot = table.sockets.get_mut(&socket).filter(|s| s.open && s.out.is_none())?;
        slot.shared.server.store(server, Ordering::Relaxed);
        slot.out = Some(out);
        Some(slot.shared.clone())
    }

    pub fn set_close_auto_reply(&self, on: bool) {
        self.close_auto_reply.store(on, Ordering::Relaxed);
    }

    pub fn close_auto_reply(&self) -> bool {
        self.close_auto_reply.load(Ordering::Relaxed)
    }

    pub fn create_group(&self) -> u32 {
        let id = self.next_group.fetch_add(1, Ordering::Relaxed) + 1;
        let group = Arc::new(Group { id, auto_response: RwLock::new(None) });
        self.table.lock().unwrap().groups.insert(id, GroupSlot { group, members: BTreeSet::new() });
        id
    }

    /// Forgets a group that has no open sockets left. Returns false (keeping it) otherwise.
    pub fn release_group(&self, group: u32) -> bool {
        let mut table = self.table.lock().unwrap();
        match table.groups.get(&group) {
            Some(slot) if slot.members.is_empty() => {
                table.groups.remove(&group);
                true
            }
            Some(_) => false,
            None => true,
        }
    }

    /// Makes `socket` hibernatable in `group` with `tags` (validated by the caller).
    pub fn hibernate(&self, socket: u32, group: u32, tags: Vec<String>) -> Result<(), SocketError> {
        let mut table = self.table.lock().unwrap();
        let Table { sockets, groups } = &mut *table;
        let slot = sockets.get_mut(&socket).ok_or(SocketError::Unknown)?;
        let group_slot = groups.get_mut(&group).ok_or(SocketError::Unknown)?;
        if group_slot.members.len() >= MAX_HIBERNATABLE_SOCKETS {
            return Err(SocketError::TooMany);
        }
        slot.tags = tags;
        *slot.shared.group.write().unwrap() = Some(group_slot.group.clone());
        if slot.open {
            group_slot.members.insert(socket);
        }
        Ok(())
    }

    /// The group's open sockets, or those carrying `tag`.
    pub fn group_sockets(&self, group: u32, tag: Option<&str>) -> Vec<u32> {
        let table = self.table.lock().unwrap();
        let Some(slot) = table.groups.get(&group) else { return Vec::new() };
        match tag {
            None => slot.members.iter().copied().collect(),
            Some(tag) => slot
                .members
                .iter()
                .copied()
                .filter(|s| table.sockets.get(s).is_some_and(|s| s.tags.iter().any(|t| t == tag)))
                .collect(),
        }
    }

    /// Hibernatable sockets in the group (open ones).
    pub fn group_size(&self, group: u32) -> usize {
        self.table.lock().unwrap().groups.get(&group).map_or(0, |g| g.members.len())
    }

    /// The socket's tags; None if it is not hibernatable (or unknown).
    pub fn tags(&self, socket: u32) -> Option<Vec<String>> {
        let table = self.table.lock().unwrap();
        let slot = table.sockets.get(&socket)?;
        (slot.shared.group_id() != 0).then(|| slot.tags.clone())
    }

    pub fn set_attachment(&self, socket: u32, attachment: Option<Vec<u8>>) -> Result<(), SocketError> {
        let mut table = self.table.lock().unwrap();
        table.sockets.get_mut(&socket).ok_or(SocketError::Unknown)?.attachment = attachment;
        Ok(())
    }

    pub fn attachment(&self, socket: u32) -> Option<Vec<u8>> {
        self.table.lock().unwrap().sockets.get(&socket)?.attachment.clone()
    }

    pub fn set_auto_response(&self, group: u32, pair: Option<AutoResponse>) -> Result<(), SocketError> {
        let table = self.table.lock().unwrap();
        let slot = table.groups.get(&group).ok_or(SocketError::Unknown)?;
        *slot.group.auto_response.write().unwrap() = pair;
        Ok(())
    }

    pub fn auto_response(&self, group: u32) -> Option<AutoResponse> {
        let table = self.table.lock().unwrap();
        let pair = table.groups.get(&group)?.group.auto_response.read().unwrap().clone();
        pair
    }

    /// When the socket was last auto-answered (ms since the epoch).
    pub fn auto_responded_at(&self, socket: u32) -> Option<i64> {
        let table = self.table.lock().unwrap();
        let at = table.sockets.get(&socket)?.shared.auto_responded_at.load(Ordering::Relaxed);
        (at != 0).then_some(at)
    }

    /// For host transports: the auto-response to a text message, if any (stamped).
    pub fn auto_reply(&self, socket: u32, text: &str) -> Option<String> {
        let shared = self.table.lock().unwrap().sockets.get(&socket)?.shared.clone();
        shared.auto_reply(text)
    }

    /// The application started handling messages of `bytes` from `socket` (or dropped
    /// them): once less than [`PAUSE_RECEIVING_ABOVE`] waits, a paused peer is read again.
    pub fn delivered(&self, socket: u32, bytes: usize) {
        let out = {
            let table = self.table.lock().unwrap();
            let Some(slot) = table.sockets.get(&socket) else { return };
            if !slot.shared.delivered(bytes) {
                return;
            }
            slot.out.clone()
        };
        if let Some(out) = out {
            out.resume_reading();
        }
    }

    /// Queues `message` on our own connection. False when there is none (host transport,
    /// unknown socket, or the connection ended).
    pub fn send(&self, socket: u32, message: Outgoing) -> bool {
        // Not under the table's lock: an inline connection writes (and may end) at once.
        let out = self.table.lock().unwrap().sockets.get(&socket).and_then(|s| s.out.clone());
        out.is_some_and(|out| out.push(message))
    }

    /// The connection ended: the socket leaves its group's list (getWebSockets() no longer
    /// shows it) but keeps its tags and attachment until released.
    pub fn ended(&self, socket: u32) {
        let out = {
            let mut table = self.table.lock().unwrap();
            let Table { sockets, groups } = &mut *table;
            let Some(slot) = sockets.get_mut(&socket) else { return };
            slot.open = false;
            let group = slot.shared.group_id();
            let out = slot.out.take();
            if let Some(g) = groups.get_mut(&group) {
                g.members.remove(&socket);
            }
            out
        };
        // Not under the table's lock: an inline connection ends at once.
        if let Some(out) = out {
            out.close(); // the connection's driver lets it go
        }
    }

    /// The peer closed and the application is to answer (no auto-reply): the socket leaves
    /// its group's list now — after a close it is no longer among getWebSockets(), whether
    /// or not the connection has ended yet — but can still send its answering Close.
    pub fn left_group(&self, socket: u32) {
        let mut table = self.table.lock().unwrap();
        let Table { sockets, groups } = &mut *table;
        let Some(slot) = sockets.get(&socket) else { return };
        if let Some(g) = groups.get_mut(&slot.shared.group_id()) {
            g.members.remove(&socket);
        }
    }

    /// Forgets the socket (the host has delivered its last event).
    pub fn release(&self, socket: u32) {
        self.ended(socket);
        self.table.lock().unwrap().sockets.remove(&socket);
    }

    /// Asks every connection of `server` to close with 1001 (Going Away).
    /// Runs on the host thread (inline connections write at once).
    pub fn close_server(&self, server: u32) {
        let links: Vec<Arc<Link>> = {
            let table = self.table.lock().unwrap();
            table.sockets.values().filter(|s| s.shared.server.load(Ordering::Relaxed) == server).filter_map(|s| s.out.clone()).collect()
        };
        for link in links {
            let frame = CloseFrame { code: CloseCode::Away, reason: "The server is shutting down.".into() };
            link.push(Outgoing::Close(Some(frame)));
        }
    }
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hibernatable_sockets_are_listed_by_tag_until_their_connection_ends() {
        let sockets = Sockets::default();
        let group = sockets.create_group();
        let a = sockets.create(0, None).id;
        let b = sockets.create(0, None).id;
        sockets.hibernate(a, group, vec!["red".into()]).unwrap();
        sockets.hibernate(b, group, vec!["blue".into(), "red".into()]).unwrap();
        assert_eq!(sockets.group_sockets(group, None), vec![a, b]);
        assert_eq!(sockets.group_sockets(group, Some("blue")), vec![b]);
        assert_eq!(sockets.tags(b), Some(vec!["blue".to_string(), "red".to_string()]));
        sockets.ended(a);
        assert_eq!(sockets.group_sockets(group, Some("red")), vec![b]);
        // Tags outlive the connection until the host releases the socket.
        assert_eq!(sockets.tags(a), Some(vec!["red".to_string()]));
        assert!(!sockets.release_group(group));
        sockets.release(a);
        sockets.release(b);
        assert_eq!(sockets.tags(a), None);
        assert!(sockets.release_group(group));
    }

    #[test]
    fn a_socket_closed_by_its_peer_leaves_the_list_before_its_connection_ends() {
        let sockets = Sockets::default();
        let group = sockets.create_group();
        let a = sockets.create(0, None).id;
        let b = sockets.create(0, None).id;
        sockets.hibernate(a, group, vec!["red".into()]).unwrap();
        sockets.hibernate(b, group, vec!["red".into()]).unwrap();
        sockets.left_group(a);
        assert_eq!(sockets.group_sockets(group, None), vec![b]);
        assert_eq!(sockets.tags(a), Some(vec!["red".to_string()]), "still known until released");
        sockets.ended(a); // later, when the answer went out
        assert_eq!(sockets.group_sockets(group, Some("red")), vec![b]);
    }

    #[test]
    fn auto_response_matches_exact_text_and_stamps_the_socket() {
        let sockets = Sockets::default();
        let group = sockets.create_group();
        let a = sockets.create(0, None).id;
        assert_eq!(sockets.auto_reply(a, "ping"), None, "not hibernatable yet");
        sockets.hibernate(a, group, vec![]).unwrap();
        let pair = AutoResponse { request: "ping".into(), response: "pong".into() };
        sockets.set_auto_response(group, Some(pair.clone())).unwrap();
        assert_eq!(sockets.auto_response(group), Some(pair));
        assert_eq!(sockets.auto_responded_at(a), None);
        assert_eq!(sockets.auto_reply(a, "ping "), None);
        assert_eq!(sockets.auto_reply(a, "ping").as_deref(), Some("pong"));
        assert!(sockets.auto_responded_at(a).is_some());
        // Clearing the pair keeps the timestamps.
        sockets.set_auto_response(group, None).unwrap();
        assert_eq!(sockets.auto_reply(a, "ping"), None);
        assert!(sockets.auto_responded_at(a).is_some());
    }

    #[test]
    fn a_group_holds_at_most_32768_sockets() {
        let sockets = Sockets::default();
        let group = sockets.create_group();
        for _ in 0..MAX_HIBERNATABLE_SOCKETS {
            let id = sockets.create(0, None).id;
            sockets.hibernate(id, group, Vec::new()).unwrap();
        }
        let one_more = sockets.create(0, None).id;
        assert_eq!(sockets.hibernate(one_more, group, Vec::new()), Err(SocketError::TooMany));
        // A closed socket frees its place.
        sockets.ended(1);
        assert_eq!(sockets.hibernate(one_more, group, Vec::new()), Ok(()));
    }

    #[test]
    fn attachments_are_per_socket() {
        let sockets = Sockets::default();
        let a = sockets.create(0, None).id;
        assert_eq!(sockets.attachment(a), None);
        sockets.set_attachment(a, Some(vec![1, 2])).unwrap();
        assert_eq!(sockets.attachment(a), Some(vec![1, 2]));
        sockets.set_attachment(a, None).unwrap();
        assert_eq!(sockets.attachment(a), None);
        assert_eq!(sockets.set_attachment(999, None), Err(SocketError::Unknown));
    }
}

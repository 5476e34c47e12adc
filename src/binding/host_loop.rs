//! Node's event loop polling our WebSocket connections (engine::net's "inline" driver).
//!
//! Each connection's socket gets a libuv poll handle on the JS thread's loop. When it is
//! readable, the engine reads and answers on this thread, and the events it produced go
//! straight to JS in the same callback: a message's whole round trip — read, the object's
//! handler, ws.send's write — involves no other thread. A message is handed over as three
//! arguments (socket, group, data), not as an event array: building the arrays took
//! ~4 µs a message, as long as all the rest of our JS-side work for it.
//!
//! libuv's functions are looked up at run time (dlsym): they are Node's, not ours to link,
//! and Bun only has stubs that abort (lib/net.ts does not ask for this on Bun). Handles are
//! unref'd: an open WebSocket does not keep the process alive, as with the runtime driver.

use std::cell::RefCell;
use std::collections::HashSet;
use std::ffi::{c_int, c_void, CStr};
use std::ptr;
use std::rc::Rc;

use napi::bindgen_prelude::{ArrayBuffer, ToNapiValue};
use napi::{sys, Env, JsValue};

use super::net::event_value;
use crate::engine::net::{HostConnection, HostSocket, Net, NetEvent, Payload};

const UV_POLL: c_int = 8; // uv_handle_type
const UV_READABLE: c_int = 1;
const UV_DISCONNECT: c_int = 4;

type PollCallback = unsafe extern "C" fn(handle: *mut c_void, status: c_int, events: c_int);
type CloseCallback = unsafe extern "C" fn(handle: *mut c_void);

type HandleSize = unsafe extern "C" fn(kind: c_int) -> usize;
type PollInit = unsafe extern "C" fn(uv_loop: *mut c_void, handle: *mut c_void, fd: c_int) -> c_int;
type PollStart = unsafe extern "C" fn(handle: *mut c_void, events: c_int, cb: PollCallback) -> c_int;
type PollStop = unsafe extern "C" fn(handle: *mut c_void) -> c_int;
type Close = unsafe extern "C" fn(handle: *mut c_void, cb: CloseCallback);
type Unref = unsafe extern "C" fn(handle: *mut c_void);

/// The libuv functions we use, from the host process.
struct Uv {
    handle_size: HandleSize,
    poll_init: PollInit,
    poll_start: PollStart,
    poll_stop: PollStop,
    close: Close,
    unref: Unref,
}

impl Uv {
    fn find() -> Option<Uv> {
        unsafe fn symbol(name: &CStr) -> Option<*mut c_void> {
            let address = unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) };
            (!address.is_null()).then_some(address)
        }
        // SAFETY: each symbol is libuv's function of that name, with the declared signature.
        unsafe {
            Some(Uv {
                handle_size: std::mem::transmute::<*mut c_void, HandleSize>(symbol(c"uv_handle_size")?),
                poll_init: std::mem::transmute::<*mut c_void, PollInit>(symbol(c"uv_poll_init")?),
                poll_start: std::mem::transmute::<*mut c_void, PollStart>(symbol(c"uv_poll_start")?),
                poll_stop: std::mem::transmute::<*mut c_void, PollStop>(symbol(c"uv_poll_stop")?),
                close: std::mem::transmute::<*mut c_void, Close>(symbol(c"uv_close")?),
                unref: std::mem::transmute::<*mut c_void, Unref>(symbol(c"uv_unref")?),
            })
        }
    }
}

/// This thread's loop and the JS functions that take network events.
struct Host {
    uv: Uv,
    uv_loop: *mut c_void,
    env: sys::napi_env,
    /// (socket, group, data): a WebSocket message.
    on_message: sys::napi_ref,
    /// (event): any other event, shaped as netTakeEvents gives it.
    on_event: sys::napi_ref,
    context: sys::napi_async_context,
    net: Net,
    /// Poll handles that are polling (by address), with their connection.
    polls: RefCell<std::collections::HashMap<usize, HostSocket>>,
    /// Handles not yet stopped (a connection may stop before it is registered above).
    live: RefCell<HashSet<usize>>,
}

thread_local! {
    static HOST: RefCell<Option<Rc<Host>>> = const { RefCell::new(None) };
}

fn host() -> Option<Rc<Host>> {
    HOST.with_borrow(|h| h.clone())
}

/// Makes this thread's loop drive `net`'s WebSocket connections. False when the host has
/// no libuv to poll with (the network runtime then drives them).
///
/// # Safety
/// `env` is this thread's live environment, and `on_message` and `on_event` functions in it.
pub unsafe fn install(env: sys::napi_env, on_message: sys::napi_value, on_event: sys::napi_value, net: &Net) -> bool {
    if host().is_some() {
        return true;
    }
    let Some(uv) = Uv::find() else { return false };
    unsafe {
        let mut uv_loop = ptr::null_mut();
        if sys::napi_get_uv_event_loop(env, &mut uv_loop) != sys::Status::napi_ok || uv_loop.is_null() {
            return false;
        }
        let mut message_ref = ptr::null_mut();
        let mut event_ref = ptr::null_mut();
        let mut resource = ptr::null_mut();
        let mut name = ptr::null_mut();
        let mut context = ptr::null_mut();
        if sys::napi_create_reference(env, on_message, 1, &mut message_ref) != sys::Status::napi_ok
            || sys::napi_create_reference(env, on_event, 1, &mut event_ref) != sys::Status::napi_ok
            || sys::napi_create_object(env, &mut resource) != sys::Status::napi_ok
            || sys::napi_create_string_utf8(env, c"open-do:websocket".as_ptr(), usize::MAX as isize, &mut name) != sys::Status::napi_ok
            || sys::napi_async_init(env, resource, name, &mut context) != sys::Status::napi_ok
        {
            return false;
        }
        let host = Rc::new(Host {
            uv,
            uv_loop: uv_loop.cast(),
            env,
            on_message: message_ref,
            on_event: event_ref,
            context,
            net: net.clone(),
            polls: RefCell::default(),
            live: RefCell::default(),
        });
        sys::napi_add_env_cleanup_hook(env, Some(stop_all), ptr::null_mut());
        HOST.with_borrow_mut(|h| *h = Some(host));
    }
    net.enable_host_loop();
    true
}

/// Starts polling the connections that finished their handshake.
pub fn adopt(connections: Vec<HostConnection>) {
    let Some(host) = host() else {
        // Not expected (connections wait for this loop only once it is installed); should
        // it happen, the network runtime drives them rather than dropping them.
        connections.into_iter().for_each(HostConnection::drive_on_runtime);
        return;
    };
    for connection in connections {
        // SAFETY: the handle is allocated at libuv's size for a poll handle and lives until
        // its close callback frees it.
        unsafe {
            let handle = libc::calloc(1, (host.uv.handle_size)(UV_POLL));
            if handle.is_null() || (host.uv.poll_init)(host.uv_loop, handle, connection.fd()) != 0 {
                libc::free(handle);
                connection.drive_on_runtime();
                continue;
            }
            if (host.uv.poll_start)(handle, UV_READABLE | UV_DISCONNECT, on_poll) != 0 {
                // Initialized: the loop knows the handle until it is closed.
                (host.uv.close)(handle, free_handle);
                connection.drive_on_runtime();
                continue;
            }
            (host.uv.unref)(handle);
            let address = handle as usize;
            host.live.borrow_mut().insert(address);
            let socket = connection.start(Box::new(move || stop(address)));
            if host.live.borrow().contains(&address) {
                host.polls.borrow_mut().insert(address, socket);
            }
        }
    }
}

unsafe extern "C" fn on_poll(handle: *mut c_void, _status: c_int, _events: c_int) {
    let Some(host) = host() else { return };
    let Some(socket) = host.polls.borrow().get(&(handle as usize)).cloned() else { return };
    // Errors (status < 0) show up as the read failing.
    host.net.hold_events();
    socket.readable();
    if host.net.release_events() {
        for event in host.net.take_events() {
            // SAFETY: on the JS thread, outside any JS frame (a libuv callback).
            unsafe { deliver(&host, event) };
        }
    }
}

/// Hands one event to JS as Node calls any callback from its loop (microtasks run after).
unsafe fn deliver(host: &Host, event: NetEvent) {
    unsafe {
        let env = host.env;
        let mut scope = ptr::null_mut();
        sys::napi_open_handle_scope(env, &mut scope);
        let mut args = [ptr::null_mut(); 4];
        let (function, argc) = match event {
            NetEvent::SocketMessage { socket, group, data } => {
                sys::napi_create_uint32(env, socket, &mut args[0]);
                sys::napi_create_uint32(env, group, &mut args[1]);
                sys::napi_create_uint32(env, data.len() as u32, &mut args[3]);
                args[2] = match data {
                    Payload::Text(text) => ToNapiValue::to_napi_value(env, text),
                    Payload::Binary(data) => ArrayBuffer::from_data(&Env::from_raw(env), data.to_vec()).and_then(|b| ToNapiValue::to_napi_value(env, b)),
                }
                .unwrap_or(ptr::null_mut());
                (host.on_message, 4)
            }
            other => {
                args[0] = event_value(&Env::from_raw(env), other).map_or(ptr::null_mut(), |a| a.raw());
                (host.on_event, 1)
            }
        };
        if args[..argc].iter().all(|a| !a.is_null()) {
            let mut callee = ptr::null_mut();
            let mut receiver = ptr::null_mut();
            let mut result = ptr::null_mut();
            sys::napi_get_reference_value(env, function, &mut callee);
            sys::napi_get_global(env, &mut receiver); // Node requires an object here
            if sys::napi_make_callback(env, host.context, receiver, callee, argc, args.as_ptr(), &mut result) == sys::Status::napi_pending_exception {
                let mut error = ptr::null_mut();
                sys::napi_get_and_clear_last_exception(env, &mut error);
                sys::napi_fatal_exception(env, error);
            }
        }
        sys::napi_close_handle_scope(env, scope);
    }
}

/// Stops polling a connection's socket (it ended or moved to the network runtime).
fn stop(address: usize) {
    let Some(host) = host() else { return };
    if !host.live.borrow_mut().remove(&address) {
        return;
    }
    let socket = host.polls.borrow_mut().remove(&address);
    drop(socket);
    // SAFETY: a live handle of ours, on its loop's thread.
    unsafe {
        (host.uv.poll_stop)(address as *mut c_void);
        (host.uv.close)(address as *mut c_void, free_handle);
    }
}

unsafe extern "C" fn free_handle(handle: *mut c_void) {
    unsafe { libc::free(handle) };
}

/// The environment is going away (process exit, worker end): its loop must hold no
/// handles of ours.
unsafe extern "C" fn stop_all(_: *mut c_void) {
    let Some(host) = host() else { return };
    let handles: Vec<usize> = host.live.borrow().iter().copied().collect();
    for address in handles {
        stop(address);
    }
}

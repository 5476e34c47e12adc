//! The tokio runtime the network runs on: started with the first server, shared by all.

use std::sync::OnceLock;

use tokio::runtime::{Builder, Runtime};

pub fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        // The JS thread keeps one core busy; the rest serve sockets.
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        Builder::new_multi_thread()
            .worker_threads(cores.saturating_sub(1).clamp(1, 4))
            .thread_name("open-do-net")
            .enable_io()
            .enable_time()
            .build()
            .expect("the network runtime starts")
    })
}

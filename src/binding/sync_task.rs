//! The fsync that makes commits durable, run on the libuv thread pool.

use napi::bindgen_prelude::{Env, Task};

use crate::engine::storage::SyncTarget;

pub struct SyncObject {
    pub target: Option<SyncTarget>,
}

impl Task for SyncObject {
    type Output = ();
    type JsValue = ();

    fn compute(&mut self) -> napi::Result<()> {
        match &self.target {
            None => Ok(()),
            Some(t) => t.run().map_err(|e| napi::Error::from_reason(format!("fsync failed: {e}"))),
        }
    }

    fn resolve(&mut self, _env: Env, _output: ()) -> napi::Result<()> {
        Ok(())
    }
}

//! Every live object's mailbox, by handle.

use slab::Slab;

use super::mailbox::Mailbox;

pub type MailboxHandle = u32;

/// Waiting events per object before offers are refused as overloaded. Cloudflare does not
/// publish its figure; this bounds memory while no sane burst reaches it.
pub const DEFAULT_CAPACITY: usize = 10_000;

#[derive(Default)]
pub struct Scheduler {
    mailboxes: Slab<Mailbox>,
}

impl Scheduler {
    pub fn open(&mut self, capacity: usize) -> MailboxHandle {
        self.mailboxes.insert(Mailbox::new(capacity.max(1))) as MailboxHandle
    }

    pub fn close(&mut self, handle: MailboxHandle) {
        self.mailboxes.try_remove(handle as usize);
    }

    pub fn get(&mut self, handle: MailboxHandle) -> Option<&mut Mailbox> {
        self.mailboxes.get_mut(handle as usize)
    }
}

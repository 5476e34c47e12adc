//! One object's mailbox: when its events may start, by Cloudflare's input-gate rules.
//!
//! Events are opaque tokens (the JS side keeps what each one does). The rules:
//! - An idle object (nothing running, nothing waiting, no critical section) takes an
//!   event at once: the caller starts it synchronously, with no queue and no thread hop.
//! - Otherwise the event waits, in arrival order, so calls through one stub never
//!   overtake each other (E-order).
//! - While a critical section (`blockConcurrencyWhile`, `storage.transaction`) is open,
//!   nothing starts.
//! - Otherwise a waiting event starts at the next *delivery point*: a turn of the host's
//!   event loop, when every continuation of the running events' storage calls has run (our
//!   storage calls complete within the turn that made them, so an event still running at
//!   a delivery point is awaiting other I/O, which is exactly when Cloudflare lets another
//!   event in). One event starts per delivery point, so an event that starts and at once
//!   awaits a storage call finishes that call before the next one may interleave.
//! - When the last running event finishes, the next waiting one starts at once.
//! - The queue is bounded: past `capacity` waiting events, offers are refused
//!   (Cloudflare's "Durable Object is overloaded. Too many requests queued.").

use std::collections::VecDeque;

/// An event, as the host names it.
pub type Token = u32;

/// Cloudflare's limit on nested critical sections (`io-context.h`).
pub const MAX_CRITICAL_DEPTH: u32 = 64;

/// What the host must do with an offered event.
#[derive(Debug, PartialEq, Eq)]
pub enum Offer {
    /// Start it now (it counts as running).
    Start,
    /// It waits; a delivery point is already scheduled, or a critical section holds it.
    Wait,
    /// It waits; schedule a delivery point (see `deliver`).
    WaitAndSchedule,
    /// The queue is full: fail it with the overloaded error.
    Overloaded,
}

#[derive(Debug)]
pub struct Mailbox {
    waiting: VecDeque<Token>,
    running: u32,
    critical: u32,
    delivery_scheduled: bool,
    capacity: usize,
}

impl Mailbox {
    pub fn new(capacity: usize) -> Mailbox {
        Mailbox { waiting: VecDeque::new(), running: 0, critical: 0, delivery_scheduled: false, capacity }
    }

    /// Nothing running, waiting or holding the gate.
    pub fn is_idle(&self) -> bool {
        self.running == 0 && self.critical == 0 && self.waiting.is_empty()
    }

    pub fn running(&self) -> u32 {
        self.running
    }

    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }

    pub fn offer(&mut self, token: Token) -> Offer {
        if self.is_idle() {
            self.running += 1;
            return Offer::Start;
        }
        if self.waiting.len() >= self.capacity {
            return Offer::Overloaded;
        }
        self.waiting.push_back(token);
        self.schedule_if_deliverable()
    }

    /// A delivery point: the event to start now, if the gate lets one through. The host
    /// schedules another delivery point when `delivery_wanted()` says so.
    pub fn deliver(&mut self) -> Option<Token> {
        self.delivery_scheduled = false;
        if self.critical > 0 {
            return None;
        }
        let token = self.waiting.pop_front()?;
        self.running += 1;
        if !self.waiting.is_empty() {
            self.delivery_scheduled = true;
        }
        Some(token)
    }

    /// After `deliver`: whether the host must schedule another delivery point.
    pub fn delivery_wanted(&self) -> bool {
        self.delivery_scheduled
    }

    /// A started event's handler settled. Returns the next event to start at once when it
    /// was the last one running.
    pub fn finished(&mut self) -> Option<Token> {
        debug_assert!(self.running > 0, "finished() without a running event");
        self.running = self.running.saturating_sub(1);
        if self.running > 0 || self.critical > 0 {
            return None;
        }
        let token = self.waiting.pop_front()?;
        self.running += 1;
        Some(token)
    }

    /// Opens a critical section; false when 64 are already open.
    pub fn enter_critical(&mut self) -> bool {
        if self.critical >= MAX_CRITICAL_DEPTH {
            return false;
        }
        self.critical += 1;
        true
    }

    /// Closes a critical section. Returns true when the host must schedule a delivery point.
    pub fn exit_critical(&mut self) -> bool {
        self.critical = self.critical.saturating_sub(1);
        if self.critical == 0 && !self.waiting.is_empty() && !self.delivery_scheduled {
            self.delivery_scheduled = true;
            return true;
        }
        false
    }

    /// The object was reset: its running events and critical sections are void. Returns the
    /// waiting events, which fail with the reset's reason.
    pub fn reset(&mut self) -> Vec<Token> {
        self.running = 0;
        self.critical = 0;
        self.waiting.drain(..).collect()
    }

    fn schedule_if_deliverable(&mut self) -> Offer {
        if self.critical > 0 || self.delivery_scheduled {
            return Offer::Wait;
        }
        self.delivery_scheduled = true;
        Offer::WaitAndSchedule
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_idle_object_starts_an_event_at_once() {
        let mut m = Mailbox::new(10);
        assert_eq!(m.offer(1), Offer::Start);
        assert_eq!(m.running(), 1);
        assert_eq!(m.finished(), None);
        assert!(m.is_idle());
    }

    #[test]
    fn a_busy_object_queues_in_order_and_starts_one_per_delivery_point() {
        let mut m = Mailbox::new(10);
        assert_eq!(m.offer(1), Offer::Start);
        assert_eq!(m.offer(2), Offer::WaitAndSchedule);
        assert_eq!(m.offer(3), Offer::Wait);
        assert_eq!(m.deliver(), Some(2));
        assert!(m.delivery_wanted());
        assert_eq!(m.running(), 2);
        assert_eq!(m.deliver(), Some(3));
        assert!(!m.delivery_wanted());
        assert_eq!(m.deliver(), None);
    }

    #[test]
    fn the_last_finishing_event_starts_the_next_at_once() {
        let mut m = Mailbox::new(10);
        m.offer(1);
        m.offer(2);
        m.offer(3);
        assert_eq!(m.finished(), Some(2));
        assert_eq!(m.finished(), Some(3));
        assert_eq!(m.finished(), None);
        assert!(m.is_idle());
        // The delivery point scheduled earlier finds nothing left to do.
        assert_eq!(m.deliver(), None);
    }

    #[test]
    fn a_critical_section_holds_every_event_back() {
        let mut m = Mailbox::new(10);
        assert!(m.enter_critical());
        assert_eq!(m.offer(1), Offer::Wait);
        assert_eq!(m.deliver(), None);
        assert!(m.enter_critical());
        assert!(!m.exit_critical(), "still one section open");
        assert!(m.exit_critical(), "the last exit asks for a delivery point");
        assert_eq!(m.deliver(), Some(1));
    }

    #[test]
    fn a_finishing_event_does_not_start_the_next_inside_a_critical_section() {
        let mut m = Mailbox::new(10);
        m.offer(1);
        m.offer(2);
        m.enter_critical();
        assert_eq!(m.finished(), None);
        // The delivery point scheduled when 2 arrived is still to come: no second one.
        assert!(!m.exit_critical());
        assert_eq!(m.deliver(), Some(2));
    }

    #[test]
    fn critical_sections_nest_64_deep() {
        let mut m = Mailbox::new(10);
        for _ in 0..MAX_CRITICAL_DEPTH {
            assert!(m.enter_critical());
        }
        assert!(!m.enter_critical());
    }

    #[test]
    fn a_full_queue_refuses_offers() {
        let mut m = Mailbox::new(2);
        assert_eq!(m.offer(1), Offer::Start);
        m.offer(2);
        m.offer(3);
        assert_eq!(m.offer(4), Offer::Overloaded);
        assert_eq!(m.waiting(), 2);
        assert_eq!(m.finished(), Some(2));
        assert_eq!(m.offer(5), Offer::Wait);
    }

    #[test]
    fn a_reset_returns_the_waiting_events_and_frees_the_gate() {
        let mut m = Mailbox::new(10);
        m.offer(1);
        m.offer(2);
        m.enter_critical();
        m.offer(3);
        assert_eq!(m.reset(), vec![2, 3]);
        assert!(m.is_idle());
        assert_eq!(m.offer(4), Offer::Start);
    }
}

//! What a connection holds, against its limits and the shard budget, and
//! the wakes that follow when holdings drop.

use std::rc::Rc;
use std::task::Waker;

use crate::conn::limits::SharedBudget;
use crate::conn::state::ConnState;

impl ConnState {
    /// A parked message of `cost` accounted bytes was taken from stream
    /// `id`'s inbox.
    pub(crate) fn took_parked(&mut self, id: u32, cost: usize) {
        if let Some(s) = self.streams.get_mut(&id) {
            s.inbox_bytes -= cost;
        }
        self.consumed(id, cost);
        self.parked -= 1;
        self.parked_bytes -= cost;
        self.wake_intake();
    }

    /// A stream worker of stream `id` took a queued request of `cost` accounted bytes.
    pub(crate) fn took_request(&mut self, id: u32, cost: usize) {
        self.consumed(id, cost);
        self.pending_requests -= 1;
        self.pending_bytes -= cost;
        self.wake_intake();
    }

    /// Accounted bytes of inbound messages held (see [`Limits::max_inbound_bytes`]).
    pub(crate) fn inbound_held(&self) -> usize {
        self.parked_bytes + self.pending_bytes
    }

    /// Bytes waiting to be written: queued frames plus the driver's unwritten tail.
    pub(crate) fn outbound_held(&self) -> usize {
        self.proto.queued_bytes() + self.unwritten
    }

    /// At [`Limits::max_outbound_bytes`], or the shard's budget spent while
    /// this connection holds something, or (v3) a resume's replay backlog
    /// still waiting for the driver: senders wait. New frames could not
    /// leave before the backlog, and what they queued meanwhile would sit on
    /// top of the replay pieces the driver takes, each sized to fill what
    /// the limit leaves (see `Connection::poll_transmit_within`).
    pub(crate) fn outbound_full(&self) -> bool {
        self.outbound_held() >= self.limits.max_outbound_bytes || self.proto.replay_pending() || self.budget_spent()
    }

    /// Whether the driver must stop reading: inbound holdings at their
    /// limit, or the shard's budget spent while this connection holds
    /// something. Full output does not stop reading: the peer may be
    /// waiting for its own output to be read (two ends that stop reading
    /// while their output is full wait for each other forever), and what is
    /// read stays bounded by the inbound limit.
    ///
    /// With per-stream credit the peer sends at most this end's window
    /// (`max_inbound_bytes` rounded down to a power of two) ahead of what was
    /// consumed, so the connection reads on up to that (twice
    /// `max_inbound_bytes` for a peer that ignores its windows). The shard's
    /// budget holds back both, with credit or without: it is the bound of
    /// last resort on what the whole shard holds.
    pub(crate) fn intake_full(&self) -> bool {
        let inbound = if self.credit {
            self.inbound_held() >= 2 * self.limits.max_inbound_bytes.max(self.own_windows.0 as usize)
        } else {
            self.inbound_held() >= self.limits.max_inbound_bytes
        };
        inbound || self.budget_spent()
    }

    /// Inbound holdings at which the driver stops routing frames it has read
    /// (they wait whole in its read buffer). With per-stream credit the
    /// windows bound the intake (see [`ConnState::intake_full`]), so every
    /// frame read is routed.
    pub(crate) fn route_limit(&self) -> usize {
        if self.credit {
            usize::MAX
        } else {
            self.limits.max_inbound_bytes
        }
    }

    /// The shard's budget is spent and this connection holds something (a
    /// connection holding nothing may still read: one message at a time).
    pub(crate) fn budget_spent(&self) -> bool {
        self.budget.as_ref().is_some_and(|b| b.over()) && self.budget_reported > 0
    }

    /// Joins the shard's byte budget (server connections).
    pub(crate) fn set_budget(&mut self, budget: Rc<SharedBudget>) {
        self.budget = Some(budget);
        self.report_held();
    }

    /// The shard budget's total, when the connection has one.
    pub(crate) fn budget_held(&self) -> Option<usize> {
        self.budget.as_ref().map(|b| b.held())
    }

    /// Tells the shard's budget what this connection holds now.
    pub(crate) fn report_held(&mut self) {
        let Some(b) = &self.budget else { return };
        let now = self.inbound_held() + self.outbound_held();
        let was = self.budget_reported;
        if now > was {
            b.add(now - was);
        } else if now < was {
            b.sub(was - now);
        }
        self.budget_reported = now;
    }

    /// The connection is over: returns what it reported to the budget.
    pub(crate) fn leave_budget(&mut self) {
        if let Some(b) = self.budget.take() {
            b.sub(self.budget_reported);
            self.budget_reported = 0;
        }
    }

    /// A driver stopped by the shard budget waits for it to drop.
    pub(crate) fn wait_budget(&self, w: &Waker) {
        if let Some(b) = &self.budget {
            b.waiters.borrow_mut().push(w.clone());
        }
    }

    /// Wakes a driver that stopped reading once holdings are below the limits.
    pub(crate) fn wake_intake(&mut self) {
        self.report_held();
        if self.intake_waiting && !self.intake_full() {
            self.intake_waiting = false;
            self.wake_driver();
        }
    }

    /// Wakes senders waiting for replay-ring room (ring room freed).
    pub(crate) fn wake_room(&mut self) {
        for w in self.room_wakers.drain(..) {
            w.wake();
        }
    }

    /// Wakes senders waiting for the output to drain.
    pub(crate) fn wake_out(&mut self) {
        for w in self.out_wakers.drain(..) {
            w.wake();
        }
    }

    /// Wakes every waiting sender (closed).
    pub(crate) fn wake_senders(&mut self) {
        self.wake_room();
        self.wake_out();
        self.wake_credit();
    }
}

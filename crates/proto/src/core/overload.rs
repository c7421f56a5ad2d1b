//! Overload control (SPEC §11): what arrives is parsed and classed at once, waits in a queue per
//! class, and is served highest class first; a request that cannot be served in time is answered
//! `503 Service Unavailable` with a randomised `Retry-After` instead of being processed.
//!
//! The measure of load is the time a message has waited: a request whose class already has one
//! waiting longer than `overload.max_delay` is answered 503 as it arrives (it would wait as
//! long), and one that reaches the head of its queue later than that is answered 503 instead of
//! served. Responses, NOTIFYs of our own dialogs and ACKs are never refused for waiting: they
//! finish work already admitted. The queues together hold at most `overload.max_queue`
//! messages and `overload.max_queue_bytes` bytes: past that the lowest class's oldest message
//! goes (a request is answered 503, a response or ACK is dropped and counted). Initial requests
//! are refused while `overload.max_transactions` transactions are in flight.
//!
//! Owns: the queues, the overload state and its metrics. Never: the clock (every call takes
//! `now`), how much to serve per turn (the transport decides by its own time budget).

use std::collections::VecDeque;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::{ctx, Inbound};
use crate::names;
use crate::sip::{Message, Method};

/// `[overload]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverloadSettings {
    /// `overload.enabled` (default true). Off: every message is served as it comes.
    pub enabled: bool,
    /// `overload.max_delay` (default 200 ms): a request that waited longer is refused.
    pub max_delay: Duration,
    /// `overload.max_queue` (default 20,000 messages waiting).
    pub max_queue: usize,
    /// `overload.max_queue_bytes` (default 64 MiB of messages waiting).
    pub max_queue_bytes: usize,
    /// `overload.max_transactions` (default 200,000): REGISTERs and INVITEs forwarded and not
    /// answered yet, beyond which initial requests are refused (a core that stopped answering;
    /// an unanswered one is kept for Timer F, 32 s, so at 15,000/s a core that loses 10 % of
    /// them holds 48,000).
    pub max_transactions: usize,
    /// `overload.retry_after_min` / `overload.retry_after_max` (default 10 s and 40 s): the
    /// `Retry-After` of a 503 is drawn uniformly from this range, in whole seconds.
    pub retry_after_min: Duration,
    pub retry_after_max: Duration,
}

impl Default for OverloadSettings {
    fn default() -> Self {
        OverloadSettings {
            enabled: true,
            max_delay: Duration::from_millis(200),
            max_queue: 20_000,
            max_queue_bytes: 64 << 20,
            max_transactions: 200_000,
            retry_after_min: Duration::from_secs(10),
            retry_after_max: Duration::from_secs(40),
        }
    }
}

/// What a message is for overload control, highest priority first (SPEC §11, issue 21).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Class {
    /// Responses (to our REGISTERs, SUBSCRIBEs, proxied requests).
    Response,
    /// NOTIFYs in our own subscriptions' dialogs.
    Notify,
    /// Requests in existing dialogs (a To tag), ACK and CANCEL.
    InDialog,
    /// REGISTERs of known registrations (re-registrations, de-registrations).
    Reregister,
    /// REGISTERs of unknown ones.
    Register,
    /// Every other out-of-dialog request.
    Other,
}

impl Class {
    pub const ALL: [Class; 6] = [
        Class::Response,
        Class::Notify,
        Class::InDialog,
        Class::Reregister,
        Class::Register,
        Class::Other,
    ];
    /// The `class` label of `regevent_overload_rejected_total`.
    pub fn label(self) -> &'static str {
        match self {
            Class::Response => "response",
            Class::Notify => "notify",
            Class::InDialog => "in_dialog",
            Class::Reregister => "reregister",
            Class::Register => "register",
            Class::Other => "other",
        }
    }
}

/// Why a message was refused (the `reason` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Its class had waited longer than `max_delay`.
    Delay,
    /// The queues were full.
    Queue,
    /// Too many transactions in flight.
    Transactions,
    /// The gateway is stopping.
    Shutdown,
}

impl Reason {
    const ALL: [Reason; 4] = [
        Reason::Delay,
        Reason::Queue,
        Reason::Transactions,
        Reason::Shutdown,
    ];
    pub fn label(self) -> &'static str {
        match self {
            Reason::Delay => "delay",
            Reason::Queue => "queue",
            Reason::Transactions => "transactions",
            Reason::Shutdown => "shutdown",
        }
    }
}

/// A message waiting to be served.
#[derive(Debug)]
pub(super) struct Waiting {
    pub at: Instant,
    pub class: Class,
    pub inb: Inbound,
    pub msg: Message,
}

/// How long nothing must be refused before an overload episode ends.
const QUIET: Duration = Duration::from_secs(1);

/// The queues and the overload state.
#[derive(Debug)]
pub(super) struct Intake {
    cfg: OverloadSettings,
    queues: [VecDeque<Waiting>; 6],
    len: usize,
    bytes: usize,
    /// Since when the current episode runs, and when something was last refused.
    since: Option<Instant>,
    last_refusal: Option<Instant>,
    /// Refused in the current episode.
    episode_refused: u64,
    /// Seconds overloaded in finished episodes.
    finished_seconds: f64,
    rng: u64,
    refused: [[OnceLock<metrics::Counter>; 4]; 6],
    /// Stopping: new requests are refused.
    draining: bool,
}

impl Intake {
    pub fn new(cfg: OverloadSettings, seed: u64) -> Self {
        Intake {
            cfg,
            queues: Default::default(),
            len: 0,
            bytes: 0,
            since: None,
            last_refusal: None,
            episode_refused: 0,
            finished_seconds: 0.0,
            rng: ctx::mix(seed ^ 0x0e71_0ad5),
            refused: Default::default(),
            draining: false,
        }
    }

    pub fn enabled(&self) -> bool {
        self.cfg.enabled
    }

    /// From now on new requests are refused (the gateway is stopping).
    pub fn drain(&mut self) {
        self.draining = true;
    }

    pub fn draining(&self) -> bool {
        self.draining
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// Queue a classed message; or the message to refuse (this one, or a lower one it pushed
    /// out of a full queue) and why. `in_flight`: transactions now.
    pub fn offer(
        &mut self,
        now: Instant,
        w: Waiting,
        in_flight: usize,
    ) -> Option<(Reason, Waiting)> {
        let class = w.class;
        let sheddable = sheddable(class, &w.msg);
        if sheddable {
            if self.late(now, class) {
                return Some((Reason::Delay, w));
            }
            if class >= Class::Register && in_flight >= self.cfg.max_transactions {
                return Some((Reason::Transactions, w));
            }
        }
        let size = w.inb.bytes.len();
        if self.len >= self.cfg.max_queue || self.bytes + size > self.cfg.max_queue_bytes {
            // Full: the newcomer goes if nothing waiting is lower; else the lowest class's
            // oldest makes room (the caller refuses it instead).
            let lowest = self.lowest();
            match lowest {
                Some(l) if l > class => {
                    let old = self.pop_class(l).expect("lowest class is not empty");
                    self.push(w);
                    return Some((Reason::Queue, old));
                }
                _ => return Some((Reason::Queue, w)),
            }
        }
        self.push(w);
        None
    }

    /// The next message to serve, highest class first; `Err` with a message to refuse instead
    /// (it waited too long). `None`: nothing waits.
    pub fn next(&mut self, now: Instant) -> Option<Result<Waiting, (Reason, Waiting)>> {
        let class = Class::ALL
            .into_iter()
            .find(|c| !self.queues[*c as usize].is_empty())?;
        let w = self.pop_class(class)?;
        if sheddable(class, &w.msg) && now.saturating_duration_since(w.at) > self.cfg.max_delay {
            return Some(Err((Reason::Delay, w)));
        }
        Some(Ok(w))
    }

    fn push(&mut self, w: Waiting) {
        self.len += 1;
        self.bytes += w.inb.bytes.len();
        self.queues[w.class as usize].push_back(w);
    }

    fn pop_class(&mut self, class: Class) -> Option<Waiting> {
        let w = self.queues[class as usize].pop_front()?;
        self.len -= 1;
        self.bytes -= w.inb.bytes.len();
        Some(w)
    }

    /// The lowest class with something waiting.
    fn lowest(&self) -> Option<Class> {
        Class::ALL
            .into_iter()
            .rev()
            .find(|c| !self.queues[*c as usize].is_empty())
    }

    /// Whether `class`'s oldest message has waited longer than `max_delay` (a newcomer would
    /// wait as long).
    fn late(&self, now: Instant, class: Class) -> bool {
        self.queues[class as usize]
            .front()
            .is_some_and(|w| now.saturating_duration_since(w.at) > self.cfg.max_delay)
    }

    /// How long the oldest waiting request has waited, as a fraction of `max_delay`: below 1
    /// serves everything, above 1 refuses.
    pub fn level(&self, now: Instant) -> f64 {
        let oldest = self
            .queues
            .iter()
            .filter_map(|q| q.front())
            .map(|w| now.saturating_duration_since(w.at))
            .max()
            .unwrap_or_default();
        oldest.as_secs_f64() / self.cfg.max_delay.as_secs_f64().max(1e-6)
    }

    /// A `Retry-After` value in seconds, uniform in the configured range.
    pub fn retry_after(&mut self) -> u64 {
        let lo = self.cfg.retry_after_min.as_secs();
        let hi = self.cfg.retry_after_max.as_secs().max(lo);
        self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        lo + ctx::mix(self.rng) % (hi - lo + 1)
    }

    /// Note a refusal: count it, and start an episode if none runs.
    pub fn refused(&mut self, now: Instant, class: Class, reason: Reason) {
        let r = Reason::ALL.iter().position(|x| *x == reason).unwrap_or(0);
        self.refused[class as usize][r]
            .get_or_init(|| {
                metrics::counter!(names::OVERLOAD_REJECTED, "class" => class.label(), "reason" => reason.label())
            })
            .increment(1);
        if reason == Reason::Shutdown {
            return;
        }
        self.last_refusal = Some(now);
        self.episode_refused += 1;
        if self.since.is_none() {
            self.since = Some(now);
            metrics::gauge!(names::OVERLOAD_ACTIVE).set(1.0);
            tracing::warn!(
                waiting = self.len,
                level = format_args!("{:.2}", self.level(now)),
                class = class.label(),
                reason = reason.label(),
                "overload: refusing requests with 503"
            );
        }
    }

    /// When the current episode may end.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.since?;
        self.last_refusal.map(|t| t + QUIET)
    }

    /// End the episode when nothing was refused for a while and nothing waits.
    pub fn handle_timeout(&mut self, now: Instant) {
        let (Some(since), Some(last)) = (self.since, self.last_refusal) else {
            return;
        };
        if now < last + QUIET || self.len > 0 {
            return;
        }
        let lasted = now.saturating_duration_since(since);
        self.finished_seconds += lasted.as_secs_f64();
        tracing::warn!(
            seconds = format_args!("{:.1}", lasted.as_secs_f64()),
            refused = self.episode_refused,
            "overload ended"
        );
        self.since = None;
        self.episode_refused = 0;
        metrics::gauge!(names::OVERLOAD_ACTIVE).set(0.0);
        metrics::gauge!(names::OVERLOAD_SECONDS).set(self.finished_seconds);
    }

    /// Publish the gauges (once a second).
    pub fn report(&self, now: Instant) {
        let running = self
            .since
            .map_or(0.0, |s| now.saturating_duration_since(s).as_secs_f64());
        metrics::gauge!(names::OVERLOAD_LEVEL).set(self.level(now));
        metrics::gauge!(names::OVERLOAD_QUEUED).set(self.len as f64);
        metrics::gauge!(names::OVERLOAD_SECONDS).set(self.finished_seconds + running);
        metrics::gauge!(names::OVERLOAD_ACTIVE).set(if self.since.is_some() { 1.0 } else { 0.0 });
    }

    /// Whether an episode runs.
    pub fn overloaded(&self) -> bool {
        self.since.is_some()
    }
}

/// Whether a message of `class` may be refused for having waited: requests that a 503 can
/// answer and that do not finish admitted work (not NOTIFYs of our dialogs, not ACK).
fn sheddable(class: Class, msg: &Message) -> bool {
    class >= Class::InDialog && msg.method() != Some(Method::Ack)
}

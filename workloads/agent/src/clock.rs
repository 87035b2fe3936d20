//! The probe's clock: its start, its connect bound and its overall deadline.

use std::time::Duration;

use tokio::time::Instant;

/// Deadlines of one probe, all derived from the moment it started.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    start: Instant,
    connect_timeout: Duration,
    deadline: Instant,
}

impl Clock {
    /// Starts the clock now.
    pub fn start(connect_timeout_ms: u64, timeout_ms: u64) -> Self {
        let start = Instant::now();
        Clock {
            start,
            connect_timeout: Duration::from_millis(connect_timeout_ms),
            deadline: start + Duration::from_millis(timeout_ms),
        }
    }

    /// The overall deadline: nothing of the probe runs past it.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// The deadline of a connect attempt starting now: the connect timeout from now, but never past the
    /// overall deadline.
    pub fn connect_deadline(&self) -> Instant {
        (Instant::now() + self.connect_timeout).min(self.deadline)
    }

    /// Time left before the overall deadline (zero once it has passed).
    pub fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    /// Milliseconds from the start to `t`.
    pub fn ms_at(&self, t: Instant) -> f64 {
        t.saturating_duration_since(self.start).as_secs_f64() * 1000.0
    }

    /// Milliseconds from the start to now.
    pub fn elapsed_ms(&self) -> f64 {
        self.ms_at(Instant::now())
    }
}

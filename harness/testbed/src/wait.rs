//! Waiting on a condition: poll with exponential backoff until it holds or a deadline passes.
//!
//! No fixed sleeps: the first check runs at once, later ones back off from 200 ms to a cap of 3 s.

use std::time::Duration;

use tokio::time::Instant;

/// One observation of a condition.
pub enum Check<T> {
    Ready(T),
    /// Not yet; the text says what was seen (it becomes the timeout error's last observation).
    NotYet(String),
}

/// The condition did not hold before the deadline.
#[derive(Debug, thiserror::Error)]
#[error("timed out after {waited:.0?} waiting for {what}; last seen: {last}")]
pub struct WaitTimeout {
    pub what: String,
    pub waited: Duration,
    pub last: String,
}

/// The backoff between checks.
#[derive(Clone, Copy, Debug)]
pub struct Backoff {
    pub first: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            first: Duration::from_millis(200),
            max: Duration::from_secs(3),
        }
    }
}

impl Backoff {
    /// The delays between checks: doubling from `first`, capped at `max`.
    pub fn delays(self) -> impl Iterator<Item = Duration> {
        std::iter::successors(Some(self.first), move |d| Some((*d * 2).min(self.max)))
    }
}

/// Calls `check` until it returns [`Check::Ready`] or `deadline` passes.
///
/// # Caveats
/// A slow `check` can overrun the deadline by its own duration; bound it inside if that matters.
pub async fn poll_until<T, F, Fut>(
    what: &str,
    deadline: Instant,
    backoff: Backoff,
    mut check: F,
) -> Result<T, WaitTimeout>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Check<T>>,
{
    let started = Instant::now();
    let mut delays = backoff.delays();
    loop {
        let last = match check().await {
            Check::Ready(v) => return Ok(v),
            Check::NotYet(last) => last,
        };
        let delay = delays.next().unwrap_or(backoff.max);
        let now = Instant::now();
        if now >= deadline {
            return Err(WaitTimeout {
                what: what.to_string(),
                waited: started.elapsed(),
                last,
            });
        }
        tokio::time::sleep_until((now + delay).min(deadline)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let d: Vec<_> = Backoff {
            first: Duration::from_millis(100),
            max: Duration::from_millis(500),
        }
        .delays()
        .take(5)
        .collect();
        assert_eq!(d, [100, 200, 400, 500, 500].map(Duration::from_millis));
    }

    #[tokio::test(start_paused = true)]
    async fn poll_until_returns_as_soon_as_the_condition_holds() {
        let mut n = 0;
        let got = poll_until(
            "three checks",
            Instant::now() + Duration::from_secs(60),
            Backoff::default(),
            || {
                n += 1;
                let now = n;
                async move {
                    if now >= 3 {
                        Check::Ready(now)
                    } else {
                        Check::NotYet(format!("check {now}"))
                    }
                }
            },
        )
        .await
        .unwrap();
        assert_eq!(got, 3);
    }

    #[tokio::test(start_paused = true)]
    async fn poll_until_times_out_with_the_last_observation() {
        let err = poll_until::<(), _, _>(
            "never",
            Instant::now() + Duration::from_secs(10),
            Backoff::default(),
            || async { Check::NotYet("still 0/3 ready".into()) },
        )
        .await
        .unwrap_err();
        assert_eq!(err.last, "still 0/3 ready");
        assert!(err.to_string().contains("waiting for never"), "{err}");
    }
}

//! Step-by-step progress with elapsed time.

use std::io::Write;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How a step ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StepEnd {
    Done,
    /// Nothing to do (e.g. the network already exists); the text says why.
    Skipped(String),
    Failed(String),
}

/// Receives progress. Implementations must be cheap; they are called from async code.
pub trait Progress: Send + Sync {
    fn step_started(&self, step: &str);
    /// A line of detail within the current step.
    fn detail(&self, message: &str);
    fn step_finished(&self, step: &str, took: Duration, end: &StepEnd);
}

/// Prints to stderr: `[  12.3s] ==> step`, details indented, and the outcome with the step's duration.
pub struct TerminalProgress {
    started: Instant,
    out: Mutex<Box<dyn Write + Send>>,
}

impl TerminalProgress {
    pub fn stderr() -> Self {
        Self::to_writer(Box::new(std::io::stderr()))
    }

    pub fn to_writer(out: Box<dyn Write + Send>) -> Self {
        Self {
            started: Instant::now(),
            out: Mutex::new(out),
        }
    }

    fn line(&self, text: &str) {
        let elapsed = self.started.elapsed().as_secs_f64();
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        let _ = writeln!(out, "[{elapsed:7.1}s] {text}");
        let _ = out.flush();
    }
}

impl Progress for TerminalProgress {
    fn step_started(&self, step: &str) {
        self.line(&format!("==> {step}"));
    }
    fn detail(&self, message: &str) {
        for l in message.lines() {
            self.line(&format!("    {l}"));
        }
    }
    fn step_finished(&self, step: &str, took: Duration, end: &StepEnd) {
        let took = took.as_secs_f64();
        match end {
            StepEnd::Done => self.line(&format!("ok  {step} ({took:.1}s)")),
            StepEnd::Skipped(why) => self.line(&format!("--  {step}: {why} ({took:.1}s)")),
            // The error itself is stated once, by the command's final `error:` line.
            StepEnd::Failed(_) => self.line(&format!("ERR {step} ({took:.1}s)")),
        }
    }
}

/// Discards progress.
pub struct NoProgress;

impl Progress for NoProgress {
    fn step_started(&self, _: &str) {}
    fn detail(&self, _: &str) {}
    fn step_finished(&self, _: &str, _: Duration, _: &StepEnd) {}
}

/// Keeps every event, for tests.
#[derive(Default)]
pub struct RecordingProgress {
    pub events: Mutex<Vec<String>>,
}

impl Progress for RecordingProgress {
    fn step_started(&self, step: &str) {
        self.events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(format!("start {step}"));
    }
    fn detail(&self, message: &str) {
        self.events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(format!("detail {message}"));
    }
    fn step_finished(&self, step: &str, _: Duration, end: &StepEnd) {
        self.events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(format!("end {step} {end:?}"));
    }
}

/// Runs `body` as a named step: reports start, then done/skipped/failed with its duration.
///
/// `body` returns `Ok(None)` when done, `Ok(Some(reason))` when skipped.
pub async fn step<T, E, F>(progress: &dyn Progress, name: &str, body: F) -> Result<T, E>
where
    F: Future<Output = Result<(T, Option<String>), E>>,
    E: std::fmt::Display,
{
    progress.step_started(name);
    let started = Instant::now();
    let result = body.await;
    let took = started.elapsed();
    match &result {
        Ok((_, None)) => progress.step_finished(name, took, &StepEnd::Done),
        Ok((_, Some(why))) => progress.step_finished(name, took, &StepEnd::Skipped(why.clone())),
        Err(e) => progress.step_finished(name, took, &StepEnd::Failed(first_line(&e.to_string()))),
    }
    result.map(|(v, _)| v)
}

fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or_default().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Default)]
    struct Shared(std::sync::Arc<Mutex<Vec<u8>>>);
    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn terminal_progress_shows_each_step_with_elapsed_time_and_outcome() {
        let buf = Shared::default();
        let p = TerminalProgress::to_writer(Box::new(buf.clone()));
        let _: Result<(), String> = step(&p, "Create network", async { Ok(((), None)) }).await;
        let _: Result<(), String> = step(&p, "Install Cilium", async {
            Err("helm failed\nmore".to_string())
        })
        .await;
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        assert!(text.contains("s] ==> Create network"), "{text}");
        assert!(text.contains("ok  Create network ("), "{text}");
        assert!(text.contains("ERR Install Cilium ("), "{text}");
        assert!(
            !text.contains("helm failed") && !text.contains("more"),
            "the error is stated once, by the caller, not by the progress: {text}"
        );
    }
}

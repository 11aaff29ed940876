//! Captures what keyrot logs, in the exact JSON format the functions use.

use std::io::Write;
use std::sync::{Arc, Mutex};

#[derive(Clone, Default)]
pub struct LogCapture {
    buffer: Arc<Mutex<Vec<u8>>>,
}

impl LogCapture {
    /// Runs `future` with keyrot's JSON subscriber writing into this capture.
    pub async fn record<F: std::future::Future>(&self, future: F) -> F::Output {
        let writer = self.clone();
        let dispatch = tracing::Dispatch::new(keyrot::logging::subscriber(move || writer.clone()));
        let _guard = tracing::dispatcher::set_default(&dispatch);
        // Callsites first hit by a concurrent test with no subscriber may have cached "never
        // interested"; recompute now that this capture's subscriber exists.
        tracing::callsite::rebuild_interest_cache();
        future.await
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.buffer.lock().unwrap_or_else(|p| p.into_inner())).into_owned()
    }

    pub fn lines(&self) -> Vec<serde_json::Value> {
        self.text()
            .lines()
            .map(|line| {
                serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("log line is not JSON ({e}): {line}"))
            })
            .collect()
    }
}

impl Write for LogCapture {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.buffer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

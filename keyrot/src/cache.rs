//! A value loaded from AWS and kept for a while: the client registry and the published keys
//! are read at most once per TTL per warm function instance.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;
use tokio::time::Instant;

pub struct TtlCache<T> {
    ttl: Duration,
    slot: Mutex<Option<(Instant, Arc<T>)>>,
}

impl<T> TtlCache<T> {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            slot: Mutex::new(None),
        }
    }

    /// The cached value if younger than the TTL, else a fresh one from `load`. A failed load
    /// is not cached and serves nothing stale: callers fail closed.
    pub async fn get_or_load<E, F, Fut>(&self, load: F) -> Result<Arc<T>, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let mut slot = self.slot.lock().await;
        if let Some((loaded_at, value)) = slot.as_ref() {
            if loaded_at.elapsed() < self.ttl {
                return Ok(value.clone());
            }
        }
        let value = Arc::new(load().await?);
        *slot = Some((Instant::now(), value.clone()));
        Ok(value)
    }

    /// A fresh value from `load`, whatever the cached one's age; on failure the cached value
    /// stays as it was.
    pub async fn reload<E, F, Fut>(&self, load: F) -> Result<Arc<T>, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let mut slot = self.slot.lock().await;
        let value = Arc::new(load().await?);
        *slot = Some((Instant::now(), value.clone()));
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test(start_paused = true)]
    async fn reloads_after_the_ttl_and_never_caches_failures() {
        let cache = TtlCache::new(Duration::from_secs(30));
        let loads = AtomicU32::new(0);
        let load = || async { Ok::<u32, ()>(loads.fetch_add(1, Ordering::SeqCst) + 1) };
        assert_eq!(*cache.get_or_load(load).await.unwrap(), 1);
        assert_eq!(*cache.get_or_load(load).await.unwrap(), 1);
        tokio::time::advance(Duration::from_secs(31)).await;
        assert!(cache
            .get_or_load(|| async { Err::<u32, ()>(()) })
            .await
            .is_err());
        assert_eq!(*cache.get_or_load(load).await.unwrap(), 2);
    }
}

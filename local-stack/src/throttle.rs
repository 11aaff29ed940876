//! Per-client throttling as an API Gateway usage plan applies it: a token bucket per usage
//! key, refilled at the rate, holding at most the burst.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

pub struct Throttle {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl Throttle {
    pub fn new(rate: f64, burst: u32) -> Self {
        Self {
            rate: rate.max(0.0),
            burst: f64::from(burst.max(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one request from `key`'s bucket; false when it is empty (429).
    pub fn admit(&self, key: &str) -> bool {
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let (tokens, last) = buckets.entry(key.to_owned()).or_insert((self.burst, now));
        *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * self.rate).min(self.burst);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admits_the_burst_then_refuses_per_key() {
        let throttle = Throttle::new(0.0, 3);
        assert!((0..3).all(|_| throttle.admit("a")));
        assert!(!throttle.admit("a"));
        assert!(throttle.admit("b"), "buckets are per client");
    }
}

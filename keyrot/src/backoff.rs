//! Bounded exponential backoff for waiting on eventually consistent AWS state.

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Delay after the first failed attempt.
    pub initial: Duration,
    /// Upper bound of one delay.
    pub max_delay: Duration,
    /// Upper bound of all delays together: no attempt starts after this much waiting.
    pub max_wait: Duration,
}

impl Backoff {
    /// The delays between attempts, in order; their sum never exceeds `max_wait`.
    pub fn delays(&self) -> impl Iterator<Item = Duration> {
        let Backoff {
            initial,
            max_delay,
            max_wait,
        } = *self;
        let mut next = initial.min(max_delay);
        let mut waited = Duration::ZERO;
        std::iter::from_fn(move || {
            if next.is_zero() || waited + next > max_wait {
                return None;
            }
            let delay = next;
            waited += delay;
            next = (next * 2).min(max_delay);
            Some(delay)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap_and_stops_at_the_budget() {
        let backoff = Backoff {
            initial: Duration::from_millis(500),
            max_delay: Duration::from_secs(4),
            max_wait: Duration::from_secs(20),
        };
        let delays: Vec<u64> = backoff.delays().map(|d| d.as_millis() as u64).collect();
        assert_eq!(delays, vec![500, 1000, 2000, 4000, 4000, 4000, 4000]);
        assert!(backoff.delays().sum::<Duration>() <= backoff.max_wait);
    }

    #[test]
    fn zero_budget_means_a_single_attempt() {
        let backoff = Backoff {
            initial: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
            max_wait: Duration::ZERO,
        };
        assert_eq!(backoff.delays().count(), 0);
    }
}

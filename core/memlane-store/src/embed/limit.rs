//! Rate limits and retry delays for embedders that call a server.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A token bucket: `rate` units a second, holding at most one second's worth (and at
/// least the largest single request), so requests are spread over the minute instead of
/// bursting at its start.
#[derive(Debug)]
pub(crate) struct Bucket {
    rate: f64,
    capacity: f64,
    state: Mutex<(f64, Instant)>,
}

impl Bucket {
    /// A bucket for `per_minute` units a minute.
    pub(crate) fn per_minute(per_minute: f64) -> Self {
        let rate = per_minute / 60.0;
        let capacity = rate.max(1.0);
        Bucket {
            rate,
            capacity,
            state: Mutex::new((capacity, Instant::now())),
        }
    }

    /// How long to wait before `n` units are available; takes them when none.
    pub(crate) fn take(&self, n: f64) -> Option<Duration> {
        let Ok(mut s) = self.state.lock() else {
            return None;
        };
        let now = Instant::now();
        // a request larger than the bucket waits for a full bucket, then overdraws
        let need = n.min(self.capacity);
        s.0 = (s.0 + now.duration_since(s.1).as_secs_f64() * self.rate).min(self.capacity);
        s.1 = now;
        if s.0 >= need {
            s.0 -= n;
            None
        } else {
            Some(Duration::from_secs_f64((need - s.0) / self.rate))
        }
    }
}

/// The delay before retry `attempt` (0-based): exponential from 0.5 s, capped at
/// `max`, with full jitter in [50%, 100%]; a server's `Retry-After` wins when given
/// (plus up to 10% jitter, so clients told the same moment do not return together).
pub(crate) fn backoff(attempt: u32, max: Duration, retry_after: Option<Duration>) -> Duration {
    if let Some(ra) = retry_after {
        return ra.mul_f64(1.0 + 0.1 * jitter());
    }
    let exp = 0.5 * 2f64.powi(i32::try_from(attempt.min(20)).unwrap_or(20));
    Duration::from_secs_f64(exp.min(max.as_secs_f64()) * (0.5 + 0.5 * jitter()))
}

/// `Retry-After` (seconds, or an HTTP date) or `retry-after-ms` (OpenAI's).
pub(crate) fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    if let Some(ms) = headers
        .get("retry-after-ms")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|v| v.is_finite() && *v >= 0.0)
    {
        return Some(Duration::from_secs_f64(ms / 1000.0));
    }
    let v = headers.get("retry-after")?.to_str().ok()?.trim();
    if let Ok(secs) = v.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0)
            .then(|| Duration::from_secs_f64(secs.min(3600.0)));
    }
    let at = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    let secs = at
        .signed_duration_since(chrono::Utc::now())
        .num_milliseconds();
    #[allow(clippy::cast_precision_loss)]
    Some(Duration::from_secs_f64(
        (secs.max(0) as f64 / 1000.0).min(3600.0),
    ))
}

/// A number in [0, 1) from a small generator seeded by the clock and a counter (no
/// dependency: jitter needs spread, not quality).
fn jitter() -> f64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static STATE: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let mut x = STATE.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed) ^ u64::from(nanos);
    // splitmix64
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^= x >> 31;
    #[allow(clippy::cast_precision_loss)]
    let f = (x >> 11) as f64 / (1u64 << 53) as f64;
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_spreads_requests() {
        let b = Bucket::per_minute(120.0); // 2 a second, holds 2
        assert!(b.take(1.0).is_none());
        assert!(b.take(1.0).is_none());
        let w = b.take(1.0).expect("the third waits");
        assert!(
            w > Duration::from_millis(300) && w <= Duration::from_millis(500),
            "{w:?}"
        );
        // a request larger than the bucket waits for a full one, then overdraws
        let t = Bucket::per_minute(60.0);
        assert!(t.take(5.0).is_none());
        assert!(t.take(1.0).is_some());
    }

    #[test]
    fn backoff_grows_caps_and_honours_retry_after() {
        let max = Duration::from_secs(8);
        for a in 0..10 {
            let d = backoff(a, max, None);
            let full = (0.5 * 2f64.powi(i32::try_from(a).unwrap())).min(8.0);
            assert!(
                d.as_secs_f64() >= full * 0.5 - 1e-9 && d.as_secs_f64() <= full + 1e-9,
                "{a}: {d:?}"
            );
        }
        let d = backoff(0, max, Some(Duration::from_secs(3)));
        assert!(
            d >= Duration::from_secs(3) && d <= Duration::from_millis(3300),
            "{d:?}"
        );
    }

    #[test]
    fn retry_after_forms() {
        let mut h = reqwest::header::HeaderMap::new();
        h.insert("retry-after", "2".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(2)));
        h.insert("retry-after-ms", "250".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_millis(250)));
        let mut d = reqwest::header::HeaderMap::new();
        d.insert(
            "retry-after",
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&d), Some(Duration::ZERO));
        d.insert("retry-after", "soon".parse().unwrap());
        assert_eq!(retry_after(&d), None);
    }
}

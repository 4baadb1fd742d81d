//! The query string of `GET /invocations`: parsed and validated without I/O, so a bad listing
//! request is a `400` with a JSON body before anything is read.

use crate::http::ApiError;
use durable_protocol::{HandlerName, ObjectKey, ServiceName, Status};
use durable_store::listing::Position;
use std::time::Duration;

/// The page size when none is asked for, and the largest one allowed.
pub const DEFAULT_LIMIT: usize = 50;
pub const MAX_LIMIT: usize = 1000;

/// A time bound of a listing: an instant, or a distance back from now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeBound {
    /// Milliseconds since the Unix epoch.
    At(u64),
    /// This long before now (`30s`, `15m`, `2h`, `7d`).
    Ago(Duration),
}

impl TimeBound {
    /// The instant (ms) this bound names, seen at `now_ms`.
    pub fn resolve(self, now_ms: u64) -> u64 {
        match self {
            TimeBound::At(ms) => ms,
            TimeBound::Ago(d) => now_ms.saturating_sub(d.as_millis() as u64),
        }
    }

    /// Parses `1764000000000` (ms), `2026-12-01T10:00:00Z` (UTC) or a distance `90s`, `15m`,
    /// `2h`, `7d`.
    pub fn parse(text: &str) -> Result<Self, String> {
        if let Ok(ms) = text.parse::<u64>() {
            return Ok(TimeBound::At(ms));
        }
        if let Some(ms) = parse_rfc3339_utc(text) {
            return Ok(TimeBound::At(ms));
        }
        let split = text
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len());
        let (number, unit) = text.split_at(split);
        let amount: u64 = number
            .parse()
            .map_err(|_| format!("{text:?} is not a time: use ms since the epoch, an RFC 3339 UTC time or a distance like 15m, 2h, 7d"))?;
        let secs = match unit {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            _ => {
                return Err(format!(
                    "{text:?} has an unknown unit {unit:?}: use s, m, h or d"
                ))
            }
        };
        Ok(TimeBound::Ago(Duration::from_secs(
            amount.saturating_mul(secs),
        )))
    }
}

/// `YYYY-MM-DDTHH:MM:SS[.fff]Z` as ms since the epoch (UTC only: what the CLI and the
/// console send).
fn parse_rfc3339_utc(text: &str) -> Option<u64> {
    let text = text.strip_suffix('Z')?;
    let (date, time) = text.split_once('T')?;
    let mut d = date.split('-').map(|p| p.parse::<i64>().ok());
    let (y, mo, da) = (d.next()??, d.next()??, d.next()??);
    let (hms, frac) = time.split_once('.').unwrap_or((time, ""));
    let mut t = hms.split(':').map(|p| p.parse::<i64>().ok());
    let (h, mi, se) = (t.next()??, t.next()??, t.next()??);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&da) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let ms: i64 = match frac.len() {
        0 => 0,
        _ => format!("{:0<3}", &frac[..frac.len().min(3)]).parse().ok()?,
    };
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + da - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(((days * 24 + h) * 60 + mi) * 60 + se)
        .ok()
        .map(|s| s * 1000 + ms as u64)
}

/// A validated `GET /invocations` query.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ListParams {
    pub services: Vec<ServiceName>,
    pub handler: Option<HandlerName>,
    pub statuses: Vec<Status>,
    pub key: Option<ObjectKey>,
    pub since: Option<TimeBound>,
    pub until: Option<TimeBound>,
    pub limit: Option<usize>,
    pub cursor: Option<Position>,
}

impl ListParams {
    /// The window `[since, until]` in ms at `now_ms` (`since` defaults to `default_back` ago);
    /// `since` after `until` is a `400`.
    pub fn window(&self, now_ms: u64, default_back: Duration) -> Result<(u64, u64), ApiError> {
        let until = self.until.map_or(now_ms, |b| b.resolve(now_ms));
        let since = self
            .since
            .unwrap_or(TimeBound::Ago(default_back))
            .resolve(now_ms);
        if since > until {
            return Err(ApiError::bad_request(
                "invalid_window",
                format!("since ({since} ms) is after until ({until} ms)"),
            ));
        }
        Ok((since, until))
    }
}

/// Parses the raw query string of `GET /invocations`: `service`, `status` (comma-separated
/// or repeated), `handler`, `key`, `since`, `until`, `limit` (1 to 1000), `cursor`.
pub fn list_params(raw: &str) -> Result<ListParams, ApiError> {
    let mut p = ListParams::default();
    for pair in raw.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = decode(value)?;
        let bad = |code: &'static str, why: String| ApiError::bad_request(code, why);
        match name {
            "service" => {
                for s in value.split(',').filter(|s| !s.is_empty()) {
                    p.services.push(ServiceName::new(s).map_err(|e| {
                        ApiError::not_found("unknown_service", format!("no such service: {e}"))
                    })?);
                }
            }
            "status" => {
                for s in value.split(',').filter(|s| !s.is_empty()) {
                    p.statuses.push(Status::parse(s).ok_or_else(|| {
                        bad(
                            "invalid_status",
                            format!(
                                "unknown status {s:?}: use queued, running, suspended, paused, \
                                 completed, failed, cancelled or killed"
                            ),
                        )
                    })?);
                }
            }
            "handler" => {
                p.handler = Some(
                    HandlerName::new(&value).map_err(|e| bad("invalid_handler", e.to_string()))?,
                );
            }
            "key" => {
                p.key =
                    Some(ObjectKey::new(&value).map_err(|e| bad("invalid_key", e.to_string()))?);
            }
            "since" => {
                p.since = Some(TimeBound::parse(&value).map_err(|e| bad("invalid_since", e))?);
            }
            "until" => {
                p.until = Some(TimeBound::parse(&value).map_err(|e| bad("invalid_until", e))?);
            }
            "limit" => {
                let limit = value
                    .parse::<usize>()
                    .ok()
                    .filter(|l| (1..=MAX_LIMIT).contains(l))
                    .ok_or_else(|| {
                        bad(
                            "invalid_limit",
                            format!("limit {value:?} is not a number from 1 to {MAX_LIMIT}"),
                        )
                    })?;
                p.limit = Some(limit);
            }
            "cursor" => {
                p.cursor =
                    Some(Position::from_cursor(&value).map_err(|e| bad("invalid_cursor", e))?);
            }
            other => {
                return Err(bad(
                    "unknown_parameter",
                    format!(
                        "unknown query parameter {other:?}: use service, handler, status, key, \
                         since, until, limit or cursor"
                    ),
                ))
            }
        }
    }
    Ok(p)
}

/// Decodes `%XX` escapes (and `+` as a space) of one query value.
fn decode(value: &str) -> Result<String, ApiError> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = value
                    .get(i + 1..i + 3)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| {
                        ApiError::bad_request("invalid_query", format!("bad escape in {value:?}"))
                    })?;
                out.push(hex);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out)
        .map_err(|_| ApiError::bad_request("invalid_query", format!("{value:?} is not UTF-8")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_parameter() {
        let p = list_params(
            "service=a,b&status=running&status=failed&handler=h&key=k%40x&since=15m&until=1764000000000&limit=10",
        )
        .unwrap();
        assert_eq!(p.services.len(), 2);
        assert_eq!(p.statuses, vec![Status::Running, Status::Failed]);
        assert_eq!(p.key.unwrap().as_str(), "k@x");
        assert_eq!(p.since, Some(TimeBound::Ago(Duration::from_secs(900))));
        assert_eq!(p.until, Some(TimeBound::At(1_764_000_000_000)));
        assert_eq!(p.limit, Some(10));
    }

    #[test]
    fn refuses_bad_queries_with_their_codes() {
        for (query, code) in [
            ("limit=0", "invalid_limit"),
            ("limit=100000", "invalid_limit"),
            ("limit=x", "invalid_limit"),
            ("cursor=zz", "invalid_cursor"),
            ("status=sleeping", "invalid_status"),
            ("since=yesterday", "invalid_since"),
            ("until=3w", "invalid_until"),
            ("colour=red", "unknown_parameter"),
            ("key=%zz", "invalid_query"),
        ] {
            let e = list_params(query).unwrap_err();
            assert_eq!(e.code, code, "{query}");
            assert_eq!(e.status, 400, "{query}");
        }
        let p = list_params("since=1000&until=999").unwrap();
        let e = p.window(5000, Duration::from_secs(1)).unwrap_err();
        assert_eq!(e.code, "invalid_window");
    }

    #[test]
    fn reads_utc_times() {
        assert_eq!(
            TimeBound::parse("2025-11-24T16:00:00Z").unwrap(),
            TimeBound::At(1_764_000_000_000)
        );
        assert_eq!(
            TimeBound::parse("1970-01-01T00:00:01.5Z").unwrap(),
            TimeBound::At(1500)
        );
    }
}

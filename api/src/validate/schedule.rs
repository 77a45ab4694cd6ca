//! Cron expressions, IANA time zones and durations.

use std::time::Duration;

use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};

/// Parse a five-field cron expression (or a macro such as `@daily`) the way Kubernetes
/// CronJobs read it: no seconds field, no year field.
pub fn parse_cron(expr: &str) -> Result<Cron, String> {
    if expr.trim_start().starts_with("TZ=") || expr.contains("CRON_TZ=") {
        return Err(format!(
            "{expr:?}: set the time zone in the timeZone field, not inside the cron expression"
        ));
    }
    CronParser::builder()
        .seconds(Seconds::Disallowed)
        .year(Year::Disallowed)
        .build()
        .parse(expr)
        .map_err(|e| {
            format!("{expr:?} is not a valid cron expression (minute hour day-of-month month day-of-week): {e}")
        })
}

/// The first time `cron` fires strictly after `after` (unix seconds), reading the expression in
/// `time_zone` (UTC when unset), as unix seconds.
pub fn next_fire(cron: &Cron, time_zone: Option<&str>, after: i64) -> Result<i64, String> {
    let tz = match time_zone {
        Some(name) => parse_time_zone(name)?,
        None => chrono_tz::UTC,
    };
    let start = chrono::DateTime::from_timestamp(after, 0)
        .ok_or_else(|| format!("{after} is not a representable time"))?
        .with_timezone(&tz);
    cron.find_next_occurrence(&start, false)
        .map(|t| t.timestamp())
        .map_err(|e| format!("no next time for the cron expression: {e}"))
}

/// Parse an IANA time zone name such as `Europe/Paris`.
pub fn parse_time_zone(name: &str) -> Result<chrono_tz::Tz, String> {
    name.parse::<chrono_tz::Tz>()
        .map_err(|_| format!("{name:?} is not an IANA time zone name (for example Europe/Paris)"))
}

/// Parse a duration such as `90s`, `30m` or `1h30m`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("{text:?} is not a duration like 30s, 15m or 1h30m");
    if text.is_empty() {
        return Err(bad());
    }
    let mut total: u64 = 0;
    let mut number = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit = match c {
            'h' => 3600,
            'm' => 60,
            's' => 1,
            _ => return Err(bad()),
        };
        let n: u64 = number.parse().map_err(|_| bad())?;
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(bad)?;
        number.clear();
    }
    if !number.is_empty() || total == 0 {
        return Err(bad());
    }
    Ok(Duration::from_secs(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_fire_follows_the_time_zone() {
        // 2026-11-30T10:00:00Z
        let t = 1_796_032_800;
        let hourly = parse_cron("0 * * * *").expect("valid");
        assert_eq!(
            next_fire(&hourly, None, t).expect("next"),
            t + 3600,
            "strictly after"
        );
        let daily = parse_cron("30 6 * * *").expect("valid");
        // 06:30 in Paris (UTC+1 in winter) is 05:30Z the next day
        assert_eq!(
            next_fire(&daily, Some("Europe/Paris"), t).expect("next"),
            t + 19 * 3600 + 1800
        );
        assert!(next_fire(&daily, Some("Mars/Base"), t).is_err());
    }

    #[test]
    fn cron_accepts_kubernetes_forms() {
        for ok in [
            "* * * * *",
            "*/5 0-6 * * MON-FRI",
            "0 3 1 * *",
            "@daily",
            "@hourly",
        ] {
            assert!(parse_cron(ok).is_ok(), "{ok} should parse");
        }
    }

    #[test]
    fn cron_rejects_bad_forms() {
        for bad in [
            "",
            "* * * *",
            "61 * * * *",
            "0 0 * * * *",
            "every day",
            "TZ=UTC * * * * *",
        ] {
            let err = parse_cron(bad).expect_err(bad);
            assert!(err.contains(bad.trim()) || bad.is_empty(), "{err}");
        }
    }

    #[test]
    fn time_zones() {
        assert!(parse_time_zone("Europe/Paris").is_ok());
        assert!(parse_time_zone("UTC").is_ok());
        assert!(parse_time_zone("Mars/Olympus").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        for bad in ["", "10", "1d", "m", "0s", "1h30"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}

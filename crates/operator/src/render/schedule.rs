//! Validation of `spec.schedule`, in the dialect the Kubernetes API server accepts.
//!
//! A small strict validator rather than a crate: the API server validates CronJob schedules
//! with robfig/cron's standard parser (five fields, names of months and days, `?`, and the
//! `@hourly`-style macros), and the maintained Rust parsers accept other dialects (`cron`
//! requires a seconds field; `croner` also takes seconds and Quartz's `L`, `W` and `#`). A
//! schedule such a crate accepted but the API server refused would only fail when the CronJob
//! is applied, with the API server's message instead of one naming `spec.schedule`; this
//! checks exactly the standard dialect, and nothing needs the next run time computed.

/// One field of the five: its name (for messages), bounds and value names.
struct Field {
    name: &'static str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
}

const MONTHS: &[&str] = &[
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const DAYS: &[&str] = &["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

const FIELDS: [Field; 5] = [
    Field {
        name: "minute",
        min: 0,
        max: 59,
        names: &[],
    },
    Field {
        name: "hour",
        min: 0,
        max: 23,
        names: &[],
    },
    Field {
        name: "day of month",
        min: 1,
        max: 31,
        names: &[],
    },
    Field {
        name: "month",
        min: 1,
        max: 12,
        names: MONTHS,
    },
    Field {
        name: "day of week",
        min: 0,
        max: 6,
        names: DAYS,
    },
];

const MACROS: &[&str] = &[
    "@yearly",
    "@annually",
    "@monthly",
    "@weekly",
    "@daily",
    "@midnight",
    "@hourly",
];

/// Checks `schedule`; the error says what is wrong, in words for the resource's author.
pub(crate) fn validate(schedule: &str) -> Result<(), String> {
    let trimmed = schedule.trim();
    if trimmed.starts_with("TZ=") || trimmed.starts_with("CRON_TZ=") {
        return Err(
            "a time zone inside the schedule is not supported by Kubernetes; set \
                    spec.timeZone (e.g. Europe/Berlin) and leave it out of the schedule"
                .into(),
        );
    }
    if trimmed.starts_with('@') {
        return if MACROS.contains(&trimmed.to_ascii_lowercase().as_str()) {
            Ok(())
        } else {
            Err(format!(
                "unknown macro; use one of {} or five fields such as `0 2 * * *`",
                MACROS.join(", ")
            ))
        };
    }
    let fields: Vec<&str> = trimmed.split_whitespace().collect();
    if fields.len() != FIELDS.len() {
        return Err(format!(
            "it has {} fields; a schedule has five (minute hour day-of-month month \
             day-of-week), e.g. `0 2 * * *` for 02:00 every day, with no seconds field",
            fields.len()
        ));
    }
    for (text, field) in fields.iter().zip(&FIELDS) {
        for part in text.split(',') {
            check_part(part, field).map_err(|e| format!("{} field `{text}`: {e}", field.name))?;
        }
    }
    Ok(())
}

/// One comma-separated part: `*`, `?`, `N`, `N-M`, each optionally followed by `/STEP`.
fn check_part(part: &str, field: &Field) -> Result<(), String> {
    let (range, step) = match part.split_once('/') {
        Some((range, step)) => (range, Some(step)),
        None => (part, None),
    };
    if let Some(step) = step {
        match step.parse::<u32>() {
            Ok(0) => return Err("a step must be 1 or more".into()),
            Ok(_) => {}
            Err(_) => return Err(format!("step `{step}` is not a number")),
        }
    }
    if range == "*" || range == "?" {
        return Ok(());
    }
    match range.split_once('-') {
        Some((from, to)) => {
            let from = value(from, field)?;
            let to = value(to, field)?;
            if from > to {
                return Err(format!("the range starts after it ends ({from} > {to})"));
            }
        }
        None => {
            value(range, field)?;
        }
    }
    Ok(())
}

fn value(text: &str, field: &Field) -> Result<u32, String> {
    let lower = text.to_ascii_lowercase();
    if let Some(index) = field.names.iter().position(|n| *n == lower) {
        let index = u32::try_from(index).unwrap_or(u32::MAX);
        return Ok(field.min + index);
    }
    let number: u32 = text.parse().map_err(|_| {
        if text.is_empty() {
            "an empty value".to_owned()
        } else if field.names.is_empty() {
            format!("`{text}` is not a number")
        } else {
            format!(
                "`{text}` is neither a number nor one of {}",
                field.names.join(", ")
            )
        }
    })?;
    if number < field.min || number > field.max {
        return Err(format!("{number} is outside {}-{}", field.min, field.max));
    }
    Ok(number)
}

#[cfg(test)]
mod tests {
    use super::validate;

    #[test]
    fn what_kubernetes_accepts_is_accepted() {
        for ok in [
            "0 2 * * *",
            "*/15 * * * *",
            "0 0-23/6 * * MON-FRI",
            "30 1 1,15 * ?",
            "0 3 * jan,jul sun",
            "5/10 * * * *",
            "@daily",
            "@Hourly",
            "  0 2 * * *  ",
        ] {
            assert_eq!(validate(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn what_kubernetes_refuses_is_refused_with_the_reason() {
        for (bad, reason) in [
            ("0 0 2 * * *", "it has 6 fields"),
            ("0 2 * *", "it has 4 fields"),
            ("60 * * * *", "minute field `60`: 60 is outside 0-59"),
            ("0 24 * * *", "hour field `24`: 24 is outside 0-23"),
            ("0 0 0 * *", "day of month field `0`: 0 is outside 1-31"),
            ("0 0 * 13 *", "month field `13`"),
            ("0 0 * * 7", "day of week field `7`: 7 is outside 0-6"),
            ("*/0 * * * *", "a step must be 1 or more"),
            ("0 5-1 * * *", "the range starts after it ends (5 > 1)"),
            ("0 2 L * *", "`L` is not a number"),
            (
                "0 2 * * MON#2",
                "`MON#2` is neither a number nor one of sun",
            ),
            ("@every 1h", "unknown macro"),
            ("CRON_TZ=UTC 0 2 * * *", "set spec.timeZone"),
            ("0 2 ,1 * *", "an empty value"),
        ] {
            let err = validate(bad).expect_err(bad);
            assert!(err.contains(reason), "{bad}: {err}");
        }
    }
}

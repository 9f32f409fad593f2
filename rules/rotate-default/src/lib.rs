//! Built-in rule `rotate-default`: when to roll a new secret version out.
//!
//! Decision order:
//! 1. no Secret yet (`current` is null) -> `sync` (a missing Secret is never held back);
//! 2. same data digest -> `skip` ("data unchanged");
//! 3. `requireStage` set and the candidate lacks that stage -> `skip`;
//! 4. `minAgeMinutes` set and the candidate's `createTime` is younger -> `defer` until it is old
//!    enough;
//! 5. `windows` set and `now` is in none of them -> `defer` until the next window opens;
//! 6. otherwise `sync`, with `restart` as configured.
//!
//! Config (all optional): `{"requireStage": "ACSCurrent", "minAgeMinutes": 30,
//! "windows": ["* 2-4 * * 1-5"], "restart": true}`. A window is a 5-field cron expression in
//! UTC (`minute hour day-of-month month day-of-week`): a rollout may happen during every minute
//! it matches. Fields take `*`, numbers, `a-b`, lists `a,b`, steps `*/n` and `a-b/n`, and
//! `JAN`..`DEC` / `SUN`..`SAT`; day-of-week 0 and 7 are Sunday; when both day fields are
//! restricted a day matches if either does (as in Vixie cron).

mod cron;

use kmsync_guest_sdk::time::{format_rfc3339, parse_rfc3339};
use kmsync_guest_sdk::{RotateAction, RotateDecision, RotateInput, RuleError, Value, rule};
use serde::Deserialize;

pub use cron::Cron;

/// Longest `requeueAfter` the ABI allows (7 days), in seconds.
const MAX_REQUEUE: u64 = 7 * 24 * 3600;

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Config {
    #[serde(default)]
    require_stage: Option<String>,
    #[serde(default)]
    min_age_minutes: Option<u32>,
    #[serde(default)]
    windows: Vec<String>,
    #[serde(default)]
    restart: bool,
}

struct Parsed {
    config: Config,
    windows: Vec<Cron>,
}

fn parse_config(config: Value) -> Result<Parsed, RuleError> {
    let config: Config = if config.is_null() {
        Config::default()
    } else {
        serde_json::from_value(config).map_err(|e| {
            RuleError::invalid_config(format!(
                "expected {{\"requireStage\", \"minAgeMinutes\", \"windows\", \"restart\"}}: {e}"
            ))
        })?
    };
    let windows = config
        .windows
        .iter()
        .enumerate()
        .map(|(i, w)| {
            Cron::parse(w)
                .map_err(|e| RuleError::invalid_config(format!("windows[{i}] {w:?}: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Parsed { config, windows })
}

fn decision(action: RotateAction, requeue_after: Option<u64>, reason: String) -> RotateDecision {
    RotateDecision {
        action,
        requeue_after,
        restart: false,
        reason,
    }
}

fn rotate(input: RotateInput) -> Result<RotateDecision, RuleError> {
    let Parsed { config, windows } = parse_config(input.config)?;
    let candidate = &input.candidate;
    let Some(current) = &input.current else {
        return Ok(decision(
            RotateAction::Sync,
            None,
            "initial sync: the Secret does not exist yet".into(),
        ));
    };
    if current.digest == candidate.digest {
        return Ok(decision(RotateAction::Skip, None, "data unchanged".into()));
    }
    if let Some(stage) = &config.require_stage
        && !candidate.version_stages.iter().any(|s| s == stage)
    {
        return Ok(decision(
            RotateAction::Skip,
            None,
            format!("version {} is not in stage {stage}", candidate.version_id),
        ));
    }
    let now = parse_rfc3339(&input.now).ok_or_else(|| {
        RuleError::invalid_input(format!("now {:?} is not an RFC 3339 time", input.now))
    })?;
    if let Some(minutes) = config.min_age_minutes {
        match candidate.create_time.as_deref().map(parse_rfc3339) {
            Some(Some(created)) => {
                let ready = created + i64::from(minutes) * 60;
                if now < ready {
                    let wait = ((ready - now) as u64).clamp(1, MAX_REQUEUE);
                    return Ok(decision(
                        RotateAction::Defer,
                        Some(wait),
                        format!(
                            "version {} is younger than {minutes} minutes; rolling out after {}",
                            candidate.version_id,
                            format_rfc3339(ready)
                        ),
                    ));
                }
            }
            Some(None) => {
                return Err(RuleError::invalid_input(format!(
                    "candidate createTime {:?} is not an RFC 3339 time",
                    candidate.create_time.as_deref().unwrap_or_default()
                )));
            }
            None => kmsync_guest_sdk::log::warn(
                "minAgeMinutes is set but the candidate has no createTime; not waiting",
            ),
        }
    }
    if !windows.is_empty() && !windows.iter().any(|w| w.matches(now)) {
        let next = windows.iter().filter_map(|w| w.next_match(now)).min();
        return Ok(match next {
            Some(at) => decision(
                RotateAction::Defer,
                Some(((at - now) as u64).clamp(1, MAX_REQUEUE)),
                format!(
                    "outside the rollout windows; next window opens at {}",
                    format_rfc3339(at)
                ),
            ),
            None => decision(
                RotateAction::Defer,
                Some(MAX_REQUEUE),
                "outside the rollout windows; none opens within 7 days".into(),
            ),
        });
    }
    Ok(RotateDecision {
        action: RotateAction::Sync,
        requeue_after: None,
        restart: config.restart,
        reason: format!("data changed (version {})", candidate.version_id),
    })
}

fn validate_config(config: Value) -> Result<(), RuleError> {
    parse_config(config).map(|_| ())
}

rule! {
    name: "rotate-default",
    description: "Roll out when the data digest changes; optionally only a given stage, after a minimum age, inside UTC cron windows",
    config_schema: r#"{"type":["object","null"],"additionalProperties":false,"properties":{"requireStage":{"type":"string"},"minAgeMinutes":{"type":"integer","minimum":0},"windows":{"type":"array","items":{"type":"string","description":"5-field cron, UTC"}},"restart":{"type":"boolean"}}}"#,
    hooks: { rotate: rotate, validate_config: validate_config },
}

#[cfg(test)]
mod tests {
    use super::*;
    use kmsync_guest_sdk::testing;
    use kmsync_guest_sdk::{CandidateVersion, SyncedVersion};
    use serde_json::json;

    // 2026-03-13 is a Friday.
    const NOW: &str = "2026-03-13T10:00:00Z";

    fn input(current_digest: Option<&str>, config: Value) -> RotateInput {
        RotateInput {
            current: current_digest.map(|d| SyncedVersion {
                version_id: "v1".into(),
                digest: d.into(),
                synced_at: "2026-03-01T00:00:00Z".into(),
            }),
            candidate: CandidateVersion {
                version_id: "v2".into(),
                version_stages: vec!["ACSCurrent".into()],
                digest: "hmac:new".into(),
                create_time: Some("2026-03-13T09:50:00Z".into()),
            },
            now: NOW.into(),
            context: testing::context(),
            config,
        }
    }

    fn run(i: &RotateInput) -> RotateDecision {
        testing::rotate(&KMSYNC_RULE, i).unwrap()
    }

    #[test]
    fn metadata_is_valid() {
        assert_eq!(testing::check_metadata(&KMSYNC_RULE).name, "rotate-default");
    }

    #[test]
    fn first_sync_always_happens_even_outside_windows() {
        let d = run(&input(None, json!({"windows": ["0 3 * * *"]})));
        assert_eq!(d.action, RotateAction::Sync);
    }

    #[test]
    fn unchanged_digest_is_skipped_and_changed_digest_syncs() {
        assert_eq!(
            run(&input(Some("hmac:new"), Value::Null)).action,
            RotateAction::Skip
        );
        let d = run(&input(Some("hmac:old"), json!({"restart": true})));
        assert_eq!(d.action, RotateAction::Sync);
        assert!(d.restart);
        assert_eq!(d.reason, "data changed (version v2)");
    }

    #[test]
    fn required_stage_is_enforced() {
        let mut i = input(Some("hmac:old"), json!({"requireStage": "ACSCurrent"}));
        assert_eq!(run(&i).action, RotateAction::Sync);
        i.candidate.version_stages = vec!["ACSPending".into()];
        let d = run(&i);
        assert_eq!(d.action, RotateAction::Skip);
        assert_eq!(d.reason, "version v2 is not in stage ACSCurrent");
    }

    #[test]
    fn young_versions_are_deferred_until_old_enough() {
        let d = run(&input(Some("hmac:old"), json!({"minAgeMinutes": 30})));
        assert_eq!(d.action, RotateAction::Defer);
        assert_eq!(d.requeue_after, Some(20 * 60));
        assert!(d.reason.contains("2026-03-13T10:20:00Z"), "{}", d.reason);
        assert_eq!(
            run(&input(Some("hmac:old"), json!({"minAgeMinutes": 10}))).action,
            RotateAction::Sync
        );
    }

    #[test]
    fn outside_windows_defers_to_the_next_opening() {
        // Weekdays 02:00-04:59 UTC; now is Friday 10:00, so the next opening is Monday 02:00.
        let d = run(&input(
            Some("hmac:old"),
            json!({"windows": ["* 2-4 * * MON-FRI"]}),
        ));
        assert_eq!(d.action, RotateAction::Defer);
        let monday_2am = parse_rfc3339("2026-03-16T02:00:00Z").unwrap();
        let now = parse_rfc3339(NOW).unwrap();
        assert_eq!(d.requeue_after, Some((monday_2am - now) as u64));
        // Inside a window: sync.
        let d = run(&input(
            Some("hmac:old"),
            json!({"windows": ["0 3 * * *", "* 10 13 3 *"]}),
        ));
        assert_eq!(d.action, RotateAction::Sync);
    }

    #[test]
    fn bad_configs_are_rejected() {
        for (config, needle) in [
            (json!({"windows": ["* * *"]}), "windows[0]"),
            (json!({"windows": ["61 * * * *"]}), "windows[0]"),
            (json!({"minAgeMinutes": -1}), "minAgeMinutes"),
            (json!({"restrat": true}), "restrat"),
        ] {
            let err = testing::validate_config(&KMSYNC_RULE, config.clone()).unwrap_err();
            assert_eq!(err.code, "invalid_config");
            assert!(err.message.contains(needle), "{config}: {}", err.message);
        }
    }

    #[test]
    fn a_bad_clock_is_an_input_error() {
        let mut i = input(Some("hmac:old"), Value::Null);
        i.now = "soon".into();
        assert_eq!(
            testing::rotate(&KMSYNC_RULE, &i).unwrap_err().code,
            "invalid_input"
        );
    }
}

//! The emulator's in-memory world: principals, secrets with versions and stages, STS sessions,
//! seen nonces, counters and fault rules. Locks are `std::sync::Mutex`es held only for short,
//! non-async sections.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use chrono::{DateTime, Duration as ChronoDuration, Utc};

use super::counters::CounterSnapshot;
use super::faults::FaultState;
use super::instance::InstanceKey;
use super::oos::OosParameter;
use super::seed::{
    ACS_CURRENT, ACS_PREVIOUS, Seed, SeedError, SeedRotation, SeedSecret, VersionData,
};
use crate::value::SecretString;

/// Why an admin operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// No secret of that name.
    #[error("secret {name:?} does not exist")]
    SecretNotFound {
        /// Secret name.
        name: String,
    },
    /// No version with that id.
    #[error("secret {name:?} has no version {version_id:?}")]
    VersionNotFound {
        /// Secret name.
        name: String,
        /// Version id.
        version_id: String,
    },
    /// A secret or version that already exists.
    #[error("{what} already exists")]
    AlreadyExists {
        /// What.
        what: String,
    },
    /// An invalid fault rule.
    #[error("invalid fault rule #{index}: {reason}")]
    InvalidFault {
        /// 0-based position in the list.
        index: usize,
        /// Problem.
        reason: &'static str,
    },
    /// An invalid secret or version definition.
    #[error(transparent)]
    InvalidSeed(#[from] SeedError),
    /// No role with that ARN.
    #[error("role {arn:?} does not exist")]
    RoleNotFound {
        /// Role ARN.
        arn: String,
    },
    /// No OIDC provider with that ARN.
    #[error("OIDC provider {arn:?} does not exist")]
    OidcProviderNotFound {
        /// Provider ARN.
        arn: String,
    },
    /// An invalid metadata mode.
    #[error("invalid metadata mode: {reason}")]
    InvalidMetadataMode {
        /// Problem.
        reason: &'static str,
    },
}

impl AdminError {
    /// HTTP status for the admin API.
    pub fn status(&self) -> u16 {
        match self {
            Self::SecretNotFound { .. }
            | Self::VersionNotFound { .. }
            | Self::RoleNotFound { .. }
            | Self::OidcProviderNotFound { .. } => 404,
            Self::AlreadyExists { .. } => 409,
            Self::InvalidFault { .. } | Self::InvalidSeed(_) | Self::InvalidMetadataMode { .. } => {
                400
            }
        }
    }
}

#[derive(Debug)]
pub(crate) struct AccessKey {
    pub secret: SecretString,
    pub assumable_roles: Vec<String>,
    pub allowed_secrets: Option<Vec<String>>,
}

#[derive(Debug, Clone)]
pub(crate) struct Role {
    pub arn: String,
    pub allowed_secrets: Option<Vec<String>>,
    pub max_session_duration: u64,
    pub min_session_duration: u64,
    /// Lower-cased ARNs sessions of this role may assume.
    pub assumable_roles: Vec<String>,
    /// `(lower-cased provider ARN, subject patterns)`.
    pub oidc_trust: Vec<(String, Vec<String>)>,
}

#[derive(Debug, Clone)]
pub(crate) struct StsSession {
    pub secret: SecretString,
    pub token: SecretString,
    pub expiration: DateTime<Utc>,
    pub role_arn: String,
}

#[derive(Debug, Clone)]
pub(crate) struct Version {
    pub id: String,
    pub data: VersionData,
    pub stages: Vec<String>,
    pub create_time: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub(crate) struct Secret {
    pub name: String,
    pub secret_type: String,
    pub description: Option<String>,
    pub tags: BTreeMap<String, String>,
    pub create_time: DateTime<Utc>,
    pub update_time: DateTime<Utc>,
    pub extended_config: Option<String>,
    pub rotation: Option<SeedRotation>,
    pub dkms_instance_id: Option<String>,
    pub encryption_key_id: Option<String>,
    pub owing_service: Option<String>,
    pub planned_delete_time: Option<DateTime<Utc>>,
    pub versions: Vec<Version>,
}

impl Secret {
    fn from_seed(seed: &SeedSecret, now: DateTime<Utc>) -> Result<Self, SeedError> {
        super::seed::validate_secret(seed)?;
        let create_time = seed.create_time.unwrap_or(now);
        let mut versions = Vec::new();
        for v in seed.expanded_versions()? {
            let what = format!("secret {:?} version {:?}", seed.name, v.id);
            versions.push(Version {
                data: v.data().decode(&what)?,
                id: v.id,
                stages: v.stages,
                create_time: v.create_time.unwrap_or(create_time),
            });
        }
        versions.sort_by_key(|v| v.create_time);
        Ok(Self {
            name: seed.name.clone(),
            secret_type: seed.secret_type.clone(),
            description: seed.description.clone(),
            tags: seed.tags.clone(),
            create_time,
            update_time: versions
                .iter()
                .map(|v| v.create_time)
                .max()
                .unwrap_or(create_time),
            extended_config: seed.extended_config.as_ref().map(|v| match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            }),
            rotation: seed.rotation.clone(),
            dkms_instance_id: seed.dkms_instance_id.clone(),
            encryption_key_id: seed.encryption_key_id.clone(),
            owing_service: seed.owing_service.clone(),
            planned_delete_time: seed.planned_delete_time,
            versions,
        })
    }

    /// Whether the type is managed by another service (rotation fields, ExtendedConfig).
    pub fn is_managed(&self) -> bool {
        self.secret_type != "Generic"
    }

    /// Moves `stage` to version `target`; moving `ACSCurrent` labels the old current version
    /// `ACSPrevious` (as KMS rotation does).
    fn assign_stage(&mut self, stage: &str, target: usize) {
        let old_holder = self
            .versions
            .iter()
            .position(|v| v.stages.iter().any(|s| s == stage));
        if old_holder == Some(target) {
            return;
        }
        for v in &mut self.versions {
            v.stages.retain(|s| s != stage);
        }
        self.versions[target].stages.push(stage.to_owned());
        if stage == ACS_CURRENT
            && let Some(old) = old_holder
        {
            for v in &mut self.versions {
                v.stages.retain(|s| s != ACS_PREVIOUS);
            }
            self.versions[old].stages.push(ACS_PREVIOUS.to_owned());
        }
    }
}

/// How long a nonce is remembered, in minutes: a request's timestamp may be up to 15 minutes
/// early or late, so the same nonce could come back within 30 minutes of its first use.
const NONCE_MEMORY_MINUTES: i64 = 30;
/// How often nonces older than that are dropped, in seconds.
const NONCE_PRUNE_EVERY_SECONDS: i64 = 60;

/// Remembers nonces for the timestamp window (a reused nonce is refused). Older ones are
/// dropped once a minute, so the cache holds about 31 minutes of requests whatever the load,
/// and an insert never scans it more than once a minute.
#[derive(Debug, Default)]
pub(crate) struct NonceCache {
    seen: HashMap<(String, String), DateTime<Utc>>,
    next_prune: Option<DateTime<Utc>>,
}

impl NonceCache {
    /// Records `(key, nonce)`; false when it was seen within the last 30 minutes.
    pub fn insert(&mut self, key: &str, nonce: &str, now: DateTime<Utc>) -> bool {
        let horizon = now - ChronoDuration::minutes(NONCE_MEMORY_MINUTES);
        if self.next_prune.is_none_or(|at| now >= at) {
            self.seen.retain(|_, t| *t > horizon);
            self.next_prune = Some(now + ChronoDuration::seconds(NONCE_PRUNE_EVERY_SECONDS));
        }
        let k = (key.to_owned(), nonce.to_owned());
        match self.seen.get(&k) {
            Some(t) if *t > horizon => false,
            _ => {
                self.seen.insert(k, now);
                true
            }
        }
    }

    /// Nonces remembered.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.seen.len()
    }
}

/// All emulator state, shared by the service listener, the admin API and the Rust handle.
#[derive(Debug)]
pub struct State {
    pub(crate) region: String,
    pub(crate) account_id: String,
    pub(crate) keys: HashMap<String, AccessKey>,
    pub(crate) roles: HashMap<String, Role>,
    pub(crate) secrets: Mutex<BTreeMap<String, Secret>>,
    pub(crate) sessions: Mutex<HashMap<String, StsSession>>,
    pub(crate) nonces: Mutex<NonceCache>,
    pub(crate) counters: Mutex<CounterSnapshot>,
    /// Distinct secret names counted one by one under `GetSecretValue` (then `<other>`).
    pub(crate) secret_counter_names: usize,
    pub(crate) faults: Mutex<FaultState>,
    /// KMS instance ClientKeys by KeyId.
    pub(crate) client_keys: HashMap<String, InstanceKey>,
    /// OOS encrypted parameters by name.
    pub(crate) oos_parameters: BTreeMap<String, OosParameter>,
    /// OIDC providers, role revocations, the instance role and the metadata server.
    pub(crate) identity: super::identity::Identity,
}

/// Locks a mutex, recovering from poisoning (a panicked handler must not wedge the emulator).
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl State {
    /// Builds the state from a validated seed.
    ///
    /// # Errors
    /// [`SeedError`] when the seed is invalid.
    pub fn from_seed(seed: &Seed) -> Result<Self, SeedError> {
        seed.validate()?;
        let now = Utc::now();
        let keys = seed
            .access_keys
            .iter()
            .map(|k| {
                (
                    k.id.clone(),
                    AccessKey {
                        secret: k.secret.clone().into(),
                        assumable_roles: k
                            .assumable_roles
                            .iter()
                            .map(|r| r.to_ascii_lowercase())
                            .collect(),
                        allowed_secrets: k.allowed_secrets.clone(),
                    },
                )
            })
            .collect();
        let roles = seed
            .roles
            .iter()
            .map(|r| {
                (
                    r.arn.to_ascii_lowercase(),
                    Role {
                        arn: r.arn.clone(),
                        allowed_secrets: r.allowed_secrets.clone(),
                        max_session_duration: r.max_session_duration,
                        min_session_duration: r.min_session_duration,
                        assumable_roles: r
                            .assumable_roles
                            .iter()
                            .map(|a| a.to_ascii_lowercase())
                            .collect(),
                        oidc_trust: r
                            .oidc_trust
                            .iter()
                            .map(|t| (t.provider.to_ascii_lowercase(), t.subjects.clone()))
                            .collect(),
                    },
                )
            })
            .collect();
        let mut secrets = BTreeMap::new();
        for s in &seed.secrets {
            secrets.insert(s.name.clone(), Secret::from_seed(s, now)?);
        }
        let mut client_keys = HashMap::new();
        for k in &seed.client_keys {
            client_keys.insert(k.key_id.clone(), super::instance::build_key(k)?);
        }
        let mut oos_parameters = BTreeMap::new();
        for p in &seed.oos_parameters {
            oos_parameters.insert(p.name.clone(), super::oos::build_parameter(p, now)?);
        }
        Ok(Self {
            region: seed.region.clone(),
            account_id: seed.account_id.clone(),
            keys,
            roles,
            secrets: Mutex::new(secrets),
            sessions: Mutex::new(HashMap::new()),
            nonces: Mutex::new(NonceCache::default()),
            counters: Mutex::new(CounterSnapshot::default()),
            secret_counter_names: super::counters::MAX_COUNTER_NAMES,
            faults: Mutex::new(FaultState::default()),
            client_keys,
            oos_parameters,
            identity: super::identity::Identity::from_seed(seed),
        })
    }

    /// Adds a secret.
    ///
    /// # Errors
    /// [`AdminError::AlreadyExists`], [`AdminError::InvalidSeed`].
    pub fn create_secret(&self, secret: &SeedSecret) -> Result<(), AdminError> {
        let s = Secret::from_seed(secret, Utc::now())?;
        let mut secrets = lock(&self.secrets);
        if secrets.contains_key(&s.name) {
            return Err(AdminError::AlreadyExists {
                what: format!("secret {:?}", s.name),
            });
        }
        secrets.insert(s.name.clone(), s);
        Ok(())
    }

    /// Adds version `version_id` to secret `name`. `stages` defaults to `[ACSCurrent]`; giving a
    /// version `ACSCurrent` makes the old current version `ACSPrevious` (rotation).
    ///
    /// # Errors
    /// [`AdminError::SecretNotFound`], [`AdminError::AlreadyExists`].
    pub fn add_version(
        &self,
        name: &str,
        version_id: &str,
        data: VersionData,
        stages: Option<Vec<String>>,
    ) -> Result<(), AdminError> {
        let mut secrets = lock(&self.secrets);
        let secret = secrets
            .get_mut(name)
            .ok_or_else(|| AdminError::SecretNotFound {
                name: name.to_owned(),
            })?;
        if version_id.is_empty() || secret.versions.iter().any(|v| v.id == version_id) {
            return Err(AdminError::AlreadyExists {
                what: format!("secret {name:?} version {version_id:?}"),
            });
        }
        let now = Utc::now();
        secret.versions.push(Version {
            id: version_id.to_owned(),
            data,
            stages: Vec::new(),
            create_time: now,
        });
        secret.update_time = now;
        let target = secret.versions.len() - 1;
        for stage in stages.unwrap_or_else(|| vec![ACS_CURRENT.to_owned()]) {
            secret.assign_stage(&stage, target);
        }
        Ok(())
    }

    /// Moves `stage` to `version_id` of secret `name` (see [`add_version`](Self::add_version)
    /// for what moving `ACSCurrent` does).
    ///
    /// # Errors
    /// [`AdminError::SecretNotFound`], [`AdminError::VersionNotFound`].
    pub fn move_stage(&self, name: &str, stage: &str, version_id: &str) -> Result<(), AdminError> {
        let mut secrets = lock(&self.secrets);
        let secret = secrets
            .get_mut(name)
            .ok_or_else(|| AdminError::SecretNotFound {
                name: name.to_owned(),
            })?;
        let target = secret
            .versions
            .iter()
            .position(|v| v.id == version_id)
            .ok_or_else(|| AdminError::VersionNotFound {
                name: name.to_owned(),
                version_id: version_id.to_owned(),
            })?;
        secret.assign_stage(stage, target);
        secret.update_time = Utc::now();
        Ok(())
    }

    /// The ClientKey JSON and password of a KMS instance key the emulator generated (seeded
    /// without `certificate_pem`); `None` for unknown or certificate-only keys.
    pub fn client_key(&self, key_id: &str) -> Option<&crate::dkms::GeneratedClientKey> {
        self.client_keys.get(key_id)?.generated.as_ref()
    }

    /// Makes every STS session issued so far expired.
    pub fn expire_sts_sessions(&self) -> usize {
        let mut sessions = lock(&self.sessions);
        let past = Utc::now() - ChronoDuration::seconds(1);
        for s in sessions.values_mut() {
            s.expiration = past;
        }
        sessions.len()
    }

    /// Stages of each version of `name` (for tests): `(version id, stages)` by create time.
    pub fn version_stages(&self, name: &str) -> Option<Vec<(String, Vec<String>)>> {
        lock(&self.secrets).get(name).map(|s| {
            s.versions
                .iter()
                .map(|v| (v.id.clone(), v.stages.clone()))
                .collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> State {
        let seed = Seed::from_yaml_str(
            "secrets:\n  - name: s\n    versions:\n      - {id: v1, text: a, stages: [ACSPrevious], create_time: '2024-01-01T00:00:00Z'}\n      - {id: v2, text: b, stages: [ACSCurrent], create_time: '2024-01-02T00:00:00Z'}\n",
        )
        .unwrap();
        State::from_seed(&seed).unwrap()
    }

    #[test]
    fn adding_a_current_version_rotates_current_to_previous() {
        let st = state();
        st.add_version("s", "v3", VersionData::Text("c".into()), None)
            .unwrap();
        assert_eq!(
            st.version_stages("s").unwrap(),
            vec![
                ("v1".to_owned(), vec![]),
                ("v2".to_owned(), vec!["ACSPrevious".to_owned()]),
                ("v3".to_owned(), vec!["ACSCurrent".to_owned()]),
            ]
        );
        assert!(matches!(
            st.add_version("s", "v3", VersionData::Text("d".into()), None),
            Err(AdminError::AlreadyExists { .. })
        ));
    }

    #[test]
    fn moving_stages_back_and_custom_stages() {
        let st = state();
        st.move_stage("s", "ACSCurrent", "v1").unwrap();
        assert_eq!(
            st.version_stages("s").unwrap(),
            vec![
                ("v1".to_owned(), vec!["ACSCurrent".to_owned()]),
                ("v2".to_owned(), vec!["ACSPrevious".to_owned()]),
            ]
        );
        st.move_stage("s", "Pending", "v2").unwrap();
        assert_eq!(
            st.version_stages("s").unwrap()[1].1,
            vec!["ACSPrevious", "Pending"]
        );
        assert!(matches!(
            st.move_stage("s", "X", "v9"),
            Err(AdminError::VersionNotFound { .. })
        ));
        assert!(matches!(
            st.move_stage("t", "X", "v1"),
            Err(AdminError::SecretNotFound { .. })
        ));
    }

    #[test]
    fn nonces_are_single_use() {
        let mut n = NonceCache::default();
        let now = Utc::now();
        assert!(n.insert("ak", "n1", now));
        assert!(!n.insert("ak", "n1", now));
        assert!(n.insert("ak2", "n1", now));
        assert!(n.insert("ak", "n1", now + ChronoDuration::minutes(31)));
    }

    #[test]
    fn nonces_older_than_the_window_are_forgotten() {
        let mut n = NonceCache::default();
        let start = Utc::now();
        for i in 0..100 {
            assert!(n.insert("ak", &format!("n{i}"), start));
        }
        assert_eq!(n.len(), 100);
        assert!(n.insert("ak", "later", start + ChronoDuration::minutes(31)));
        assert_eq!(n.len(), 1);
    }
}

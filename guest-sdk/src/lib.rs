//! SDK for kmsync rule modules (rule ABI v1), and the one definition of the ABI's JSON types.
//!
//! A rule is a small Rust library crate built for `wasm32-unknown-unknown`. It writes plain
//! typed functions and registers them with [`rule!`]:
//!
//! ```
//! use kmsync_guest_sdk::{rule, DataValue, RuleError, TransformInput, TransformOutput};
//!
//! fn transform(input: TransformInput) -> Result<TransformOutput, RuleError> {
//!     let mut out = TransformOutput::default();
//!     out.data.insert("value".into(), DataValue::text(input.secret.data.expose()));
//!     Ok(out)
//! }
//!
//! rule! {
//!     name: "copy",
//!     description: "Stores the secret under the key `value`",
//!     config_schema: r#"{"type": "null"}"#,
//!     hooks: { transform: transform },
//! }
//!
//! // Natively (`cargo test`), the same JSON path the host uses:
//! let out = kmsync_guest_sdk::testing::transform(&KMSYNC_RULE, &kmsync_guest_sdk::testing::secret("s3cr3t")).unwrap();
//! assert_eq!(kmsync_guest_sdk::testing::text(&out, "value"), "s3cr3t");
//! ```
//!
//! On `wasm32`, [`rule!`] also emits the ABI: the marker export `kmsync_abi_v1`, the allocator
//! `kmsync_alloc`, one export per hook, and the `kmsync.metadata` custom section. A panic hook
//! reports the panic message to the host (import `kmsync.panic`) before the module traps, so
//! users see the message instead of "unreachable". Build with
//! `cargo build --target wasm32-unknown-unknown --profile rules-wasm` (see `docs/writing-rules.md`).

pub mod abi;
pub mod log;
mod secret;
pub mod time;

#[doc(hidden)]
#[path = "runtime.rs"]
pub mod __private;

pub use abi::{
    CandidateVersion, Context, DataType, DataValue, Envelope, FilterInput, FilterOutput, Hook,
    Item, Metadata, RotateAction, RotateDecision, RotateInput, RuleError, SecretInput,
    SyncedVersion, TransformInput, TransformOutput, ValidateConfigInput, ValidateConfigOutput,
    is_valid_secret_key,
};
pub use secret::SecretValue;
pub use serde_json::Value;

/// A rule: its metadata JSON and its typed hook functions. [`rule!`] defines one as
/// `KMSYNC_RULE` in the calling crate.
#[derive(Clone, Copy)]
pub struct RuleDef {
    /// The metadata JSON ([`Metadata`]), as written to the custom section.
    pub metadata: &'static str,
    /// `transform` hook.
    pub transform: Option<fn(TransformInput) -> Result<TransformOutput, RuleError>>,
    /// `filter` hook.
    pub filter: Option<fn(FilterInput) -> Result<FilterOutput, RuleError>>,
    /// `rotate` hook.
    pub rotate: Option<fn(RotateInput) -> Result<RotateDecision, RuleError>>,
    /// `validate_config` hook: gets the config, `Ok(())` when it is acceptable.
    pub validate_config: Option<fn(Value) -> Result<(), RuleError>>,
}

impl RuleDef {
    /// A rule with no hooks (the base [`rule!`] fills in).
    pub const EMPTY: RuleDef = RuleDef {
        metadata: "",
        transform: None,
        filter: None,
        rotate: None,
        validate_config: None,
    };

    /// Runs `hook` on an input JSON document and returns the envelope JSON, exactly as the wasm
    /// export does; `None` when the rule does not implement `hook`.
    pub fn call_json(&self, hook: Hook, input: &[u8]) -> Option<Vec<u8>> {
        use __private::{dispatch, dispatch_validate};
        Some(match hook {
            Hook::Transform => dispatch(input, self.transform?),
            Hook::Filter => dispatch(input, self.filter?),
            Hook::Rotate => dispatch(input, self.rotate?),
            Hook::ValidateConfig => dispatch_validate(input, self.validate_config?),
        })
    }

    /// Parses and checks the metadata JSON (see [`Metadata::validate`]).
    pub fn parsed_metadata(&self) -> Result<Metadata, String> {
        let m: Metadata = serde_json::from_str(self.metadata)
            .map_err(|e| format!("metadata is not valid JSON: {e}"))?;
        m.validate()?;
        Ok(m)
    }

    /// Hooks that have a function.
    pub fn hooks(&self) -> Vec<Hook> {
        let mut v = Vec::new();
        if self.transform.is_some() {
            v.push(Hook::Transform);
        }
        if self.filter.is_some() {
            v.push(Hook::Filter);
        }
        if self.rotate.is_some() {
            v.push(Hook::Rotate);
        }
        if self.validate_config.is_some() {
            v.push(Hook::ValidateConfig);
        }
        v
    }
}

/// Registers a rule's hooks and metadata.
///
/// ```ignore
/// kmsync_guest_sdk::rule! {
///     name: "my-rule",                         // [a-z0-9][-a-z0-9]*
///     description: "One line, no quotes",      // plain text (no `"` or `\`)
///     config_schema: r#"{"type": "object"}"#,  // optional JSON Schema of `config`
///     hooks: { transform: my_transform, validate_config: my_validate },
/// }
/// ```
///
/// Hook names are `transform`, `filter`, `rotate` and `validate_config`; each maps to a
/// function of the matching type in [`RuleDef`]. The version is the crate's version.
/// Defines `KMSYNC_METADATA: &str` and `KMSYNC_RULE: RuleDef` in the calling module, and on
/// `wasm32` the ABI exports and the metadata custom section. Use it once per crate, at the
/// crate root.
#[macro_export]
macro_rules! rule {
    (
        name: $name:literal,
        description: $desc:literal,
        $(config_schema: $schema:literal,)?
        hooks: { $first:ident : $first_fn:expr $(, $hook:ident : $hook_fn:expr)* $(,)? } $(,)?
    ) => {
        /// This rule's metadata JSON (also the `kmsync.metadata` custom section on wasm32).
        pub const KMSYNC_METADATA: &str = concat!(
            "{\"name\":\"", $name,
            "\",\"version\":\"", env!("CARGO_PKG_VERSION"),
            "\",\"abi\":\"1.0\",\"description\":\"", $desc,
            "\",\"hooks\":[\"", stringify!($first), "\""
            $(, ",\"", stringify!($hook), "\"")*
            , "]"
            $(, ",\"configSchema\":", $schema)?
            , "}"
        );

        /// This rule (metadata and hook functions); natively, call it through
        /// `kmsync_guest_sdk::testing`.
        pub const KMSYNC_RULE: $crate::RuleDef = $crate::RuleDef {
            metadata: KMSYNC_METADATA,
            $first: Some($first_fn),
            $($hook: Some($hook_fn),)*
            ..$crate::RuleDef::EMPTY
        };

        #[cfg(target_arch = "wasm32")]
        const _: () = {
            #[unsafe(export_name = "kmsync_abi_v1")]
            extern "C" fn __kmsync_abi_v1() {}

            #[unsafe(export_name = "kmsync_alloc")]
            extern "C" fn __kmsync_alloc(len: usize) -> *mut u8 {
                $crate::__private::alloc(len)
            }

            #[unsafe(link_section = "kmsync.metadata")]
            #[used]
            static __KMSYNC_METADATA_SECTION: [u8; KMSYNC_METADATA.len()] =
                $crate::__private::metadata_bytes::<{ KMSYNC_METADATA.len() }>(KMSYNC_METADATA);

            $crate::__kmsync_export_hook!($first);
            $($crate::__kmsync_export_hook!($hook);)*
        };
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __kmsync_export_hook {
    (transform) => {
        $crate::__kmsync_export_hook!(@export "transform", __kmsync_transform, Transform);
    };
    (filter) => {
        $crate::__kmsync_export_hook!(@export "filter", __kmsync_filter, Filter);
    };
    (rotate) => {
        $crate::__kmsync_export_hook!(@export "rotate", __kmsync_rotate, Rotate);
    };
    (validate_config) => {
        $crate::__kmsync_export_hook!(@export "validate_config", __kmsync_validate_config, ValidateConfig);
    };
    (@export $export:literal, $fn_name:ident, $hook:ident) => {
        #[unsafe(export_name = $export)]
        extern "C" fn $fn_name(ptr: *const u8, len: usize) -> u64 {
            $crate::__private::install_panic_hook();
            // SAFETY: the host wrote `len` bytes at `ptr` (allocated by `kmsync_alloc`).
            let input = unsafe { $crate::__private::input(ptr, len) };
            let out = KMSYNC_RULE
                .call_json($crate::abi::Hook::$hook, input)
                .unwrap_or_default();
            $crate::__private::finish(out)
        }
    };
}

/// Running rules natively, for `cargo test`: the same JSON path the wasm exports take, sample
/// inputs, and captured log lines.
#[cfg(not(target_arch = "wasm32"))]
pub mod testing {
    use serde::Serialize;
    use serde::de::DeserializeOwned;

    use crate::abi::*;
    use crate::log::Level;
    use crate::{RuleDef, SecretValue, Value};

    /// Serialises `input`, runs `hook` through [`RuleDef::call_json`] and parses the envelope.
    ///
    /// # Panics
    /// When the rule does not implement `hook` or its output is not a valid envelope of `O`
    /// (a bug the test should show).
    pub fn call<I: Serialize, O: DeserializeOwned>(
        rule: &RuleDef,
        hook: Hook,
        input: &I,
    ) -> Result<O, RuleError> {
        let input = serde_json::to_vec(input).expect("input serialises");
        let out = rule
            .call_json(hook, &input)
            .unwrap_or_else(|| panic!("the rule does not implement {hook}"));
        match serde_json::from_slice::<Envelope<O>>(&out) {
            Ok(Envelope::Ok(o)) => Ok(o),
            Ok(Envelope::Error(e)) => Err(e),
            Err(e) => panic!(
                "{hook} returned an invalid envelope: {e}: {}",
                String::from_utf8_lossy(&out)
            ),
        }
    }

    /// Runs `transform`.
    pub fn transform(rule: &RuleDef, input: &TransformInput) -> Result<TransformOutput, RuleError> {
        call(rule, Hook::Transform, input)
    }

    /// Runs `filter`.
    pub fn filter(rule: &RuleDef, input: &FilterInput) -> Result<FilterOutput, RuleError> {
        call(rule, Hook::Filter, input)
    }

    /// Runs `rotate`.
    pub fn rotate(rule: &RuleDef, input: &RotateInput) -> Result<RotateDecision, RuleError> {
        call(rule, Hook::Rotate, input)
    }

    /// Runs `validate_config`.
    pub fn validate_config(rule: &RuleDef, config: Value) -> Result<(), RuleError> {
        call::<_, ValidateConfigOutput>(rule, Hook::ValidateConfig, &ValidateConfigInput { config })
            .map(|_| ())
    }

    /// Parses and checks the rule's metadata and that its hooks match the functions given.
    ///
    /// # Panics
    /// With the reason, when the metadata is invalid.
    pub fn check_metadata(rule: &RuleDef) -> Metadata {
        let m = rule
            .parsed_metadata()
            .unwrap_or_else(|e| panic!("invalid rule metadata: {e}\n{}", rule.metadata));
        let mut declared = m.hooks.clone();
        declared.sort();
        assert_eq!(
            declared,
            rule.hooks(),
            "metadata hooks differ from the registered functions"
        );
        m
    }

    /// Log lines this thread's rule code wrote since the last call.
    pub fn take_logs() -> Vec<(Level, String)> {
        crate::log::take_captured()
    }

    /// A sample context: ExternalSecret `default/sample`, entry `spec.data[0]` with key `sample`.
    pub fn context() -> Context {
        Context {
            namespace: "default".into(),
            external_secret: "sample".into(),
            labels: Default::default(),
            annotations: Default::default(),
            item: Item {
                field: "data".into(),
                index: 0,
                key: "sample".into(),
                name: None,
            },
        }
    }

    /// A `transform` input for a `Generic` text secret named `sample` holding `data`, version
    /// `v1` in `ACSCurrent`, config `null`.
    pub fn secret(data: &str) -> TransformInput {
        TransformInput {
            secret: SecretInput {
                name: "sample".into(),
                secret_type: "Generic".into(),
                data_type: DataType::Text,
                data: SecretValue::from(data),
                version_id: "v1".into(),
                version_stages: vec!["ACSCurrent".into()],
                create_time: Some("2026-01-01T00:00:00Z".into()),
                extended_config: None,
            },
            context: context(),
            config: Value::Null,
        }
    }

    /// The text value stored under `key`.
    ///
    /// # Panics
    /// When the key is missing or holds a base64 value.
    pub fn text<'a>(out: &'a TransformOutput, key: &str) -> &'a str {
        match out.data.get(key) {
            Some(DataValue::Text(v)) => v.expose(),
            Some(DataValue::Base64(_)) => panic!("key {key} holds a base64 value"),
            None => panic!("no key {key} in {:?}", out.data.keys().collect::<Vec<_>>()),
        }
    }
}

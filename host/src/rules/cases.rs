//! Case files for `kmsync rules test`: a table of hook calls with the expected output or error.
//!
//! ```yaml
//! module: builtin:jmespath          # or a path to .wasm/.wat, relative to this file;
//!                                   # optional when the command line names the module
//! config: {jmesPath: [{path: name, objectAlias: name}]}   # default config of every case
//! cases:
//!   - name: string results are stored as-is
//!     hook: transform               # default: transform
//!     secretJson: {name: alice}     # sets secret.data to this JSON (or secretData: raw text)
//!     input: {secret: {type: Rds}}  # merged over the sample envelope (see `envelope::build`)
//!     config: {...}                 # replaces the default config
//!     expect:
//!       output: {data: {name: alice}}
//!   - name: a path matching nothing is an error
//!     config: {jmesPath: [{path: nope, objectAlias: x}]}
//!     expect:
//!       error: {kind: rule, code: path_not_found, messageContains: nope}
//! ```
//! `kind` is [`CallError::metric_label`] (`rule`, `timeout`, `panic`, `out_of_memory`, ...).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use serde_json::Value;

use super::envelope::{self, SampleContext, SampleSecret};
use super::{CallError, CallStats, Hook, LoadError, RuleEngine, RuleModule, builtin};

/// Why a case file could not be run (a failing case is not an error: see [`CaseReport`]).
#[derive(Debug, thiserror::Error)]
pub enum CaseError {
    /// The case file or the module file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The case file is not valid YAML of the expected shape.
    #[error("{path} is not a valid case file: {detail}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// serde_yaml's message (line and column).
        detail: String,
    },
    /// Neither the file nor the caller named a module.
    #[error("{path} names no module; add `module:` or pass one")]
    NoModule {
        /// The file.
        path: PathBuf,
    },
    /// A `.wat` module did not parse.
    #[error("{path} is not valid WebAssembly text: {detail}")]
    Wat {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        detail: String,
    },
    /// The module was refused.
    #[error("loading {module}: {source}")]
    Load {
        /// How the module was named.
        module: String,
        /// Why.
        #[source]
        source: LoadError,
    },
    /// A case is malformed (e.g. `expect` names neither output nor error).
    #[error("case {case:?}: {detail}")]
    Invalid {
        /// Case name.
        case: String,
        /// What is wrong.
        detail: String,
    },
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CaseFile {
    #[serde(default)]
    module: Option<String>,
    #[serde(default)]
    config: Option<Value>,
    cases: Vec<Case>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Case {
    name: String,
    #[serde(default = "default_hook")]
    hook: Hook,
    #[serde(default)]
    secret_json: Option<Value>,
    #[serde(default)]
    secret_data: Option<String>,
    #[serde(default)]
    input: Option<Value>,
    #[serde(default)]
    config: Option<Value>,
    expect: Expect,
}

fn default_hook() -> Hook {
    Hook::Transform
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    #[serde(default)]
    output: Option<Value>,
    #[serde(default)]
    error: Option<ExpectedError>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ExpectedError {
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    message_contains: Option<String>,
}

/// The result of one case.
#[derive(Debug)]
pub struct CaseOutcome {
    /// Case name.
    pub name: String,
    /// The hook called.
    pub hook: Hook,
    /// True when the result matched the expectation.
    pub passed: bool,
    /// For failures: a readable explanation (a `-expected/+actual` diff for outputs).
    pub detail: Option<String>,
    /// What the call used.
    pub stats: CallStats,
}

/// The results of a case file.
#[derive(Debug)]
pub struct CaseReport {
    /// The case file.
    pub file: PathBuf,
    /// The module as named (`builtin:NAME` or a path).
    pub module: String,
    /// One outcome per case, in file order.
    pub outcomes: Vec<CaseOutcome>,
}

impl CaseReport {
    /// Cases that passed.
    pub fn passed(&self) -> usize {
        self.outcomes.iter().filter(|o| o.passed).count()
    }

    /// Cases that failed.
    pub fn failed(&self) -> usize {
        self.outcomes.len() - self.passed()
    }
}

/// Loads a module named `builtin:NAME`, or a `.wasm` / `.wat` path (relative paths against
/// `base`).
///
/// Errors: [`CaseError::Read`], [`CaseError::Wat`], [`CaseError::Load`].
pub async fn load_module(
    engine: &RuleEngine,
    spec: &str,
    base: &Path,
) -> Result<Arc<RuleModule>, CaseError> {
    let load_err = |source| CaseError::Load {
        module: spec.to_owned(),
        source,
    };
    if let Some(name) = spec.strip_prefix("builtin:") {
        return engine.builtin(name).await.map_err(load_err);
    }
    let path = base.join(spec);
    let bytes = std::fs::read(&path).map_err(|source| CaseError::Read {
        path: path.clone(),
        source,
    })?;
    let bytes = if path.extension().is_some_and(|e| e == "wat") {
        wat::parse_bytes(&bytes)
            .map_err(|e| CaseError::Wat {
                path: path.clone(),
                detail: e.to_string(),
            })?
            .into_owned()
    } else {
        bytes
    };
    engine.load(&bytes).await.map_err(load_err)
}

/// Runs every case of `file` against `module_override` (a module spec, relative to the
/// current directory) or the file's own `module:` (relative to the file).
///
/// Errors: a [`CaseError`] when the file or module can not be used; failing cases are
/// reported in the [`CaseReport`].
pub async fn run_file(
    engine: &RuleEngine,
    file: &Path,
    module_override: Option<&str>,
) -> Result<CaseReport, CaseError> {
    let text = std::fs::read_to_string(file).map_err(|source| CaseError::Read {
        path: file.to_owned(),
        source,
    })?;
    let cases: CaseFile = serde_yaml_ng::from_str(&text).map_err(|e| CaseError::Parse {
        path: file.to_owned(),
        detail: e.to_string(),
    })?;
    let (spec, base) = match (module_override, &cases.module) {
        (Some(m), _) => (m.to_owned(), PathBuf::from(".")),
        (None, Some(m)) => (
            m.clone(),
            file.parent().map(Path::to_path_buf).unwrap_or_default(),
        ),
        (None, None) => {
            return Err(CaseError::NoModule {
                path: file.to_owned(),
            });
        }
    };
    let module = load_module(engine, &spec, &base).await?;
    let mut outcomes = Vec::with_capacity(cases.cases.len());
    for case in cases.cases {
        outcomes.push(run_case(&module, case, cases.config.as_ref()).await?);
    }
    Ok(CaseReport {
        file: file.to_owned(),
        module: spec,
        outcomes,
    })
}

async fn run_case(
    module: &RuleModule,
    case: Case,
    default_config: Option<&Value>,
) -> Result<CaseOutcome, CaseError> {
    let invalid = |detail: &str| CaseError::Invalid {
        case: case.name.clone(),
        detail: detail.into(),
    };
    let data = match (&case.secret_json, &case.secret_data) {
        (Some(_), Some(_)) => return Err(invalid("give secretJson or secretData, not both")),
        (Some(j), None) => j.to_string(),
        (None, Some(d)) => d.clone(),
        (None, None) => "{}".to_owned(),
    };
    let config = case
        .config
        .clone()
        .or_else(|| default_config.cloned())
        .unwrap_or(Value::Null);
    let mut input = envelope::build(
        case.hook,
        &SampleSecret::text(data),
        &SampleContext::default(),
        config,
    );
    if let Some(patch) = case.input.clone() {
        envelope::merge(&mut input, patch);
    }
    let raw = module.call_json(case.hook, &input).await;
    let (passed, detail) = match (&case.expect.output, &case.expect.error, &raw.result) {
        (Some(_), Some(_), _) | (None, None, _) => {
            return Err(invalid("expect needs exactly one of output or error"));
        }
        (Some(want), None, Ok(got)) => {
            if want == got {
                (true, None)
            } else {
                (false, Some(diff(&pretty(want), &pretty(got))))
            }
        }
        (Some(_), None, Err(e)) => (
            false,
            Some(format!("expected an output, got an error: {e}")),
        ),
        (None, Some(_), Ok(got)) => (
            false,
            Some(format!(
                "expected an error, got the output:\n{}",
                pretty(got)
            )),
        ),
        (None, Some(want), Err(e)) => match error_mismatch(want, e) {
            None => (true, None),
            Some(why) => (false, Some(why)),
        },
    };
    Ok(CaseOutcome {
        name: case.name,
        hook: case.hook,
        passed,
        detail,
        stats: raw.stats,
    })
}

fn error_mismatch(want: &ExpectedError, got: &CallError) -> Option<String> {
    let mut problems = Vec::new();
    if let Some(kind) = &want.kind
        && kind != got.metric_label()
    {
        problems.push(format!("kind: expected {kind}, got {}", got.metric_label()));
    }
    if let Some(code) = &want.code
        && Some(code.as_str()) != got.rule_code()
    {
        problems.push(format!(
            "code: expected {code}, got {}",
            got.rule_code().unwrap_or("(none)")
        ));
    }
    let message = got.to_string();
    if let Some(needle) = &want.message_contains
        && !message.contains(needle.as_str())
    {
        problems.push(format!("message does not contain {needle:?}"));
    }
    (!problems.is_empty()).then(|| format!("{}\n  the error was: {message}", problems.join("; ")))
}

/// Pretty JSON with object keys sorted (stable whatever serde_json's map order).
fn pretty(v: &Value) -> String {
    fn sorted(v: &Value) -> Value {
        match v {
            Value::Object(m) => {
                let mut keys: Vec<_> = m.keys().collect();
                keys.sort();
                Value::Object(
                    keys.into_iter()
                        .map(|k| (k.clone(), sorted(&m[k])))
                        .collect(),
                )
            }
            Value::Array(a) => Value::Array(a.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    serde_json::to_string_pretty(&sorted(v)).unwrap_or_default()
}

/// A line diff (`-` expected, `+` actual, two spaces for common lines).
pub fn diff(expected: &str, actual: &str) -> String {
    let a: Vec<&str> = expected.lines().collect();
    let b: Vec<&str> = actual.lines().collect();
    // Longest common subsequence table, from the end.
    let mut lcs = vec![vec![0u32; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut out = String::from("--- expected\n+++ actual\n");
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            out.push_str(&format!("  {}\n", a[i]));
            i += 1;
            j += 1;
        } else if i < a.len() && (j == b.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            out.push_str(&format!("- {}\n", a[i]));
            i += 1;
        } else {
            out.push_str(&format!("+ {}\n", b[j]));
            j += 1;
        }
    }
    out
}

/// The case files of the built-in rules (`rules/<name>/cases.yaml`), by rule name.
pub fn builtin_case_files(workspace: &Path) -> Vec<(String, PathBuf)> {
    builtin::names()
        .map(|n| {
            (
                n.to_owned(),
                workspace.join("rules").join(n).join("cases.yaml"),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_marks_changed_lines() {
        let d = diff(
            "{\n  \"a\": 1,\n  \"b\": 2\n}",
            "{\n  \"a\": 1,\n  \"b\": 3\n}",
        );
        assert_eq!(
            d,
            "--- expected\n+++ actual\n  {\n    \"a\": 1,\n-   \"b\": 2\n+   \"b\": 3\n  }\n"
        );
    }

    #[test]
    fn pretty_sorts_keys() {
        let v: Value = serde_json::from_str(r#"{"b":1,"a":{"d":1,"c":2}}"#).unwrap();
        assert_eq!(
            pretty(&v),
            "{\n  \"a\": {\n    \"c\": 2,\n    \"d\": 1\n  },\n  \"b\": 1\n}"
        );
    }
}

//! Load-time checks: is this a kmsync rule module of ABI v1 that this host can run?
//!
//! Order (each failure is its own [`LoadError`] variant): size, binary magic (WebAssembly core
//! module; never precompiled native code, never a component), the metadata custom section,
//! compilation (wasmtime validates), imports (functions from `kmsync` with the right types
//! only), the ABI marker, memory and allocator exports, declared hooks exported with the hook
//! signature.

use kmsync_guest_sdk::abi::{
    ABI_MAJOR, ABI_MINOR, ABI_VERSION, ALLOC_EXPORT, IMPORT_MODULE, MARKER_EXPORT, MARKER_PREFIX,
    MEMORY_EXPORT, METADATA_SECTION,
};
use kmsync_guest_sdk::{Hook, Metadata};
use wasmtime::{ExternType, FuncType, ValType};

use super::limits::RuleLimits;

/// Why a module was refused. Messages name the problem and what to do; they never contain
/// module bytes. Load failures are cached per sha256 like successes (the result depends only
/// on the bytes and the engine).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    /// Over `RuleLimits::max_module_bytes`.
    #[error("rule module is {bytes} bytes, over the limit of {limit} bytes")]
    TooLarge {
        /// Module size.
        bytes: u64,
        /// The limit.
        limit: u64,
    },
    /// Not WebAssembly at all.
    #[error("not a WebAssembly module (the file does not start with the \\0asm magic)")]
    NotWasm,
    /// An ELF / wasmtime precompiled artifact.
    #[error("precompiled native code is never accepted: load the .wasm module instead")]
    Precompiled,
    /// A component-model component.
    #[error(
        "this is a WebAssembly component; kmsync rules are core modules (build for wasm32-unknown-unknown)"
    )]
    Component,
    /// Unknown binary version.
    #[error("unsupported WebAssembly binary version {version}")]
    BinaryVersion {
        /// The version field of the header.
        version: u32,
    },
    /// Wasmtime could not validate or compile it.
    #[error("invalid WebAssembly module: {detail}")]
    Invalid {
        /// Wasmtime's validation message.
        detail: String,
    },
    /// An import from another module than `kmsync` (WASI, `env`, ...).
    #[error(
        "the module imports `{module}.{name}`; rule modules may import only from `kmsync` \
         (no WASI: build for wasm32-unknown-unknown, not wasm32-wasip1)"
    )]
    ForeignImport {
        /// Import module name.
        module: String,
        /// Import field name.
        name: String,
    },
    /// An import from `kmsync` that the host does not provide.
    #[error(
        "the module imports `kmsync.{name}`, which this host does not provide (ABI {ABI_VERSION})"
    )]
    UnknownHostFunction {
        /// Import field name.
        name: String,
    },
    /// A `kmsync` import with the wrong kind or type.
    #[error("the module imports `kmsync.{name}` as {found}, but the host provides {expected}")]
    ImportType {
        /// Import field name.
        name: String,
        /// What the host provides.
        expected: String,
        /// What the module asked for.
        found: String,
    },
    /// No `kmsync_abi_v*` export.
    #[error("not a kmsync rule module: it does not export the ABI marker `{MARKER_EXPORT}`")]
    MissingMarker,
    /// A marker or metadata of another ABI version.
    #[error(
        "the module targets rule ABI {found}; this host runs ABI {ABI_VERSION} (major {ABI_MAJOR}, minor up to {ABI_MINOR})"
    )]
    UnsupportedAbi {
        /// The ABI version the module declares.
        found: String,
    },
    /// A required export is missing.
    #[error("the module does not export `{name}`")]
    MissingExport {
        /// Export name.
        name: String,
    },
    /// An export with the wrong kind or type.
    #[error("the module exports `{name}` as {found}; expected {expected}")]
    ExportType {
        /// Export name.
        name: String,
        /// What the ABI requires.
        expected: String,
        /// What the module has.
        found: String,
    },
    /// The initial memory is already over the memory limit.
    #[error(
        "the module's initial memory of {initial_bytes} bytes is over the limit of {limit} bytes"
    )]
    MemoryTooLarge {
        /// Declared initial memory.
        initial_bytes: u64,
        /// The limit.
        limit: u64,
    },
    /// No metadata custom section.
    #[error(
        "the module has no `{METADATA_SECTION}` custom section (build it with the guest SDK's rule! macro)"
    )]
    MissingMetadata,
    /// The metadata section is not valid.
    #[error("the `{METADATA_SECTION}` custom section is invalid: {detail}")]
    BadMetadata {
        /// What is wrong (field names, JSON position; no module bytes).
        detail: String,
    },
    /// A hook listed in metadata is not exported.
    #[error("metadata lists the hook `{hook}` but the module does not export it")]
    MissingHook {
        /// The hook.
        hook: Hook,
    },
    /// `builtin(name)` with an unknown name.
    #[error("there is no built-in rule named `{name}` (built-ins: {known})")]
    UnknownBuiltin {
        /// The name asked for.
        name: String,
        /// Comma-separated built-in names.
        known: String,
    },
    /// Linking failed after all checks passed (a host bug, or an engine limit).
    #[error("the module could not be prepared for instantiation: {detail}")]
    Link {
        /// Wasmtime's message.
        detail: String,
    },
}

impl LoadError {
    /// The variant name in snake_case, for metrics labels and case files.
    pub fn metric_label(&self) -> &'static str {
        match self {
            LoadError::TooLarge { .. } => "too_large",
            LoadError::NotWasm => "not_wasm",
            LoadError::Precompiled => "precompiled",
            LoadError::Component => "component",
            LoadError::BinaryVersion { .. } => "binary_version",
            LoadError::Invalid { .. } => "invalid",
            LoadError::ForeignImport { .. } => "foreign_import",
            LoadError::UnknownHostFunction { .. } => "unknown_host_function",
            LoadError::ImportType { .. } => "import_type",
            LoadError::MissingMarker => "missing_marker",
            LoadError::UnsupportedAbi { .. } => "unsupported_abi",
            LoadError::MissingExport { .. } => "missing_export",
            LoadError::ExportType { .. } => "export_type",
            LoadError::MemoryTooLarge { .. } => "memory_too_large",
            LoadError::MissingMetadata => "missing_metadata",
            LoadError::BadMetadata { .. } => "bad_metadata",
            LoadError::MissingHook { .. } => "missing_hook",
            LoadError::UnknownBuiltin { .. } => "unknown_builtin",
            LoadError::Link { .. } => "link",
        }
    }
}

/// What `kmsync rules inspect` shows about a loaded module.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModuleInfo {
    /// Size of the wasm bytes.
    pub size_bytes: u64,
    /// Imports as `module.name` (all from `kmsync` once loaded).
    pub imports: Vec<String>,
    /// Exports as (name, kind: `func` / `memory` / `global` / `table`).
    pub exports: Vec<(String, &'static str)>,
    /// Initial linear memory, in bytes.
    pub initial_memory_bytes: u64,
}

/// The host functions of ABI v1: (name, params). None returns a value.
pub(crate) const HOST_FUNCTIONS: &[(&str, &[ValType])] = &[
    ("log", &[ValType::I32, ValType::I32, ValType::I32]),
    ("panic", &[ValType::I32, ValType::I32]),
];

/// Checks the header: a core wasm module, version 1.
pub(crate) fn check_header(bytes: &[u8], limits: &RuleLimits) -> Result<(), LoadError> {
    if bytes.len() as u64 > limits.max_module_bytes {
        return Err(LoadError::TooLarge {
            bytes: bytes.len() as u64,
            limit: limits.max_module_bytes,
        });
    }
    if bytes.starts_with(b"\x7fELF") {
        return Err(LoadError::Precompiled);
    }
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        return Err(LoadError::NotWasm);
    }
    let version = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
    match version {
        1 => Ok(()),
        // Components use version 0x0d (and a layer of 1) in the header.
        v if v & 0xffff == 0x0d => Err(LoadError::Component),
        v => Err(LoadError::BinaryVersion { version: v }),
    }
}

fn read_leb_u32(bytes: &[u8], pos: &mut usize) -> Option<u32> {
    let mut result: u32 = 0;
    for shift in (0..35).step_by(7) {
        let b = *bytes.get(*pos)?;
        *pos += 1;
        result |= u32::from(b & 0x7f).checked_shl(shift)?;
        if b & 0x80 == 0 {
            return Some(result);
        }
    }
    None
}

/// The payloads of every custom section named `name`, from a module whose header passed
/// [`check_header`]. `None` when the section structure is malformed.
pub(crate) fn custom_sections<'a>(bytes: &'a [u8], name: &str) -> Option<Vec<&'a [u8]>> {
    let mut pos = 8;
    let mut found = Vec::new();
    while pos < bytes.len() {
        let id = bytes[pos];
        pos += 1;
        let size = read_leb_u32(bytes, &mut pos)? as usize;
        let end = pos.checked_add(size).filter(|&e| e <= bytes.len())?;
        if id == 0 {
            let mut p = pos;
            let name_len = read_leb_u32(bytes, &mut p)? as usize;
            let name_end = p.checked_add(name_len).filter(|&e| e <= end)?;
            if &bytes[p..name_end] == name.as_bytes() {
                found.push(&bytes[name_end..end]);
            }
        }
        pos = end;
    }
    Some(found)
}

fn read_leb_u64(bytes: &[u8], pos: &mut usize) -> Option<u64> {
    let mut result: u64 = 0;
    for shift in (0..70).step_by(7) {
        let b = *bytes.get(*pos)?;
        *pos += 1;
        result |= u64::from(b & 0x7f).checked_shl(shift)?;
        if b & 0x80 == 0 {
            return Some(result);
        }
    }
    None
}

/// Checks the initial size of memories the module defines (memory section) against the cap,
/// before compiling: wasmtime would otherwise refuse it with a pooling-allocator message.
pub(crate) fn check_declared_memory(bytes: &[u8], limits: &RuleLimits) -> Result<(), LoadError> {
    let malformed = || LoadError::Invalid {
        detail: "malformed memory section".into(),
    };
    let mut pos = 8;
    while pos < bytes.len() {
        let id = bytes[pos];
        pos += 1;
        let size = read_leb_u32(bytes, &mut pos).ok_or_else(malformed)? as usize;
        let end = pos
            .checked_add(size)
            .filter(|&e| e <= bytes.len())
            .ok_or_else(malformed)?;
        if id == 5 {
            let mut p = pos;
            let count = read_leb_u32(bytes, &mut p).ok_or_else(malformed)?;
            for _ in 0..count {
                let flags = *bytes.get(p).ok_or_else(malformed)?;
                p += 1;
                // Bit 3 (0x08) announces a custom page size; only the default 64 KiB is
                // accounted here (wasmtime rejects the rest later if unsupported).
                let min = read_leb_u64(bytes, &mut p).ok_or_else(malformed)?;
                if flags & 0x01 != 0 {
                    read_leb_u64(bytes, &mut p).ok_or_else(malformed)?;
                }
                if flags & 0x08 != 0 {
                    read_leb_u32(bytes, &mut p).ok_or_else(malformed)?;
                }
                let initial = min.saturating_mul(super::limits::PAGE);
                if flags & 0x08 == 0 && initial > limits.memory_cap() {
                    return Err(LoadError::MemoryTooLarge {
                        initial_bytes: initial,
                        limit: limits.memory_cap(),
                    });
                }
            }
        }
        pos = end;
    }
    Ok(())
}

/// Reads and checks the metadata section (structure and ABI version).
pub(crate) fn read_metadata(bytes: &[u8]) -> Result<Metadata, LoadError> {
    let sections = custom_sections(bytes, METADATA_SECTION).ok_or_else(|| LoadError::Invalid {
        detail: "malformed section headers".into(),
    })?;
    let section = match sections.as_slice() {
        [] => return Err(LoadError::MissingMetadata),
        [one] => *one,
        _ => {
            return Err(LoadError::BadMetadata {
                detail: "the section appears more than once".into(),
            });
        }
    };
    let metadata: Metadata =
        serde_json::from_slice(section).map_err(|e| LoadError::BadMetadata {
            detail: e.to_string(),
        })?;
    // ABI_MINOR is 0 today and grows with additive ABI versions.
    #[allow(clippy::absurd_extreme_comparisons)]
    match metadata.abi_version() {
        Some((ABI_MAJOR, minor)) if minor <= ABI_MINOR => {}
        Some(_) => {
            return Err(LoadError::UnsupportedAbi {
                found: metadata.abi.clone(),
            });
        }
        None => {}
    }
    metadata
        .validate()
        .map_err(|detail| LoadError::BadMetadata { detail })?;
    Ok(metadata)
}

fn describe_func(ty: &FuncType) -> String {
    let list = |it: &mut dyn Iterator<Item = ValType>| {
        it.map(|t| t.to_string()).collect::<Vec<_>>().join(", ")
    };
    format!(
        "func ({}) -> ({})",
        list(&mut ty.params()),
        list(&mut ty.results())
    )
}

fn describe_extern(ty: &ExternType) -> String {
    match ty {
        ExternType::Func(f) => describe_func(f),
        ExternType::Memory(_) => "a memory".into(),
        ExternType::Global(_) => "a global".into(),
        ExternType::Table(_) => "a table".into(),
        ExternType::Tag(_) => "a tag".into(),
    }
}

fn func_matches(ty: &FuncType, params: &[ValType], results: &[ValType]) -> bool {
    ty.params().len() == params.len()
        && ty.results().len() == results.len()
        && ty.params().zip(params).all(|(a, b)| a.matches(b))
        && ty.results().zip(results).all(|(a, b)| a.matches(b))
}

fn expect_func(
    module: &wasmtime::Module,
    name: &str,
    params: &[ValType],
    results: &[ValType],
) -> Result<(), LoadError> {
    let Some(ty) = module.get_export(name) else {
        return Err(LoadError::MissingExport { name: name.into() });
    };
    match &ty {
        ExternType::Func(f) if func_matches(f, params, results) => Ok(()),
        other => Err(LoadError::ExportType {
            name: name.into(),
            expected: describe_func(&FuncType::new(
                module.engine(),
                params.iter().cloned(),
                results.iter().cloned(),
            )),
            found: describe_extern(other),
        }),
    }
}

/// Checks a compiled module against ABI v1 and returns what `inspect` shows.
pub(crate) fn check_module(
    module: &wasmtime::Module,
    metadata: &Metadata,
    size_bytes: u64,
    limits: &RuleLimits,
) -> Result<ModuleInfo, LoadError> {
    let mut imports = Vec::new();
    for import in module.imports() {
        let (m, n) = (import.module(), import.name());
        if m != IMPORT_MODULE {
            return Err(LoadError::ForeignImport {
                module: m.into(),
                name: n.into(),
            });
        }
        let Some((_, params)) = HOST_FUNCTIONS.iter().find(|(name, _)| *name == n) else {
            return Err(LoadError::UnknownHostFunction { name: n.into() });
        };
        let ty = import.ty();
        let ok = matches!(&ty, ExternType::Func(f) if func_matches(f, params, &[]));
        if !ok {
            return Err(LoadError::ImportType {
                name: n.into(),
                expected: describe_func(&FuncType::new(
                    module.engine(),
                    params.iter().cloned(),
                    [],
                )),
                found: describe_extern(&ty),
            });
        }
        imports.push(format!("{m}.{n}"));
    }

    let exports: Vec<(String, &'static str)> = module
        .exports()
        .map(|e| {
            let kind = match e.ty() {
                ExternType::Func(_) => "func",
                ExternType::Memory(_) => "memory",
                ExternType::Global(_) => "global",
                ExternType::Table(_) => "table",
                ExternType::Tag(_) => "tag",
            };
            (e.name().to_owned(), kind)
        })
        .collect();
    if !exports.iter().any(|(n, _)| n == MARKER_EXPORT) {
        if let Some((other, _)) = exports.iter().find(|(n, _)| n.starts_with(MARKER_PREFIX)) {
            return Err(LoadError::UnsupportedAbi {
                found: other[MARKER_PREFIX.len()..].to_owned(),
            });
        }
        return Err(LoadError::MissingMarker);
    }
    expect_func(module, MARKER_EXPORT, &[], &[])?;

    let initial_memory_bytes = match module.get_export(MEMORY_EXPORT) {
        Some(ExternType::Memory(m)) if !m.is_64() && !m.is_shared() => {
            m.minimum().saturating_mul(m.page_size())
        }
        Some(other) => {
            return Err(LoadError::ExportType {
                name: MEMORY_EXPORT.into(),
                expected: "a 32-bit, unshared memory".into(),
                found: match other {
                    ExternType::Memory(_) => "a 64-bit or shared memory".into(),
                    o => describe_extern(&o),
                },
            });
        }
        None => {
            return Err(LoadError::MissingExport {
                name: MEMORY_EXPORT.into(),
            });
        }
    };
    if initial_memory_bytes > limits.memory_cap() {
        return Err(LoadError::MemoryTooLarge {
            initial_bytes: initial_memory_bytes,
            limit: limits.memory_cap(),
        });
    }
    expect_func(module, ALLOC_EXPORT, &[ValType::I32], &[ValType::I32])?;
    for hook in &metadata.hooks {
        if module.get_export(hook.export_name()).is_none() {
            return Err(LoadError::MissingHook { hook: *hook });
        }
        expect_func(
            module,
            hook.export_name(),
            &[ValType::I32, ValType::I32],
            &[ValType::I64],
        )?;
    }
    Ok(ModuleInfo {
        size_bytes,
        imports,
        exports,
        initial_memory_bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_tell_wasm_from_native_code_and_components() {
        let l = RuleLimits::default();
        assert_eq!(check_header(b"\0asm\x01\0\0\0", &l), Ok(()));
        assert_eq!(
            check_header(b"\x7fELF\x02\x01", &l),
            Err(LoadError::Precompiled)
        );
        assert_eq!(check_header(b"hello world", &l), Err(LoadError::NotWasm));
        assert_eq!(
            check_header(b"\0asm\x0d\0\x01\0", &l),
            Err(LoadError::Component)
        );
        assert_eq!(
            check_header(b"\0asm\x02\0\0\0", &l),
            Err(LoadError::BinaryVersion { version: 2 })
        );
        let small = RuleLimits {
            max_module_bytes: 8,
            ..l
        };
        assert!(matches!(
            check_header(&[0; 9], &small),
            Err(LoadError::TooLarge { bytes: 9, limit: 8 })
        ));
    }

    #[test]
    fn custom_sections_are_found_by_name() {
        let wasm = wat::parse_str(
            r#"(module (@custom "a" "xyz") (@custom "kmsync.metadata" "{}") (@custom "a" "2"))"#,
        )
        .unwrap();
        assert_eq!(
            custom_sections(&wasm, "a").unwrap(),
            [b"xyz".as_slice(), b"2".as_slice()]
        );
        assert_eq!(custom_sections(&wasm, "b").unwrap().len(), 0);
        let mut truncated = wasm.clone();
        truncated.truncate(wasm.len() - 1);
        assert_eq!(custom_sections(&truncated, "a"), None);
    }

    #[test]
    fn metadata_abi_versions_are_checked() {
        let meta = |abi: &str| {
            let json = format!(r#"{{"name":"x","version":"1","abi":"{abi}","hooks":["filter"]}}"#);
            wat::parse_str(format!(
                "(module (@custom \"kmsync.metadata\" \"{}\"))",
                json.replace('"', "\\\"")
            ))
            .unwrap()
        };
        assert!(read_metadata(&meta("1.0")).is_ok());
        assert_eq!(
            read_metadata(&meta("1.7")),
            Err(LoadError::UnsupportedAbi {
                found: "1.7".into()
            })
        );
        assert_eq!(
            read_metadata(&meta("2.0")),
            Err(LoadError::UnsupportedAbi {
                found: "2.0".into()
            })
        );
        assert!(matches!(
            read_metadata(&meta("x")),
            Err(LoadError::BadMetadata { .. })
        ));
        assert_eq!(
            read_metadata(&wat::parse_str("(module)").unwrap()),
            Err(LoadError::MissingMetadata)
        );
    }
}

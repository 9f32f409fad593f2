//! Builds the built-in rule modules (`rules/<name>/`), the rule examples
//! (`rules/examples/<name>/`) and the test rules (`rules/testing/<name>/`) for
//! `wasm32-unknown-unknown`, so the `kmsync` binary ships the built-ins with `include_bytes!`
//! and users need no build step.
//!
//! A nested `cargo build --profile rules-wasm --target wasm32-unknown-unknown` runs with its
//! own target directory (next to the outer one, one per workspace checkout) and an environment
//! scrubbed of everything the outer cargo set for this script, so the outer build's flags,
//! wrappers (clippy) and profile never leak into the guests. Writes:
//! - `$OUT_DIR/<crate>.wasm` for every rule crate,
//!   (tests load the examples and test rules from there),
//! - `$OUT_DIR/builtin_rules.rs`: `BUILTINS: &[(&str, &[u8])]` (name, wasm) of the built-ins.

use std::env;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "wasm32-unknown-unknown";
const PROFILE: &str = "rules-wasm";

struct RuleCrate {
    /// Directory name: the rule's name.
    name: String,
    /// Cargo package name.
    package: String,
    /// Shipped in the binary (built-ins), or only built (examples, test rules).
    builtin: bool,
}

fn package_name(manifest: &Path) -> String {
    let text = fs::read_to_string(manifest)
        .unwrap_or_else(|e| panic!("reading {}: {e}", manifest.display()));
    text.lines()
        .find_map(|l| {
            let l = l.trim();
            let rest = l.strip_prefix("name")?.trim_start().strip_prefix('=')?;
            Some(rest.trim().trim_matches('"').to_owned())
        })
        .unwrap_or_else(|| panic!("{} has no package name", manifest.display()))
}

fn find_rules(dir: &Path, builtin: bool, out: &mut Vec<RuleCrate>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
    entries.sort();
    for path in entries {
        let manifest = path.join("Cargo.toml");
        if manifest.is_file() {
            out.push(RuleCrate {
                name: path.file_name().unwrap().to_string_lossy().into_owned(),
                package: package_name(&manifest),
                builtin,
            });
        }
    }
}

/// `<outer target dir>/kmsync-rules-wasm/<checkout>`: shared by the outer build's profiles
/// (check, test, release all reuse it), distinct per workspace checkout.
fn nested_target_dir(out_dir: &Path, workspace: &Path) -> PathBuf {
    if let Some(dir) = env::var_os("KMSYNC_RULES_TARGET_DIR") {
        return PathBuf::from(dir);
    }
    // OUT_DIR = <target>/[<triple>/]<profile>/build/<pkg>-<hash>/out
    let target = out_dir
        .ancestors()
        .find(|p| p.file_name().is_some_and(|n| n == "build"))
        .and_then(Path::parent)
        .and_then(Path::parent);
    let checkout = {
        // FNV-1a of the workspace path: stable, no dependencies.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in workspace.to_string_lossy().bytes() {
            h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
        }
        format!("{h:016x}")
    };
    match target {
        Some(t) => t.join("kmsync-rules-wasm").join(checkout),
        None => out_dir.join("kmsync-rules-wasm"),
    }
}

fn check_wasm_target(rustc: &str) {
    let sysroot = Command::new(rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    if let Some(sysroot) = sysroot
        && !sysroot.join("lib/rustlib").join(TARGET).is_dir()
    {
        panic!(
            "\n\nkmsync embeds its built-in rules as WebAssembly, built for `{TARGET}`, \
             but this toolchain ({}) does not have that target installed.\n\
             Install it with:\n\n    rustup target add {TARGET}\n\n",
            sysroot.display()
        );
    }
}

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").unwrap());
    let workspace = manifest_dir.parent().unwrap().to_path_buf();
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").unwrap());
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".into());

    for p in ["rules", "guest-sdk", "Cargo.toml", "Cargo.lock"] {
        println!("cargo:rerun-if-changed={}", workspace.join(p).display());
    }
    println!("cargo:rerun-if-env-changed=KMSYNC_RULES_TARGET_DIR");

    let mut rules = Vec::new();
    find_rules(&workspace.join("rules"), true, &mut rules);
    find_rules(&workspace.join("rules/examples"), false, &mut rules);
    find_rules(&workspace.join("rules/testing"), false, &mut rules);
    assert!(
        !rules.is_empty(),
        "no rule crates under {}",
        workspace.join("rules").display()
    );

    check_wasm_target(&rustc);
    let target_dir = nested_target_dir(&out_dir, &workspace);

    let mut cmd = Command::new(&cargo);
    cmd.current_dir(&workspace)
        .args([
            "build",
            "--locked",
            "--quiet",
            "--profile",
            PROFILE,
            "--target",
            TARGET,
        ])
        .arg("--target-dir")
        .arg(&target_dir);
    for r in &rules {
        cmd.args(["-p", &r.package]);
    }
    // Scrub what the outer cargo set for this build script (flags, wrappers such as
    // clippy-driver, jobserver, profile variables); keep registry/network settings.
    for (key, _) in env::vars_os() {
        let key = key.to_string_lossy();
        let keep = key == "CARGO_HOME"
            || key.starts_with("CARGO_NET_")
            || key.starts_with("CARGO_HTTP_")
            || key.starts_with("CARGO_REGISTRIES_")
            || key.starts_with("CARGO_REGISTRY_");
        let scrub = (key.starts_with("CARGO") && !keep)
            || key.starts_with("RUSTC")
            || key.starts_with("RUSTFLAGS")
            || key.starts_with("RUSTDOC")
            || key.starts_with("DEP_")
            || key.starts_with("__CARGO")
            || matches!(
                &*key,
                "TARGET"
                    | "HOST"
                    | "OUT_DIR"
                    | "OPT_LEVEL"
                    | "PROFILE"
                    | "DEBUG"
                    | "NUM_JOBS"
                    | "MAKEFLAGS"
                    | "MFLAGS"
                    | "CARGO_MAKEFLAGS"
            );
        if scrub {
            cmd.env_remove(&*key);
        }
    }
    let output = cmd
        .output()
        .unwrap_or_else(|e| panic!("running `{cargo} build` for the rule modules: {e}"));
    if !output.status.success() {
        panic!(
            "building the rule modules for {TARGET} failed ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }

    let built = target_dir.join(TARGET).join(PROFILE);
    let mut builtins = String::from("&[\n");
    for r in &rules {
        let file = format!("{}.wasm", r.package.replace('-', "_"));
        let src = built.join(&file);
        let dst = out_dir.join(&file);
        fs::copy(&src, &dst).unwrap_or_else(|e| panic!("copying {}: {e}", src.display()));
        if r.builtin {
            writeln!(
                builtins,
                "    ({:?}, include_bytes!({:?})),",
                r.name,
                dst.display().to_string()
            )
            .unwrap();
        }
    }
    builtins.push(']');
    fs::write(
        out_dir.join("builtin_rules.rs"),
        format!(
            "/// Built-in rules: (name, wasm module), sorted by name.\n\
             pub(crate) static BUILTINS: &[(&str, &[u8])] = {builtins};\n"
        ),
    )
    .unwrap();
}

"""The Dockerfile (which cannot be built on the test machines: no Docker engine) agrees with the
chart: the binary path the Deployment runs, the non-root UID the pod asks for, and a builder
that can compile the embedded WebAssembly rules."""

from __future__ import annotations

import re

from conftest import REPO, controller, one, render

DOCKERFILE = (REPO / "Dockerfile").read_text()


def instructions():
    """(instruction, arguments) pairs, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE)
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def stages():
    result, current = [], None
    for word, rest in instructions():
        if word == "FROM":
            current = {"from": rest, "steps": []}
            result.append(current)
        elif current is not None:
            current["steps"].append((word, rest))
    return result


def test_two_stages_rust_builder_and_distroless_nonroot_runtime():
    builder, runtime = stages()
    assert re.fullmatch(r"rust:\$\{RUST_VERSION\}-bookworm AS builder", builder["from"])
    assert runtime["from"] == "gcr.io/distroless/cc-debian12:nonroot"
    # The builder's toolchain is the workspace's minimum Rust version.
    msrv = re.search(r'^rust-version = "([0-9.]+)"', (REPO / "Cargo.toml").read_text(), re.M)[1]
    assert ("ARG", f"RUST_VERSION={msrv}") in instructions()


def test_builder_adds_wasm32_and_builds_locked_release():
    (builder, _) = stages()
    runs = " ".join(rest for word, rest in builder["steps"] if word == "RUN")
    assert "rustup target add wasm32-unknown-unknown" in runs
    assert "cargo build --release --locked -p kmsync" in runs


def test_runtime_holds_only_the_binary_and_runs_non_root(chart):
    (_, runtime) = stages()
    steps = runtime["steps"]
    copies = [rest for word, rest in steps if word == "COPY"]
    assert copies == ["--from=builder /out/kmsync /usr/local/bin/kmsync"]
    assert not [word for word, _ in steps if word == "RUN"]
    (user,) = [rest for word, rest in steps if word == "USER"]
    uid, gid = (int(x) for x in user.split(":"))
    pod = one(render(chart), "Deployment")["spec"]["template"]["spec"]
    assert uid == pod["securityContext"]["runAsUser"] and gid == pod["securityContext"]["runAsGroup"]
    assert ("ENTRYPOINT", '["/usr/local/bin/kmsync"]') in steps
    assert ("CMD", '["controller"]') in steps
    assert controller(render(chart))["command"] == ["/usr/local/bin/kmsync"]


def test_dockerignore_keeps_build_outputs_and_git_out():
    lines = {l.strip() for l in (REPO / ".dockerignore").read_text().splitlines()}
    assert {"target/", ".git/", ".venv/"} <= lines
    # The workspace members and the rule crates build.rs embeds must stay in the context.
    for needed in ("host", "guest-sdk", "tests", "rules", "Cargo.toml", "Cargo.lock"):
        assert not any(l.rstrip("/") == needed for l in lines)

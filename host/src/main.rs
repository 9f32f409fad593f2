//! The `kmsync` binary: everything lives in the library; see `kmsync::cli`.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    kmsync::cli::run().await
}

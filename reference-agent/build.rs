//! Compiles the MTP gRPC contract (protocol/wire/mtp/v1/*.proto, package `mtp.v1`,
//! PROFILE G-09) into `$OUT_DIR/mtp.v1.rs`, and the test-control contract
//! (protocol/wire/mtp/control/v1/control.proto, package `mtp.control.v1`,
//! docs/iut-contract.md) into `$OUT_DIR/mtp.control.v1.rs`, with the pure-Rust `protox`
//! compiler (no `protoc` needed), client and server code. Included as
//! `transport::sync::pb` and `services::control::pb`.

use std::path::PathBuf;

const PROTOS: [&str; 4] = [
    "mtp/v1/frame.proto",
    "mtp/v1/agent.proto",
    "mtp/v1/index.proto",
    "mtp/control/v1/control.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let include = manifest_dir.join("../protocol/wire");
    let files: Vec<PathBuf> = PROTOS.iter().map(|p| include.join(p)).collect();
    for f in &files {
        println!("cargo:rerun-if-changed={}", f.display());
    }
    println!("cargo:rerun-if-changed=build.rs");

    let fds = protox::compile(&files, [&include])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .emit_rerun_if_changed(false)
        .compile_fds(fds)?;
    Ok(())
}

//! Generates the WalletService's Rust code from `proto/` at build time, with no `protoc`:
//! protox (a protobuf compiler written in Rust) parses the `.proto` files into a
//! `FileDescriptorSet`, which connectrpc-build turns into buffa message types, the service trait
//! and the client.

use std::path::PathBuf;

const PROTO_ROOT: &str = "proto";
const FILES: &[&str] = &["paysaga/wallet/v1/wallet.proto"];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed={PROTO_ROOT}");
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);

    // Imports included (google/protobuf/timestamp.proto comes with protox), and the comments
    // kept: they become the generated types' doc comments.
    let descriptors = protox::Compiler::new([PROTO_ROOT])?
        .include_imports(true)
        .include_source_info(true)
        .open_files(FILES)?
        .encode_file_descriptor_set();
    let descriptor_set = out_dir.join("wallet.fds.bin");
    std::fs::write(&descriptor_set, descriptors)?;

    connectrpc_build::Config::new()
        .descriptor_set(&descriptor_set)
        .files(FILES)
        .include_file("_connectrpc.rs")
        // The re-run triggers are the ones above: the descriptor set is rewritten on every run,
        // and pointing cargo at it would re-run this script on every build.
        .emit_rerun_directives(false)
        .compile()?;
    Ok(())
}

//! Compiles the Hubble `.proto` subset in `proto/` with protox (no system
//! `protoc` needed) and generates prost messages plus the tonic client and
//! server for `observer.Observer`.

use std::error::Error;

fn main() -> Result<(), Box<dyn Error>> {
    let files = [
        "proto/flow/flow.proto",
        "proto/relay/relay.proto",
        "proto/observer/observer.proto",
    ];
    for file in files {
        println!("cargo:rerun-if-changed={file}");
    }
    let descriptors = protox::compile(files, ["proto"])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(descriptors)?;
    Ok(())
}

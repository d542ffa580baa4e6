//! Compiles `proto/conclave/v1/*.proto` with `protox` (no system `protoc`) and generates the
//! tonic server and client code, plus the encoded descriptor set served by reflection.

use std::{env, fs, path::PathBuf};

use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto_dir = PathBuf::from("proto");
    let mut files: Vec<PathBuf> = fs::read_dir(proto_dir.join("conclave/v1"))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "proto"))
        .collect();
    files.sort();

    let descriptors = protox::Compiler::new([&proto_dir])?
        .include_source_info(true)
        .include_imports(true)
        .open_files(&files)?
        .file_descriptor_set();

    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    fs::write(out_dir.join("conclave_descriptor.bin"), descriptors.encode_to_vec())?;

    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // Artifact content as `Bytes`: an upload's chunk is a slice of the received buffer, not a
        // copy, and a download's chunk is shared with the hash that verifies it.
        .bytes(".conclave.v1.UploadArtifactRequest.chunk")
        .bytes(".conclave.v1.DownloadArtifactResponse.chunk")
        .compile_fds(descriptors)?;

    println!("cargo:rerun-if-changed=proto");
    Ok(())
}

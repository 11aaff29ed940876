//! Release bootstrap sizes, raw and zipped as Lambda receives them (`bootstrap` in a zip,
//! deflate level 9).

use crate::BenchError;
use serde_json::{json, Value};
use std::io::Write;
use std::path::Path;
use zip::write::SimpleFileOptions;
use zip::CompressionMethod;

pub const FUNCTIONS: [&str; 4] = ["rotation-fn", "authorizer-fn", "api-fn", "hello-fn"];

fn zip_bootstrap(binary: &Path, zip_path: &Path) -> Result<u64, BenchError> {
    let io = |what: &str, e| BenchError::io(format!("{what} {}", zip_path.display()), e);
    let bytes = std::fs::read(binary).map_err(|e| io("reading for", e))?;
    let file = std::fs::File::create(zip_path).map_err(|e| io("creating", e))?;
    let mut zip = zip::ZipWriter::new(file);
    let options = SimpleFileOptions::default()
        .compression_method(CompressionMethod::Deflated)
        .compression_level(Some(9))
        .unix_permissions(0o755);
    zip.start_file("bootstrap", options)
        .map_err(|e| io("writing", std::io::Error::other(e)))?;
    zip.write_all(&bytes).map_err(|e| io("writing", e))?;
    zip.finish()
        .map_err(|e| io("finishing", std::io::Error::other(e)))?;
    std::fs::metadata(zip_path)
        .map(|m| m.len())
        .map_err(|e| io("reading", e))
}

pub fn measure(bin_dir: &Path, out_dir: &Path) -> Result<Value, BenchError> {
    let zips = out_dir.join("zips");
    std::fs::create_dir_all(&zips).map_err(|e| BenchError::io("creating zips/", e))?;
    let mut sizes = json!({});
    for function in FUNCTIONS {
        let binary = bin_dir.join(function);
        let bytes = std::fs::metadata(&binary)
            .map_err(|e| BenchError::io(format!("reading {}", binary.display()), e))?
            .len();
        let zipped = zip_bootstrap(&binary, &zips.join(format!("{function}.zip")))?;
        sizes[function] = json!({ "binary_bytes": bytes, "zipped_bytes": zipped });
    }
    Ok(sizes)
}

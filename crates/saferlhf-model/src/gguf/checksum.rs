//! SHA-256 of asset files.

use sha2::{Digest, Sha256};

use super::*;

/// The lowercase hex sha256 of the file at `path`.
pub fn sha256_file(path: impl AsRef<Path>) -> Result<String> {
    let path = path.as_ref();
    let mut file = File::open(path).map_err(|e| ModelError::io(path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(ModelError::io(path, e)),
        };
        hasher.update(&buf[..n]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// Checks that the file at `path` has sha256 `expected_hex` (case-insensitive), else
/// [`ModelError::Checksum`].
pub fn verify_sha256(path: impl AsRef<Path>, expected_hex: &str) -> Result<()> {
    let path = path.as_ref();
    let actual = sha256_file(path)?;
    let expected = expected_hex.trim().to_ascii_lowercase();
    if actual == expected {
        Ok(())
    } else {
        Err(ModelError::Checksum {
            path: path.to_path_buf(),
            expected,
            actual,
        })
    }
}

//! Encoding of openraft values for disk and wire (postcard), with errors mapped to `io::Error`.

use serde::de::DeserializeOwned;
use serde::Serialize;

pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Encoding into a Vec only fails for types serde cannot represent, which would be a build-time bug.
    postcard::to_allocvec(value).expect("openraft and Arca types always encode")
}

pub fn decode<T: DeserializeOwned>(what: &str, bytes: &[u8]) -> Result<T, std::io::Error> {
    postcard::from_bytes(bytes)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{what} does not decode: {e}")))
}

pub fn io_error(e: arca_storage::StorageError) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

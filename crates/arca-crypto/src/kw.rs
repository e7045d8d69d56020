//! AES key wrap (RFC 3394) and key wrap with padding (RFC 5649).
//!
//! 128- and 256-bit KEKs use aws-lc-rs' implementation. aws-lc-rs offers no 192-bit KEK, so for
//! those this module runs the RFC's algorithm over single AES-192 block operations from aws-lc-rs.
//! Both paths are checked against the RFCs' test vectors.

use arca_types::ArcaError;
use aws_lc_rs::cipher::{
    DecryptingKey, DecryptionContext, EncryptingKey, EncryptionContext, UnboundCipherKey, AES_192,
};
use aws_lc_rs::key_wrap::{AesKek, KeyWrap, KeyWrapPadded, AES_128, AES_256};
use zeroize::Zeroizing;

const IV_3394: u64 = 0xA6A6_A6A6_A6A6_A6A6;
const AIV_5649: u32 = 0xA659_59A6;
/// Largest key Arca wraps or unwraps, in bytes (an RSA-4096 PKCS#8 is about 2.4 KiB).
pub const WRAP_INPUT_BYTES_MAX: usize = 8 * 1024;

fn bad_kek() -> ArcaError {
    ArcaError::internal("an AES key-wrap key is not 16, 24 or 32 bytes")
}

fn unwrap_failed() -> ArcaError {
    ArcaError::bad_parameter(
        "value",
        "unwrap failed: the wrapped key was not wrapped with this key (integrity check failed)",
    )
}

fn native(kek: &[u8]) -> Result<Option<AesKek>, ArcaError> {
    let cipher = match kek.len() {
        16 => &AES_128,
        32 => &AES_256,
        24 => return Ok(None),
        _ => return Err(bad_kek()),
    };
    AesKek::new(cipher, kek).map(Some).map_err(|_| bad_kek())
}

fn check_input(len: usize) -> Result<(), ArcaError> {
    if len > WRAP_INPUT_BYTES_MAX {
        return Err(ArcaError::bad_parameter(
            "value",
            format!("key wrap takes at most {WRAP_INPUT_BYTES_MAX} bytes; the request carried {len}"),
        ));
    }
    Ok(())
}

/// RFC 3394 wrap. The key must be at least 16 bytes and a multiple of 8.
pub fn wrap(kek: &[u8], key: &[u8]) -> Result<Vec<u8>, ArcaError> {
    check_input(key.len())?;
    if key.len() < 16 || !key.len().is_multiple_of(8) {
        return Err(ArcaError::bad_parameter(
            "value",
            format!(
                "AES key wrap takes a key of at least 16 bytes in multiples of 8; the request carried {} bytes",
                key.len()
            ),
        ));
    }
    match native(kek)? {
        Some(k) => {
            let mut out = vec![0u8; key.len() + 8];
            let len = k.wrap(key, &mut out).map_err(|_| ArcaError::internal("AES key wrap failed"))?.len();
            out.truncate(len);
            Ok(out)
        }
        None => Block::new(kek)?.wrap(IV_3394, key),
    }
}

/// RFC 3394 unwrap.
pub fn unwrap(kek: &[u8], wrapped: &[u8]) -> Result<Zeroizing<Vec<u8>>, ArcaError> {
    check_input(wrapped.len())?;
    if wrapped.len() < 24 || !wrapped.len().is_multiple_of(8) {
        return Err(ArcaError::bad_parameter(
            "value",
            format!(
                "an AES-wrapped key is at least 24 bytes in multiples of 8; the request carried {} bytes",
                wrapped.len()
            ),
        ));
    }
    match native(kek)? {
        Some(k) => {
            let mut out = Zeroizing::new(vec![0u8; wrapped.len()]);
            let len = k.unwrap(wrapped, &mut out).map_err(|_| unwrap_failed())?.len();
            out.truncate(len);
            Ok(out)
        }
        None => {
            let (a, plain) = Block::new(kek)?.unwrap(wrapped)?;
            if a != IV_3394 {
                return Err(unwrap_failed());
            }
            Ok(plain)
        }
    }
}

/// RFC 5649 wrap with padding.
pub fn wrap_padded(kek: &[u8], key: &[u8]) -> Result<Vec<u8>, ArcaError> {
    check_input(key.len())?;
    if key.is_empty() {
        return Err(ArcaError::bad_parameter("value", "there is no key to wrap"));
    }
    match native(kek)? {
        Some(k) => {
            let mut out = vec![0u8; key.len() + 16];
            let len = k.wrap_with_padding(key, &mut out).map_err(|_| ArcaError::internal("AES key wrap failed"))?.len();
            out.truncate(len);
            Ok(out)
        }
        None => {
            let block = Block::new(kek)?;
            let aiv = (u64::from(AIV_5649) << 32) | key.len() as u64;
            let mut padded = Zeroizing::new(key.to_vec());
            padded.resize(key.len().div_ceil(8) * 8, 0);
            if padded.len() == 8 {
                let mut b = [0u8; 16];
                b[..8].copy_from_slice(&aiv.to_be_bytes());
                b[8..].copy_from_slice(&padded);
                block.encrypt(&mut b)?;
                return Ok(b.to_vec());
            }
            block.wrap(aiv, &padded)
        }
    }
}

/// RFC 5649 unwrap with padding.
pub fn unwrap_padded(kek: &[u8], wrapped: &[u8]) -> Result<Zeroizing<Vec<u8>>, ArcaError> {
    check_input(wrapped.len())?;
    if wrapped.len() < 16 || !wrapped.len().is_multiple_of(8) {
        return Err(unwrap_failed());
    }
    match native(kek)? {
        Some(k) => {
            let mut out = Zeroizing::new(vec![0u8; wrapped.len()]);
            let len = k.unwrap_with_padding(wrapped, &mut out).map_err(|_| unwrap_failed())?.len();
            out.truncate(len);
            Ok(out)
        }
        None => {
            let block = Block::new(kek)?;
            let (a, mut plain) = if wrapped.len() == 16 {
                let mut b = Zeroizing::new([0u8; 16]);
                b.copy_from_slice(wrapped);
                block.decrypt(&mut b)?;
                let a = u64::from_be_bytes(b[..8].try_into().map_err(|_| unwrap_failed())?);
                (a, Zeroizing::new(b[8..].to_vec()))
            } else {
                block.unwrap(wrapped)?
            };
            if (a >> 32) as u32 != AIV_5649 {
                return Err(unwrap_failed());
            }
            let mli = (a & 0xFFFF_FFFF) as usize;
            let n = plain.len();
            if mli > n || mli + 8 <= n || plain[mli..].iter().any(|b| *b != 0) {
                return Err(unwrap_failed());
            }
            plain.truncate(mli);
            Ok(plain)
        }
    }
}

/// Single AES-192 block operations and RFC 3394's wrapping process over them.
struct Block {
    enc: EncryptingKey,
    dec: DecryptingKey,
}

impl Block {
    fn new(kek: &[u8]) -> Result<Block, ArcaError> {
        let unbound = || UnboundCipherKey::new(&AES_192, kek).map_err(|_| bad_kek());
        Ok(Block {
            enc: EncryptingKey::ecb(unbound()?).map_err(|_| bad_kek())?,
            dec: DecryptingKey::ecb(unbound()?).map_err(|_| bad_kek())?,
        })
    }

    fn encrypt(&self, b: &mut [u8; 16]) -> Result<(), ArcaError> {
        self.enc
            .less_safe_encrypt(b, EncryptionContext::None)
            .map(|_| ())
            .map_err(|_| ArcaError::internal("AES failed"))
    }

    fn decrypt(&self, b: &mut [u8; 16]) -> Result<(), ArcaError> {
        self.dec.decrypt(b, DecryptionContext::None).map(|_| ()).map_err(|_| ArcaError::internal("AES failed"))
    }

    fn wrap(&self, iv: u64, plain: &[u8]) -> Result<Vec<u8>, ArcaError> {
        let n = plain.len() / 8;
        let mut a = iv;
        let mut r = Zeroizing::new(plain.to_vec());
        let mut b = Zeroizing::new([0u8; 16]);
        for j in 0..6u64 {
            for i in 0..n {
                b[..8].copy_from_slice(&a.to_be_bytes());
                b[8..].copy_from_slice(&r[i * 8..i * 8 + 8]);
                self.encrypt(&mut b)?;
                let t = (n as u64) * j + i as u64 + 1;
                a = u64::from_be_bytes(b[..8].try_into().map_err(|_| ArcaError::internal("AES block"))?) ^ t;
                r[i * 8..i * 8 + 8].copy_from_slice(&b[8..]);
            }
        }
        let mut out = a.to_be_bytes().to_vec();
        out.extend_from_slice(&r);
        Ok(out)
    }

    fn unwrap(&self, wrapped: &[u8]) -> Result<(u64, Zeroizing<Vec<u8>>), ArcaError> {
        let n = wrapped.len() / 8 - 1;
        let mut a = u64::from_be_bytes(wrapped[..8].try_into().map_err(|_| unwrap_failed())?);
        let mut r = Zeroizing::new(wrapped[8..].to_vec());
        let mut b = Zeroizing::new([0u8; 16]);
        for j in (0..6u64).rev() {
            for i in (0..n).rev() {
                let t = (n as u64) * j + i as u64 + 1;
                b[..8].copy_from_slice(&(a ^ t).to_be_bytes());
                b[8..].copy_from_slice(&r[i * 8..i * 8 + 8]);
                self.decrypt(&mut b)?;
                a = u64::from_be_bytes(b[..8].try_into().map_err(|_| unwrap_failed())?);
                r[i * 8..i * 8 + 8].copy_from_slice(&b[8..]);
            }
        }
        Ok((a, r))
    }
}

//! The TPM 2.0 commands the device uses, marshaled by hand (TPM 2.0 Part 3), with password
//! authorization (the device's objects have empty auth values; the TPM's own checks, not
//! secrets, are what the statements rest on).

use crate::transport::{Tpm, TpmError, Transport};
use crate::wire::{In, Out};

/// The owner hierarchy.
pub const TPM_RH_OWNER: u32 = 0x4000_0001;
/// The endorsement hierarchy.
pub const TPM_RH_ENDORSEMENT: u32 = 0x4000_000B;
use crate::wire::{ALG_NULL, ALG_SHA256, ST_NO_SESSIONS, ST_SESSIONS, TPM_RS_PW};
const ALG_ECC: u16 = 0x0023;
const ALG_ECDSA: u16 = 0x0018;
const ECC_NIST_P256: u16 = 0x0003;
const RC_NV_DEFINED: u32 = 0x14C;

pub use candor_core::tpm::{COUNTER_ATTRIBUTES, SIGNING_KEY_ATTRIBUTES};

/// A restricted ECC P-256 signing key in the TPM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningKey {
    /// Its (transient) handle.
    pub handle: u32,
    /// The hierarchy it was created under.
    pub hierarchy: u32,
    /// Its public area (TPMT_PUBLIC) as the TPM returned it.
    pub public_area: Vec<u8>,
    /// Its Name: nameAlg ‖ SHA-256(public area).
    pub name: Vec<u8>,
    /// The public point, x and y (32 bytes each).
    pub x: Vec<u8>,
    /// See `x`.
    pub y: Vec<u8>,
}

impl SigningKey {
    /// Its qualified name under its (primary) hierarchy: nameAlg ‖ H(hierarchy ‖ Name).
    pub fn qualified_name(&self) -> Vec<u8> {
        candor_core::tpm::qualified_name(self.hierarchy, &self.name)
    }
}

/// An NV_Certify answer: the signed TPMS_ATTEST bytes as sent, and the ECDSA signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Certified {
    /// TPMS_ATTEST, exactly as the TPM sent it.
    pub attest: Vec<u8>,
    /// ECDSA r.
    pub r: Vec<u8>,
    /// ECDSA s.
    pub s: Vec<u8>,
}

fn with_sessions(cc: u32, handles: &[u32], sessions: usize, params: &[u8]) -> Vec<u8> {
    let mut o = Out::default();
    o.u16(ST_SESSIONS).u32(0).u32(cc);
    for h in handles {
        o.u32(*h);
    }
    o.u32((sessions * 9) as u32);
    for _ in 0..sessions {
        o.u32(TPM_RS_PW).b(&[]).u8(0).b(&[]);
    }
    o.raw(params);
    o.set_size();
    o.0
}

/// Splits a session response body into its handles and its parameter area.
pub(crate) fn split(body: &[u8], handles: usize) -> Result<(Vec<u32>, &[u8]), TpmError> {
    let mut r = In::new(body);
    let hs = (0..handles)
        .map(|_| r.u32())
        .collect::<Result<Vec<_>, _>>()?;
    let n = r.u32()? as usize;
    Ok((hs, r.take(n)?))
}

impl<T: Transport> Tpm<T> {
    /// TPM2_CreatePrimary of a restricted ECC P-256 ECDSA/SHA-256 signing key under
    /// `hierarchy`. The same template in the same hierarchy gives the same key.
    pub fn create_signing_key(&mut self, hierarchy: u32) -> Result<SigningKey, TpmError> {
        let mut public = Out::default();
        public
            .u16(ALG_ECC)
            .u16(ALG_SHA256)
            .u32(SIGNING_KEY_ATTRIBUTES)
            .b(&[]) // authPolicy
            .u16(ALG_NULL) // symmetric
            .u16(ALG_ECDSA)
            .u16(ALG_SHA256) // scheme
            .u16(ECC_NIST_P256)
            .u16(ALG_NULL) // kdf
            .b(&[])
            .b(&[]); // unique x, y
        let mut p = Out::default();
        p.u16(4).b(&[]).b(&[]); // inSensitive: empty auth and data
        p.b(&public.0);
        p.b(&[]); // outsideInfo
        p.u32(0); // creationPCR: none
        let body = self.command(&with_sessions(0x131, &[hierarchy], 1, &p.0))?;
        let (hs, params) = split(&body, 1)?;
        let handle = hs
            .first()
            .copied()
            .ok_or(TpmError::Malformed("no object handle"))?;
        let mut r = In::new(params);
        let public_area = r.b()?.to_vec();
        // Parse the public area for the point.
        let mut q = In::new(&public_area);
        let (ty, name_alg, attrs) = (q.u16()?, q.u16()?, q.u32()?);
        if ty != ALG_ECC || name_alg != ALG_SHA256 || attrs != SIGNING_KEY_ATTRIBUTES {
            return Err(TpmError::Malformed(
                "the key's public area is not the template's",
            ));
        }
        q.b()?; // authPolicy
        let _sym = q.u16()?;
        let (_scheme, _hash, _curve, _kdf) = (q.u16()?, q.u16()?, q.u16()?, q.u16()?);
        let x = q.b()?.to_vec();
        let y = q.b()?.to_vec();
        Ok(SigningKey {
            handle,
            hierarchy,
            name: candor_core::tpm::name_of(&public_area),
            public_area,
            x,
            y,
        })
    }

    /// TPM2_NV_DefineSpace of a counter at `index` (owner authorization). Idempotent: an
    /// index already defined is left as it is.
    pub fn nv_define_counter(&mut self, index: u32) -> Result<(), TpmError> {
        let mut nv = Out::default();
        nv.u32(index)
            .u16(ALG_SHA256)
            .u32(COUNTER_ATTRIBUTES)
            .b(&[])
            .u16(8);
        let mut p = Out::default();
        p.b(&[]).b(&nv.0);
        match self.command(&with_sessions(0x12A, &[TPM_RH_OWNER], 1, &p.0)) {
            Ok(_) => Ok(()),
            Err(TpmError::Response { code, .. }) if code & 0xfff == RC_NV_DEFINED => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// TPM2_NV_Increment.
    pub fn nv_increment(&mut self, index: u32) -> Result<(), TpmError> {
        self.command(&with_sessions(0x134, &[index, index], 1, &[]))
            .map(|_| ())
    }

    /// TPM2_NV_Read of a counter's 8 bytes.
    pub fn nv_read_counter(&mut self, index: u32) -> Result<u64, TpmError> {
        let mut p = Out::default();
        p.u16(8).u16(0);
        let body = self.command(&with_sessions(0x14E, &[index, index], 1, &p.0))?;
        let (_, params) = split(&body, 0)?;
        let data = In::new(params).b()?;
        let a: [u8; 8] = data
            .try_into()
            .map_err(|_| TpmError::Malformed("counter is not 8 bytes"))?;
        Ok(u64::from_be_bytes(a))
    }

    /// TPM2_NV_ReadPublic: the index's public area and its Name.
    pub fn nv_read_public(&mut self, index: u32) -> Result<(Vec<u8>, Vec<u8>), TpmError> {
        let mut o = Out::default();
        o.u16(ST_NO_SESSIONS).u32(14).u32(0x169).u32(index);
        let body = self.command(&o.0)?;
        let mut r = In::new(&body);
        Ok((r.b()?.to_vec(), r.b()?.to_vec()))
    }

    /// TPM2_NV_Certify of a counter with `key` over `qualifying` (a nonce): the `Read`.
    pub fn nv_certify(
        &mut self,
        key: &SigningKey,
        index: u32,
        qualifying: &[u8],
    ) -> Result<Certified, TpmError> {
        let mut p = Out::default();
        p.b(qualifying).u16(ALG_NULL).u16(8).u16(0);
        let body = self.command(&with_sessions(0x184, &[key.handle, index, index], 2, &p.0))?;
        let (_, params) = split(&body, 0)?;
        let mut r = In::new(params);
        let attest = r.b()?.to_vec();
        let (alg, _hash) = (r.u16()?, r.u16()?);
        if alg != ALG_ECDSA {
            return Err(TpmError::Malformed("the signature is not ECDSA"));
        }
        Ok(Certified {
            attest,
            r: r.b()?.to_vec(),
            s: r.b()?.to_vec(),
        })
    }

    /// The loaded handles from `first` within its handle type (TPM2_GetCapability of
    /// TPM_CAP_HANDLES), at most 256.
    pub fn handles(&mut self, first: u32) -> Result<Vec<u32>, TpmError> {
        let mut out = Vec::new();
        let mut from = first;
        // A bounded number of pages: a TPM holds a handful of transient objects and sessions.
        for _ in 0..4 {
            let mut o = Out::default();
            o.u16(ST_NO_SESSIONS).u32(0).u32(0x17A);
            o.u32(1).u32(from).u32(64); // TPM_CAP_HANDLES, property, count
            o.set_size();
            let body = self.command(&o.0)?;
            let mut r = In::new(&body);
            let more = r.u8()?;
            if r.u32()? != 1 {
                return Err(TpmError::Malformed(
                    "GetCapability answered another capability",
                ));
            }
            let n = r.u32()? as usize;
            if n > 64 {
                return Err(TpmError::Malformed("more handles than asked for"));
            }
            let page = (0..n).map(|_| r.u32()).collect::<Result<Vec<_>, _>>()?;
            // Only handles of the same type as `first`.
            out.extend(page.iter().filter(|h| *h >> 24 == first >> 24));
            match page.last() {
                Some(&last) if more != 0 && last >> 24 == first >> 24 => from = last + 1,
                _ => break,
            }
        }
        Ok(out)
    }

    /// TPM2_FlushContext of a transient object.
    pub fn flush(&mut self, handle: u32) -> Result<(), TpmError> {
        let mut o = Out::default();
        o.u16(ST_NO_SESSIONS).u32(14).u32(0x165).u32(handle);
        self.command(&o.0).map(|_| ())
    }
}

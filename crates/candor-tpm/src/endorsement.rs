//! The TPM side of the authority's residence check: the EK certificate read from NV, the
//! standard RSA-2048 EK (persistent at 0x81010001, else re-derived from the TCG template), and
//! TPM2_ActivateCredential of the authority's credential for the signing key, authorized for
//! the EK by a PolicySecret(endorsement) policy session (the EK template's policy).

use crate::commands::{split, SigningKey, TPM_RH_ENDORSEMENT};
use crate::transport::{Tpm, TpmError, Transport};
use crate::wire::{
    In, Out, ALG_NULL, ALG_SHA256, CC_START_AUTH_SESSION, ST_NO_SESSIONS, ST_SESSIONS, TPM_RH_NULL,
    TPM_RS_PW,
};
use candor_core::endorsement::{Credential, MAX_CERT};
use candor_core::tpm::CC_NV_READ;
use sha2::{Digest as _, Sha256};

/// The persistent handle of the RSA-2048 EK (TCG TPM v2.0 Provisioning Guidance).
pub const EK_PERSISTENT_HANDLE: u32 = 0x8101_0001;

const ALG_RSA: u16 = 0x0001;
const ALG_AES: u16 = 0x0006;
const ALG_CFB: u16 = 0x0043;
const TPM_SE_POLICY: u8 = 0x01;
const CC_READ_PUBLIC: u32 = 0x173;
const CC_POLICY_SECRET: u32 = 0x151;
const CC_ACTIVATE_CREDENTIAL: u32 = 0x147;
const CC_CREATE_PRIMARY: u32 = 0x131;
/// fixedTPM, fixedParent, sensitiveDataOrigin, adminWithPolicy, restricted, decrypt.
const EK_ATTRIBUTES: u32 = 0x0003_00B2;
/// PolicySecret(TPM_RH_ENDORSEMENT): the EK template's authPolicy.
const EK_POLICY: [u8; 32] = [
    0x83, 0x71, 0x97, 0x67, 0x44, 0x84, 0xB3, 0xF8, 0x1A, 0x90, 0xCC, 0x8D, 0x46, 0xA5, 0xD7, 0x24,
    0xFD, 0x52, 0xD7, 0x6E, 0x06, 0x52, 0x0B, 0x64, 0xF2, 0xA1, 0xDA, 0x1B, 0x33, 0x14, 0x69, 0xAA,
];
/// Bytes read from NV per command (below every TPM's TPM_PT_NV_BUFFER_MAX).
const NV_CHUNK: u16 = 512;

impl<T: Transport> Tpm<T> {
    /// The whole contents of NV index `index`, read with its own (empty) authorization, at
    /// most [`MAX_CERT`] bytes.
    pub fn nv_read_all(&mut self, index: u32) -> Result<Vec<u8>, TpmError> {
        let (public, _) = self.nv_read_public(index)?;
        let mut r = In::new(&public);
        r.u32()?; // index
        r.u16()?; // name alg
        r.u32()?; // attributes
        r.b()?; // policy
        let size = r.u16()?;
        if size as usize > MAX_CERT {
            return Err(TpmError::Malformed(
                "the NV index is larger than a certificate",
            ));
        }
        let mut out = Vec::with_capacity(size as usize);
        while out.len() < size as usize {
            let n = (size - out.len() as u16).min(NV_CHUNK);
            let mut o = Out::default();
            o.u16(ST_SESSIONS)
                .u32(0)
                .u32(CC_NV_READ)
                .u32(index)
                .u32(index);
            o.u32(9).u32(TPM_RS_PW).b(&[]).u8(0).b(&[]);
            o.u16(n).u16(out.len() as u16);
            o.set_size();
            let body = self.command(&o.0)?;
            let (_, p) = split(&body, 0)?;
            let data = In::new(p).b()?;
            if data.len() != n as usize {
                return Err(TpmError::Malformed("NV_Read returned another size"));
            }
            out.extend_from_slice(data);
        }
        Ok(out)
    }

    /// The handle of the RSA-2048 EK: the persistent one if the TPM has it, else the EK
    /// re-derived from the TCG template (a transient handle the caller flushes; `true`).
    pub fn ek_handle(&mut self) -> Result<(u32, bool), TpmError> {
        let mut o = Out::default();
        o.u16(ST_NO_SESSIONS)
            .u32(14)
            .u32(CC_READ_PUBLIC)
            .u32(EK_PERSISTENT_HANDLE);
        match self.command(&o.0) {
            Ok(_) => return Ok((EK_PERSISTENT_HANDLE, false)),
            Err(TpmError::Response { .. }) => {}
            Err(e) => return Err(e),
        }
        let mut public = Out::default();
        public
            .u16(ALG_RSA)
            .u16(ALG_SHA256)
            .u32(EK_ATTRIBUTES)
            .b(&EK_POLICY)
            .u16(ALG_AES)
            .u16(128)
            .u16(ALG_CFB)
            .u16(ALG_NULL) // scheme
            .u16(2048)
            .u32(0) // exponent: the default
            .b(&[0u8; 256]);
        let mut p = Out::default();
        p.u16(4).b(&[]).b(&[]);
        p.b(&public.0).b(&[]).u32(0);
        let mut o = Out::default();
        o.u16(ST_SESSIONS)
            .u32(0)
            .u32(CC_CREATE_PRIMARY)
            .u32(TPM_RH_ENDORSEMENT);
        o.u32(9).u32(TPM_RS_PW).b(&[]).u8(0).b(&[]);
        o.raw(&p.0);
        o.set_size();
        let body = self.command(&o.0)?;
        let handle = In::new(&body).u32()?;
        Ok((handle, true))
    }

    /// TPM2_ActivateCredential: opens `credential` for the loaded signing key `key` with the
    /// EK at `ek`, returning the secret. The TPM refuses (TPM_RC_INTEGRITY and the like) a
    /// credential made for another EK or another key Name.
    pub fn activate_credential(
        &mut self,
        key: &SigningKey,
        ek: u32,
        credential: &Credential,
    ) -> Result<Vec<u8>, TpmError> {
        let nonce = Sha256::digest(b"candor ek policy session").to_vec();
        // StartAuthSession: an unbound, unsalted policy session.
        let mut o = Out::default();
        o.u16(ST_NO_SESSIONS).u32(0).u32(CC_START_AUTH_SESSION);
        o.u32(TPM_RH_NULL).u32(TPM_RH_NULL);
        o.b(&nonce)
            .b(&[])
            .u8(TPM_SE_POLICY)
            .u16(ALG_NULL)
            .u16(ALG_SHA256);
        o.set_size();
        let body = self.command(&o.0)?;
        let session = In::new(&body).u32()?;
        let result = self.activate_in(session, key, ek, credential, &nonce);
        if result.is_err() {
            // Spent on success (continueSession clear); flushed here otherwise.
            let _ = self.flush(session);
        }
        result
    }

    fn activate_in(
        &mut self,
        session: u32,
        key: &SigningKey,
        ek: u32,
        credential: &Credential,
        nonce: &[u8],
    ) -> Result<Vec<u8>, TpmError> {
        // PolicySecret(endorsement), authorized with the (empty) endorsement password.
        let mut o = Out::default();
        o.u16(ST_SESSIONS).u32(0).u32(CC_POLICY_SECRET);
        o.u32(TPM_RH_ENDORSEMENT).u32(session);
        o.u32(9).u32(TPM_RS_PW).b(&[]).u8(0).b(&[]);
        o.b(&[]).b(&[]).b(&[]).u32(0); // nonceTPM, cpHashA, policyRef, expiration
        o.set_size();
        self.command(&o.0)?;
        // ActivateCredential: the key by password (ADMIN role, empty auth), the EK by the
        // policy session (continueSession clear: the session is spent).
        let mut area = Out::default();
        area.u32(TPM_RS_PW).b(&[]).u8(0).b(&[]);
        area.u32(session).b(nonce).u8(0).b(&[]);
        let mut o = Out::default();
        o.u16(ST_SESSIONS).u32(0).u32(CC_ACTIVATE_CREDENTIAL);
        o.u32(key.handle).u32(ek);
        o.u32(area.0.len() as u32).raw(&area.0);
        o.b(&credential.blob).b(&credential.encrypted_seed);
        o.set_size();
        let body = self.command(&o.0)?;
        let (_, p) = split(&body, 0)?;
        Ok(In::new(p).b()?.to_vec())
    }
}

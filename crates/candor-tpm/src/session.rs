//! The audited HMAC session behind a TPM `Inc` (`../shared/notes/tpm2.md`, "IncSign — the
//! sound construction"): in one session with audit set, NV_Read (pre), StirRandom(payload),
//! NV_Increment, NV_Read (post); then TPM2_GetSessionAuditDigest signed by the key. The
//! session is unbound and unsalted, so its session key is empty and every HMAC is keyed by
//! the (empty) auth values alone: the HMACs carry no secret, the audit digest and the TPM's
//! signature over it are what binds the payload to exactly one increment.

use crate::commands::{Certified, SigningKey, TPM_RH_ENDORSEMENT};
use crate::transport::{Tpm, TpmError, Transport};
use crate::wire::{In, Out};
use candor_core::tpm::{
    cp_hash, nv_read_params, rp_hash, stir_params, CC_NV_INCREMENT, CC_NV_READ, CC_STIR_RANDOM,
};
use sha2::{Digest as _, Sha256};

use crate::wire::{
    ALG_NULL, ALG_SHA256, CC_START_AUTH_SESSION, ST_NO_SESSIONS, ST_SESSIONS, TPM_RH_NULL,
    TPM_RS_PW,
};
/// TPM_RC_EXCLUSIVE: a command used an exclusive audit session after another command ran.
const RC_EXCLUSIVE: u32 = 0x121;
const CC_GET_SESSION_AUDIT_DIGEST: u32 = 0x14D;

/// continueSession | audit.
const ATTR_AUDIT: u8 = 0x01 | 0x80;
/// continueSession | auditExclusive | audit: a foreign command before the increment makes
/// the TPM refuse it (TPM_RC_EXCLUSIVE) instead of burning a value.
const ATTR_AUDIT_EXCLUSIVE: u8 = ATTR_AUDIT | 0x02;

pub(crate) use candor_core::tpm::hmac_sha256 as hmac;

/// A TPM `Inc`: the signed session-audit attestation and what it covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncAttest {
    /// The counter before.
    pub pre: u64,
    /// The counter after (pre + 1).
    pub post: u64,
    /// The payload stirred in.
    pub payload: [u8; 32],
    /// The signed TPMS_ATTEST (session audit) and its signature.
    pub certified: Certified,
    /// The audit session's handle (flushed by [`Tpm::inc_sign`]; left loaded by
    /// [`Tpm::inc_sign_journaled`], whose caller flushes it once the step is stored).
    pub session: u32,
}

struct Session {
    handle: u32,
    nonce_tpm: Vec<u8>,
    seq: u64,
}

/// An IncSign in flight, as journaled once the increment has answered: enough to finish it in
/// the same (still loaded) session after a crash (DESIGN.md §7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InFlight {
    /// The NV index.
    pub index: u32,
    /// The audit session's handle.
    pub session: u32,
    /// The counter before.
    pub pre: u64,
    /// The payload stirred in.
    pub payload: [u8; 32],
    /// The TPM's latest session nonce.
    pub nonce_tpm: Vec<u8>,
    /// Commands sent in the session so far.
    pub seq: u64,
    /// The counter after, once the post read has answered (then only the digest is left).
    pub post: Option<u64>,
}

impl Session {
    fn next_caller_nonce(&mut self) -> Vec<u8> {
        // Fresh per command; it needs to be unique, not secret.
        self.seq += 1;
        let mut h = Sha256::new();
        h.update(self.handle.to_be_bytes());
        h.update(self.seq.to_be_bytes());
        h.update(&self.nonce_tpm);
        h.finalize().to_vec()
    }
}

impl<T: Transport> Tpm<T> {
    fn start_audit_session(&mut self) -> Result<Session, TpmError> {
        let nonce_caller = Sha256::digest(b"candor audit session").to_vec();
        let mut o = Out::default();
        o.u16(ST_NO_SESSIONS).u32(0).u32(CC_START_AUTH_SESSION);
        o.u32(TPM_RH_NULL).u32(TPM_RH_NULL);
        o.b(&nonce_caller)
            .b(&[])
            .u8(0x00)
            .u16(ALG_NULL)
            .u16(ALG_SHA256);
        o.set_size();
        let body = self.command(&o.0)?;
        let mut r = In::new(&body);
        let handle = r.u32()?;
        let nonce_tpm = r.b()?.to_vec();
        Ok(Session {
            handle,
            nonce_tpm,
            seq: 0,
        })
    }

    /// One command in the audit session; returns the response parameters.
    fn audited(
        &mut self,
        s: &mut Session,
        cc: u32,
        handles: &[u32],
        names: &[&[u8]],
        params: &[u8],
        attrs: u8,
    ) -> Result<Vec<u8>, TpmError> {
        let nonce_caller = s.next_caller_nonce();
        let cp = cp_hash(cc, names, params);
        // Unbound, unsalted session, empty auth values: the HMAC key is empty.
        let auth = hmac(&[], &[&cp, &nonce_caller, &s.nonce_tpm, &[attrs]]);
        let mut o = Out::default();
        o.u16(ST_SESSIONS).u32(0).u32(cc);
        for h in handles {
            o.u32(*h);
        }
        let mut area = Out::default();
        area.u32(s.handle).b(&nonce_caller).u8(attrs).b(&auth);
        o.u32(area.0.len() as u32).raw(&area.0).raw(params);
        o.set_size();
        let body = self.command(&o.0)?;
        let mut r = In::new(&body);
        let n = r.u32()? as usize;
        let rparams = r.take(n)?.to_vec();
        let nonce_tpm = r.b()?.to_vec();
        let rattrs = r.u8()?;
        let rhmac = r.b()?;
        // Check the TPM's response HMAC: same key, over rpHash and the nonces.
        let rp = rp_hash(cc, &rparams);
        if hmac(&[], &[&rp, &nonce_tpm, &nonce_caller, &[rattrs]]) != rhmac {
            return Err(TpmError::Malformed("the response HMAC does not verify"));
        }
        s.nonce_tpm = nonce_tpm;
        Ok(rparams)
    }

    /// The sound IncSign: increments NV counter `index` (Name `nv_name`) once, binding
    /// `payload`, and has `key` sign the session's audit digest.
    pub fn inc_sign(
        &mut self,
        key: &SigningKey,
        index: u32,
        nv_name: &[u8],
        payload: &[u8; 32],
    ) -> Result<IncAttest, TpmError> {
        // A foreign command inside the window before the increment makes the TPM refuse
        // the next exclusive command (TPM_RC_EXCLUSIVE) without counting: start over in a new
        // session. After the increment nothing is exclusive, so this never burns a value.
        let inc = self.inc_sign_journaled(key, index, nv_name, payload, &mut |_| Ok(()))?;
        let _ = self.flush(inc.session);
        Ok(inc)
    }

    /// [`Tpm::inc_sign`], calling `journal` once the increment has answered (with what a
    /// restarted process needs to finish the step) before anything else is sent. On success
    /// the audit session stays loaded (`IncAttest::session`): until the step is stored, a
    /// crash can still be followed by asking the TPM to sign the session's digest again.
    pub fn inc_sign_journaled(
        &mut self,
        key: &SigningKey,
        index: u32,
        nv_name: &[u8],
        payload: &[u8; 32],
        journal: &mut dyn FnMut(&InFlight) -> Result<(), TpmError>,
    ) -> Result<IncAttest, TpmError> {
        let mut attempt = 0;
        loop {
            let mut s = self.start_audit_session()?;
            let result = self.inc_in_session(&mut s, key, index, nv_name, payload, journal);
            if result.is_err() {
                let _ = self.flush(s.handle);
            }
            match result {
                Err(TpmError::Response { code, .. })
                    if code & 0xfff == RC_EXCLUSIVE && attempt < 5 =>
                {
                    attempt += 1;
                    tracing::debug!(
                        attempt,
                        "another command touched the TPM before the increment: retrying"
                    );
                }
                other => return other,
            }
        }
    }

    /// TPM2_GetSessionAuditDigest of session `s`, signed by `key`.
    fn session_digest(&mut self, s: &Session, key: &SigningKey) -> Result<Certified, TpmError> {
        let mut p = Out::default();
        p.b(&[]).u16(ALG_NULL);
        let mut o = Out::default();
        o.u16(ST_SESSIONS).u32(0).u32(CC_GET_SESSION_AUDIT_DIGEST);
        o.u32(TPM_RH_ENDORSEMENT).u32(key.handle).u32(s.handle);
        o.u32(18);
        for _ in 0..2 {
            o.u32(TPM_RS_PW).b(&[]).u8(0).b(&[]);
        }
        o.raw(&p.0);
        o.set_size();
        let body = self.command(&o.0)?;
        let mut r = In::new(&body);
        let n = r.u32()? as usize;
        let mut q = In::new(r.take(n)?);
        let attest = q.b()?.to_vec();
        let (_alg, _hash) = (q.u16()?, q.u16()?);
        Ok(Certified {
            attest,
            r: q.b()?.to_vec(),
            s: q.b()?.to_vec(),
        })
    }

    fn inc_in_session(
        &mut self,
        s: &mut Session,
        key: &SigningKey,
        index: u32,
        nv_name: &[u8],
        payload: &[u8; 32],
        journal: &mut dyn FnMut(&InFlight) -> Result<(), TpmError>,
    ) -> Result<IncAttest, TpmError> {
        let read = counter_value;
        let names: [&[u8]; 2] = [nv_name, nv_name];
        let pre = read(self.audited(
            s,
            CC_NV_READ,
            &[index, index],
            &names,
            &nv_read_params(),
            ATTR_AUDIT_EXCLUSIVE,
        )?)?;
        self.audited(
            s,
            CC_STIR_RANDOM,
            &[],
            &[],
            &stir_params(payload),
            ATTR_AUDIT_EXCLUSIVE,
        )?;
        self.audited(
            s,
            CC_NV_INCREMENT,
            &[index, index],
            &names,
            &[],
            ATTR_AUDIT_EXCLUSIVE,
        )?;
        let f = InFlight {
            index,
            session: s.handle,
            pre,
            payload: *payload,
            nonce_tpm: s.nonce_tpm.clone(),
            seq: s.seq,
            post: None,
        };
        journal(&f)?;
        self.finish_inc(s, key, nv_name, f, journal)
    }

    /// Finishes an IncSign after a crash, in the journaled session if the TPM still has it
    /// loaded: the post read (unless journaled) and the signed digest. The caller verifies
    /// the result.
    pub fn recover_inc(
        &mut self,
        key: &SigningKey,
        nv_name: &[u8],
        f: &InFlight,
    ) -> Result<IncAttest, TpmError> {
        let mut s = Session {
            handle: f.session,
            nonce_tpm: f.nonce_tpm.clone(),
            seq: f.seq,
        };
        let result = self.finish_inc(&mut s, key, nv_name, f.clone(), &mut |_| Ok(()));
        let _ = self.flush(s.handle);
        result
    }

    fn finish_inc(
        &mut self,
        s: &mut Session,
        key: &SigningKey,
        nv_name: &[u8],
        mut f: InFlight,
        journal: &mut dyn FnMut(&InFlight) -> Result<(), TpmError>,
    ) -> Result<IncAttest, TpmError> {
        let post = match f.post {
            Some(post) => post,
            None => {
                let names: [&[u8]; 2] = [nv_name, nv_name];
                // After the increment, only a failed command is retried, inside this session.
                let post = counter_value(self.audited(
                    s,
                    CC_NV_READ,
                    &[f.index, f.index],
                    &names,
                    &nv_read_params(),
                    ATTR_AUDIT,
                )?)?;
                f.nonce_tpm.clone_from(&s.nonce_tpm);
                f.seq = s.seq;
                f.post = Some(post);
                journal(&f)?;
                post
            }
        };
        let certified = self.session_digest(s, key)?;
        Ok(IncAttest {
            pre: f.pre,
            post,
            payload: f.payload,
            certified,
            session: s.handle,
        })
    }
}

/// The counter value in an NV_Read response's parameters.
fn counter_value(p: Vec<u8>) -> Result<u64, TpmError> {
    let d = In::new(&p).b()?.to_vec();
    let a: [u8; 8] = d
        .try_into()
        .map_err(|_| TpmError::Malformed("counter is not 8 bytes"))?;
    Ok(u64::from_be_bytes(a))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Swtpm, TcpTransport};

    /// A foreign command inside the window before the increment: the TPM refuses the next
    /// exclusive command (nothing counted). Without exclusivity, a foreign increment inside
    /// the window gives post = pre + 2, which the verifier rejects.
    #[test]
    fn foreign_commands_inside_the_window_are_refused_or_rejected() {
        let sw = Swtpm::start().unwrap();
        let mut tpm = Tpm::new(TcpTransport::connect(sw.server()).unwrap());
        let key = tpm.create_signing_key(TPM_RH_ENDORSEMENT).unwrap();
        let index = 0x0150_0300;
        tpm.nv_define_counter(index).unwrap();
        tpm.nv_increment(index).unwrap();
        let (_, nv) = tpm.nv_read_public(index).unwrap();
        let names: [&[u8]; 2] = [&nv, &nv];
        let before = tpm.nv_read_counter(index).unwrap();

        let mut s = tpm.start_audit_session().unwrap();
        tpm.audited(
            &mut s,
            CC_NV_READ,
            &[index, index],
            &names,
            &nv_read_params(),
            ATTR_AUDIT_EXCLUSIVE,
        )
        .unwrap();
        tpm.get_random(8).unwrap(); // a foreign command
        let err = tpm
            .audited(
                &mut s,
                CC_STIR_RANDOM,
                &[],
                &[],
                &stir_params(&[1; 32]),
                ATTR_AUDIT_EXCLUSIVE,
            )
            .unwrap_err();
        assert!(
            matches!(err, TpmError::Response { code, .. } if code & 0xfff == RC_EXCLUSIVE),
            "{err}"
        );
        tpm.flush(s.handle).unwrap();
        assert_eq!(
            tpm.nv_read_counter(index).unwrap(),
            before,
            "nothing was counted"
        );

        // Not exclusive: a foreign increment slips in; the digest shows two steps.
        let mut s = tpm.start_audit_session().unwrap();
        let pre_p = tpm
            .audited(
                &mut s,
                CC_NV_READ,
                &[index, index],
                &names,
                &nv_read_params(),
                ATTR_AUDIT,
            )
            .unwrap();
        tpm.audited(
            &mut s,
            CC_STIR_RANDOM,
            &[],
            &[],
            &stir_params(&[2; 32]),
            ATTR_AUDIT,
        )
        .unwrap();
        tpm.nv_increment(index).unwrap(); // foreign
        tpm.audited(
            &mut s,
            CC_NV_INCREMENT,
            &[index, index],
            &names,
            &[],
            ATTR_AUDIT,
        )
        .unwrap();
        let post_p = tpm
            .audited(
                &mut s,
                CC_NV_READ,
                &[index, index],
                &names,
                &nv_read_params(),
                ATTR_AUDIT,
            )
            .unwrap();
        let c = tpm.session_digest(&s, &key).unwrap();
        tpm.flush(s.handle).unwrap();
        let value = |p: &[u8]| u64::from_be_bytes(p[2..10].try_into().unwrap());
        let (pre, post) = (value(&pre_p), value(&post_p));
        assert_eq!(post, pre + 2);
        let vk = candor_core::tpm::verifying_key(&key.x, &key.y).unwrap();
        let qn = key.qualified_name();
        // Claimed as it happened, or as one step: rejected either way.
        assert!(candor_core::tpm::verify_nv_inc(
            &vk, &qn, &nv, &[2; 32], pre, post, &c.attest, &c.r, &c.s
        )
        .is_err());
        assert!(candor_core::tpm::verify_nv_inc(
            &vk,
            &qn,
            &nv,
            &[2; 32],
            pre,
            pre + 1,
            &c.attest,
            &c.r,
            &c.s
        )
        .is_err());
        assert!(candor_core::tpm::verify_nv_inc(
            &vk,
            &qn,
            &nv,
            &[2; 32],
            post - 1,
            post,
            &c.attest,
            &c.r,
            &c.s
        )
        .is_err());
        tpm.flush(key.handle).unwrap();
    }

    /// A crash right after the increment answered: a new connection finishes the step in the
    /// journaled session (the TPM still has it loaded), and the result verifies; the session
    /// is gone afterwards, so it cannot be finished twice.
    #[test]
    fn a_step_interrupted_after_the_increment_is_finished_after_reconnect() {
        let sw = Swtpm::start().unwrap();
        let mut tpm = Tpm::new(TcpTransport::connect(sw.server()).unwrap());
        let key = tpm.create_signing_key(TPM_RH_ENDORSEMENT).unwrap();
        let index = 0x0150_0301;
        tpm.nv_define_counter(index).unwrap();
        tpm.nv_increment(index).unwrap();
        let (_, nv) = tpm.nv_read_public(index).unwrap();
        let before = tpm.nv_read_counter(index).unwrap();

        // The process dies inside the journal hook: no post read, no signature, no flush.
        let mut journaled = None;
        let crashed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _ = tpm.inc_sign_journaled(&key, index, &nv, &[7; 32], &mut |f| {
                journaled = Some(f.clone());
                panic!("simulated crash after the increment");
            });
        }));
        assert!(crashed.is_err());
        let f = journaled.expect("the hook ran once the increment answered");
        assert_eq!(f.pre, before);
        drop(tpm);

        let mut tpm = Tpm::new(TcpTransport::connect(sw.server()).unwrap());
        assert_eq!(
            tpm.nv_read_counter(index).unwrap(),
            before + 1,
            "it counted"
        );
        let inc = tpm.recover_inc(&key, &nv, &f).unwrap();
        assert_eq!(
            (inc.pre, inc.post, inc.payload),
            (before, before + 1, [7; 32])
        );
        let vk = candor_core::tpm::verifying_key(&key.x, &key.y).unwrap();
        let qn = key.qualified_name();
        let c = &inc.certified;
        assert_eq!(
            candor_core::tpm::verify_nv_inc(
                &vk, &qn, &nv, &[7; 32], inc.pre, inc.post, &c.attest, &c.r, &c.s
            )
            .unwrap(),
            before + 1
        );
        // Claimed for another payload: rejected.
        assert!(candor_core::tpm::verify_nv_inc(
            &vk, &qn, &nv, &[8; 32], inc.pre, inc.post, &c.attest, &c.r, &c.s
        )
        .is_err());
        // The session was flushed: a second recovery fails rather than sign anything.
        assert!(tpm.recover_inc(&key, &nv, &f).is_err());
        tpm.flush(key.handle).unwrap();
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn hmac_sha256_known_vectors() {
        // RFC 4231, test cases 2 and 6 (a key longer than the block).
        assert_eq!(
            hex(&hmac(b"Jefe", &[b"what do ya want ", b"for nothing?"])),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(
            hex(&hmac(
                &[0xaa; 131],
                &[b"Test Using Larger Than Block-Size Key - Hash Key First"]
            )),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }
}

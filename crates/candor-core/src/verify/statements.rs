//! The checks every party runs on a device statement: signed by the certified device, naming
//! it and the node spoken to, on the expected counter, above the counter's base.

use crate::cert::{CertifiedCounter, Protocol, SignedCertificate};
use crate::keys::PeerId;
use crate::misbehaviour::Misbehaviour;
use crate::statement::{SignedInc, SignedRead};

/// Whether a statement's signature is still to be verified, or was verified in a batch with
/// others (which gives the verdict of one by one: ZIP-215).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sig {
    /// Verify it here.
    Check,
    /// Verified already, in a batch that held.
    Batched,
}

/// A `Read` answering `nonce` from node `peer`'s certified device, on `counter`.
pub(crate) fn check_read(
    cert: &SignedCertificate,
    peer: &PeerId,
    counter: &CertifiedCounter,
    s: &SignedRead,
    nonce: &[u8; 32],
) -> Result<(), Misbehaviour> {
    check_read_with(cert, peer, counter, s, nonce, Sig::Check)
}

/// [`check_read`], its signature verified here or already in a batch.
pub(crate) fn check_read_with(
    cert: &SignedCertificate,
    peer: &PeerId,
    counter: &CertifiedCounter,
    s: &SignedRead,
    nonce: &[u8; 32],
    sig: Sig,
) -> Result<(), Misbehaviour> {
    let read = &s.read;
    if sig == Sig::Check {
        cert.cert
            .device
            .verify_read(s)
            .map_err(|_| Misbehaviour::BadStatementSignature {
                what: "Read",
                value: read.value,
            })?;
    }
    if &read.nonce != nonce {
        return Err(Misbehaviour::StaleNonce);
    }
    subject(cert, peer, counter, &read.device, &read.peer, read.counter)?;
    if read.value < counter.initial {
        return Err(Misbehaviour::BelowBase {
            value: read.value,
            base: counter.initial,
        });
    }
    Ok(())
}

/// An `Inc` from node `peer`'s certified device, on `counter`, above its base.
pub(crate) fn check_inc(
    cert: &SignedCertificate,
    peer: &PeerId,
    counter: &CertifiedCounter,
    s: &SignedInc,
) -> Result<(), Misbehaviour> {
    check_inc_with(cert, peer, counter, s, Sig::Check)
}

/// [`check_inc`], its signature verified here or already in a batch.
pub(crate) fn check_inc_with(
    cert: &SignedCertificate,
    peer: &PeerId,
    counter: &CertifiedCounter,
    s: &SignedInc,
    sig: Sig,
) -> Result<(), Misbehaviour> {
    let inc = &s.inc;
    if sig == Sig::Check {
        cert.cert
            .device
            .verify_inc(s)
            .map_err(|_| Misbehaviour::BadStatementSignature {
                what: "Inc",
                value: inc.value,
            })?;
    }
    subject(cert, peer, counter, &inc.device, &inc.peer, inc.counter)?;
    if inc.value <= counter.initial {
        return Err(Misbehaviour::BelowBase {
            value: inc.value,
            base: counter.initial,
        });
    }
    Ok(())
}

fn subject(
    cert: &SignedCertificate,
    peer: &PeerId,
    counter: &CertifiedCounter,
    device: &crate::hash::Digest,
    named: &PeerId,
    on: u32,
) -> Result<(), Misbehaviour> {
    if *device != cert.cert.device.id() {
        return Err(Misbehaviour::WrongDevice);
    }
    if named != peer {
        return Err(Misbehaviour::WrongPeer);
    }
    if on != counter.id {
        return Err(Misbehaviour::WrongCounter {
            expected: counter.id,
            got: on,
        });
    }
    Ok(())
}

/// A reply of the counted kind (schemes B and C: `Read`, pages of `Inc`s, entry receipts) is
/// checked only for a node whose certificate names B or C.
pub(crate) fn require_counted(cert: &SignedCertificate) -> Result<(), Misbehaviour> {
    match cert.cert.scheme.protocol() {
        Protocol::Entries => Ok(()),
        Protocol::Steps => Err(Misbehaviour::WrongScheme {
            certified: cert.cert.scheme,
            answered: "B/C",
        }),
    }
}

/// A reply of the stepped kind (scheme M: steps, step receipts, proofs under roots) is checked
/// only for a node whose certificate names M; returns its one counter.
pub(crate) fn require_stepped(cert: &SignedCertificate) -> Result<CertifiedCounter, Misbehaviour> {
    match (cert.cert.scheme.protocol(), cert.cert.counters.as_slice()) {
        (Protocol::Steps, [counter]) => Ok(*counter),
        (Protocol::Steps, _) => Err(Misbehaviour::Certificate(
            crate::cert::CertError::BadCounters("scheme M has one counter"),
        )),
        (Protocol::Entries, _) => Err(Misbehaviour::WrongScheme {
            certified: cert.cert.scheme,
            answered: "M",
        }),
    }
}

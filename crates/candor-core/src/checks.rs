//! The checks every party runs on a device statement: signed by the certified device, naming
//! it and the node spoken to, on the expected counter, above the counter's base.

use crate::cert::{CertifiedCounter, SignedCertificate};
use crate::keys::PeerId;
use crate::misbehaviour::Misbehaviour;
use crate::statement::{SignedInc, SignedRead};

/// A `Read` answering `nonce` from node `peer`'s certified device, on `counter`.
pub(crate) fn check_read(
    cert: &SignedCertificate,
    peer: &PeerId,
    counter: &CertifiedCounter,
    s: &SignedRead,
    nonce: &[u8; 32],
) -> Result<(), Misbehaviour> {
    let read = &s.read;
    cert.cert
        .device
        .verify_read(s)
        .map_err(|_| Misbehaviour::BadStatementSignature {
            what: "Read",
            value: read.value,
        })?;
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
    let inc = &s.inc;
    cert.cert
        .device
        .verify_inc(s)
        .map_err(|_| Misbehaviour::BadStatementSignature {
            what: "Inc",
            value: inc.value,
        })?;
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

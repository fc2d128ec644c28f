//! `candor bench tpm`: the TPM statements' speed on swtpm (started here, on loopback): raw
//! NV_Increment, ReadSign (NV_Certify), the sound IncSign (audited session + signed digest),
//! and the pure-Rust verification of each.

use crate::BenchError;
use candor_tpm::{
    verify_nv_inc, verify_nv_read, verifying_key, Swtpm, TcpTransport, Tpm, TPM_RH_ENDORSEMENT,
};
use std::time::Instant;

/// Options.
#[derive(clap::Args)]
pub struct Args {
    /// Operations per measurement.
    #[arg(long, default_value_t = 200)]
    ops: usize,
}

fn fail(e: impl std::fmt::Display) -> BenchError {
    BenchError::Failed(e.to_string())
}

/// Runs the benchmark and prints its figures.
pub fn run(args: Args) -> Result<(), BenchError> {
    // With an EK certificate, so that the TPM-backed nodes below are enrolled as `candor
    // node` is: residence checked.
    let ca = candor_tpm::SwtpmCa::shared().map_err(fail)?;
    let sw = Swtpm::start_endorsed(ca).map_err(fail)?;
    let mut tpm = Tpm::new(TcpTransport::connect(sw.server()).map_err(fail)?);
    let key = tpm.create_signing_key(TPM_RH_ENDORSEMENT).map_err(fail)?;
    let index = 0x0150_0100;
    tpm.nv_define_counter(index).map_err(fail)?;
    tpm.nv_increment(index).map_err(fail)?;
    let (_, nv_name) = tpm.nv_read_public(index).map_err(fail)?;
    let vk = verifying_key(&key.x, &key.y).map_err(fail)?;
    let qn = key.qualified_name();
    let n = args.ops.max(1);
    let rate = |t: Instant| n as f64 / t.elapsed().as_secs_f64().max(1e-9);

    let t = Instant::now();
    for _ in 0..n {
        tpm.nv_increment(index).map_err(fail)?;
    }
    let inc_raw = rate(t);

    let t = Instant::now();
    let mut reads = Vec::with_capacity(n);
    for i in 0..n {
        let nonce = [(i % 251) as u8; 32];
        reads.push((nonce, tpm.nv_certify(&key, index, &nonce).map_err(fail)?));
    }
    let read_sign = rate(t);
    let t = Instant::now();
    for (nonce, c) in &reads {
        verify_nv_read(&vk, &qn, &nv_name, nonce, &c.attest, &c.r, &c.s).map_err(fail)?;
    }
    let read_verify = rate(t);

    let t = Instant::now();
    let mut incs = Vec::with_capacity(n);
    for i in 0..n {
        let payload = [(i % 251) as u8; 32];
        incs.push(
            tpm.inc_sign(&key, index, &nv_name, &payload)
                .map_err(fail)?,
        );
    }
    let inc_sign = rate(t);
    let t = Instant::now();
    for inc in &incs {
        let c = &inc.certified;
        verify_nv_inc(
            &vk,
            &qn,
            &nv_name,
            &inc.payload,
            inc.pre,
            inc.post,
            &c.attest,
            &c.r,
            &c.s,
        )
        .map_err(fail)?;
    }
    let inc_verify = rate(t);

    // The residence check at enrolment: the authority's chain check and MakeCredential (pure
    // Rust), the TPM's ActivateCredential.
    let device_peer = candor_core::PeerId::from_bytes(&[0, 1, 2]).map_err(fail)?;
    drop(tpm);
    let mut device = candor_tpm::TpmDevice::open(
        TcpTransport::connect(sw.server()).map_err(fail)?,
        device_peer,
        1,
        candor_tpm::DEFAULT_NV_BASE,
    )?;
    use candor_device::TrustedDevice as _;
    let e = device
        .endorsement()?
        .ok_or_else(|| fail("the TPM sent no endorsement"))?;
    let mut roots = candor_core::endorsement::EndorsementRoots::new();
    roots
        .add_pem(&ca.certificates_pem().map_err(fail)?, true)
        .map_err(fail)?;
    let m = (n / 4).max(1);
    let t = Instant::now();
    for _ in 0..m {
        roots
            .verify_ek(&e.ek_cert, &e.chain, crate::now())
            .map_err(fail)?;
    }
    let chain_verify = m as f64 / t.elapsed().as_secs_f64().max(1e-9);
    let ek = roots
        .verify_ek(&e.ek_cert, &e.chain, crate::now())
        .map_err(fail)?;
    let candor_core::DeviceKey::Tpm(k) = device.device_key() else {
        return Err(fail("not a TPM key"));
    };
    let name = candor_core::tpm::name_of(&k.key_public);
    let t = Instant::now();
    let mut credentials = Vec::with_capacity(m);
    for i in 0..m {
        credentials.push(
            ek.make_credential(&mut rand_core::OsRng, &name, &[(i % 251) as u8; 32])
                .map_err(fail)?,
        );
    }
    let make_credential = m as f64 / t.elapsed().as_secs_f64().max(1e-9);
    let t = Instant::now();
    for (i, c) in credentials.iter().enumerate() {
        if device.activate_credential(c)? != [(i % 251) as u8; 32] {
            return Err(fail("ActivateCredential returned another secret"));
        }
    }
    let activate = m as f64 / t.elapsed().as_secs_f64().max(1e-9);
    drop(device);
    let ceilings = crate::stats::Ceilings::measure();
    let ceiling = ceilings.single;

    println!(
        "## TPM statements on swtpm ({} UTC, {n} operations each; residence rows {m})\n",
        crate::costs::date()
    );
    println!("{}\n", ceilings.line());
    println!("| operation | per second | vs ed25519 single |");
    println!("|---|---:|---:|");
    let row = |what: &str, r: f64| println!("| {what} | {r:.0} | {:.3}× |", r / ceiling);
    row("NV_Increment (raw, unsigned)", inc_raw);
    row("ReadSign (NV_Certify)", read_sign);
    row(
        "IncSign (audited session: 6 commands + signed digest)",
        inc_sign,
    );
    row("verify a Read (pure Rust, P-256)", read_verify);
    row(
        "verify an Inc (pure Rust: digest recomputed, P-256)",
        inc_verify,
    );
    row(
        "enrolment: verify the EK certificate chain (3 certificates, RSA)",
        chain_verify,
    );
    row(
        "enrolment: MakeCredential (RSA-OAEP, KDFa, AES-CFB, HMAC)",
        make_credential,
    );
    row(
        "enrolment: ActivateCredential (policy session + activation on swtpm)",
        activate,
    );

    // Publishes through a listing node on the TPM (durable store on files).
    println!("\n### Publishes through a TPM-backed listing node (swtpm, redb on files)\n");
    println!("| scheme | batch | offers/s |");
    println!("|---|---:|---:|");
    let dir = tempfile::tempdir().map_err(fail)?;
    for (scheme, batch, total) in [
        (candor_core::Scheme::Basic, 16usize, 1_600usize),
        (candor_core::Scheme::Merkle, 16, 3_200),
        (candor_core::Scheme::Merkle, 256, 25_600),
    ] {
        let rate = node_rate(&sw, ca, dir.path(), scheme, batch, total)?;
        println!("| {} | {batch} | {rate:.0} |", scheme.name());
    }
    Ok(())
}

fn node_rate(
    sw: &Swtpm,
    ca: &candor_tpm::SwtpmCa,
    dir: &std::path::Path,
    scheme: candor_core::Scheme,
    batch: usize,
    total: usize,
) -> Result<f64, BenchError> {
    use candor_core::{Keypair, PeerId};
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let k = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut roots = candor_core::endorsement::EndorsementRoots::new();
    roots
        .add_pem(&ca.certificates_pem().map_err(fail)?, true)
        .map_err(fail)?;
    let authority = candor_core::Authority::new(Keypair::generate(&mut rand_core::OsRng))
        .with_endorsement_roots(roots);
    let node_key = Keypair::generate(&mut rand_core::OsRng);
    let peer = PeerId::from_ed25519(&node_key.public());
    // Each run its own NV counter, so runs do not share a counter.
    // As `candor node` runs it: each IncSign journaled (two small unsynced file writes).
    let mut device = candor_tpm::TpmDevice::open_journaled(
        TcpTransport::connect(sw.server()).map_err(fail)?,
        peer,
        1,
        candor_tpm::DEFAULT_NV_BASE + 0x100 * (k + 1),
        Some(dir.join(format!("tpm-{k}.journal"))),
    )?;
    let cert = candor_listing::enrol(
        &authority,
        &mut candor_core::Registry::default(),
        &node_key,
        &mut device,
        scheme,
        1,
        crate::now(),
    )?;
    let store = candor_store::ListingStore::open(&dir.join(format!("tpm-{k}.redb")))?;
    let (node, _) = candor_listing::ListingNode::open(device, store, cert)?;
    let offers = crate::schemes::one_seller_offers("tpm item", total);
    let t = Instant::now();
    for chunk in offers.chunks(batch) {
        let ok = node
            .publish_all(chunk, crate::NOW)
            .iter()
            .all(Result::is_ok);
        if !ok {
            return Err(fail("a publish failed"));
        }
    }
    Ok(total as f64 / t.elapsed().as_secs_f64())
}

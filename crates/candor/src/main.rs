//! # candor
//!
//! The `candor` command: set up a marketplace authority and a listing node's trusted device,
//! and walk through a marketplace in one process, with cheating listing nodes caught.
//! Run `candor --help` for the commands.

mod api;
mod client;
mod daemon;
mod error;
mod evidence;
mod limits;
mod peers;
mod routes;
mod wallet;
mod watch;

use candor_node::{device, files};

use candor_core::{Decode, Encode, Evidence, Keypair, PeerId, Scheme};
use candor_device::{SoftwareDevice, TrustedDevice};
use candor_listing::enrol;
use clap::{Parser, Subcommand, ValueEnum};
use error::{CaBundleError, CliError, EvidenceFileError};
use files::{AuthorityDir, FileError, NodeDir};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "candor",
    version,
    about = "Candor: a peer-to-peer marketplace whose listing nodes cannot hide, alter or invent offers without being caught"
)]
struct Cli {
    /// More log output (-v: debug, -vv: trace). RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Only errors in the log output (on stderr).
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    quiet: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Manage a marketplace authority (it certifies trusted devices).
    #[command(subcommand)]
    Authority(AuthorityCmd),
    /// Manage this node's trusted device.
    #[command(subcommand)]
    Device(DeviceCmd),
    /// Verify transferable evidence against a marketplace authority.
    #[command(subcommand)]
    Evidence(EvidenceCmd),
    /// Run this user's node: join the overlay, serve as a listing node, offer the control API.
    Node(daemon::Args),
    /// Publish an offer through your running node to the item's listing nodes.
    Publish(client::PublishArgs),
    /// Withdraw your offer for an item: an offer of quantity 0 supersedes it everywhere.
    Withdraw(client::ChangeArgs),
    /// Record a sale of some units of your offer for an item: an offer with the rest
    /// supersedes it (none left withdraws it).
    Sell(client::SellArgs),
    /// Retrieve an item's offers from every listing node, each answer verified.
    Retrieve(client::ItemArgs),
    /// Check your receipted offers for an item are still served, untouched.
    Monitor(client::ItemArgs),
    /// Your offers and their receipts.
    Offers(client::Conn),
    /// Your node's status.
    Status(client::Conn),
    /// The peers your node knows (each showed a certificate it trusts).
    Peers(client::Conn),
    /// Connect your running node to a peer: `/ip4/…/tcp/…/p2p/<PeerId>`.
    Connect(client::ConnectArgs),
    /// Stop your running node (queued publishes are committed first).
    Stop(client::Conn),
    #[cfg(feature = "lab")]
    /// A whole marketplace on this machine: ~24 nodes over TCP, sellers, buyers, and cheating
    /// listing nodes caught. Exits non-zero if an honest node is accused or a cheat unnoticed.
    Demo(candor_demo::demo::Args),
    #[cfg(feature = "lab")]
    /// Walk through a whole marketplace in one process: sellers publish, buyers retrieve and
    /// verify, then cheating listing nodes try every trick and are caught.
    Walkthrough(candor_demo::walkthrough::Args),
    /// Measure the core's costs on this machine (a load command; figures for BENCHMARKS.md).
    #[cfg(feature = "lab")]
    #[command(subcommand)]
    Bench(BenchCmd),
    /// Tools for tests (not for users).
    #[cfg(feature = "lab")]
    #[command(subcommand, hide = true)]
    Debug(candor_demo::debug::Cmd),
}

#[cfg(feature = "lab")]
#[derive(Subcommand)]
enum BenchCmd {
    /// Signatures, device, buyer's check against |W|, durable publishes with group commit.
    Core(candor_bench::costs::Args),
    /// Publish and retrieve round trips across N in-process nodes; latency, bytes, memory.
    Net(candor_bench::net::Args),
    /// A node under a steady publish rate for months of simulated time: storage and one
    /// item's retrieve against time, per scheme; writes an SVG plot.
    Lifecycle(candor_bench::lifecycle::Args),
    /// Schemes B, C and M side by side: retrieve bytes and verification against |W|, audits,
    /// M's publish throughput with batches; writes an SVG plot.
    Schemes(candor_bench::schemes::Args),
    /// The TPM statements on swtpm: ReadSign, IncSign and their verification per second.
    Tpm(candor_bench::tpm::Args),
    /// Scheme M's tree alone: N keys updated through the step path, proof size and
    /// verification time.
    Tree(candor_bench::tree::Args),
    /// Retrieves per second from a node whose device is slow to sign Reads (swtpm padded to
    /// 7 ms): one buyer against many, served by batched Reads.
    Reads(candor_bench::reads::Args),
}

#[derive(Subcommand)]
enum AuthorityCmd {
    /// Create an authority: its signing key, public key and registry in DIR.
    Init {
        /// The authority's folder.
        #[arg(long, default_value = "authority")]
        dir: PathBuf,
    },
    /// Trust a TPM manufacturer's CA certificates (PEM: roots and intermediates) for EK
    /// certificate chains. Without one, the authority certifies no TPM.
    TrustEk {
        /// The authority's folder.
        #[arg(long, default_value = "authority")]
        dir: PathBuf,
        /// The PEM file.
        #[arg(long)]
        pem: PathBuf,
        /// The CA certifies no real hardware (swtpm's local CA): certificates it leads to
        /// are marked development-only.
        #[arg(long)]
        development: bool,
    },
}

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum SchemeArg {
    /// The paper's basic scheme: one counter, every entry on retrieve.
    B,
    /// C counters: an item uses counter cid(d).
    C,
    /// A sparse Merkle tree over per-item lists, batched steps, audited by buyers.
    M,
}

#[derive(Subcommand)]
enum DeviceCmd {
    /// Create this node's key and its trusted device: a software device (which protects
    /// nothing), or with `--tpm` a TPM 2.0 (set-up run again re-derives the same device).
    Init {
        /// The node's data folder.
        #[arg(long, default_value = "candor-data")]
        data: PathBuf,
        /// How many counters the device has (default: 64 for the software device, 4 NV
        /// counters for a TPM).
        #[arg(long)]
        counters: Option<u32>,
        /// Use a TPM 2.0 instead of the software device: `tcp:127.0.0.1:PORT` (swtpm) or a
        /// device path such as `/dev/tpmrm0`.
        #[arg(long)]
        tpm: Option<String>,
    },
    /// Have the device certified by a local authority.
    Enroll {
        /// The node's data folder.
        #[arg(long, default_value = "candor-data")]
        data: PathBuf,
        /// The authority's folder.
        #[arg(long, default_value = "authority")]
        authority: PathBuf,
        /// The scheme the node will run.
        #[arg(long, value_enum, default_value = "b")]
        scheme: SchemeArg,
        /// Counters to certify (scheme B uses exactly one).
        #[arg(long)]
        counters: Option<u32>,
    },
    /// Show the device, its counters and its certificate.
    Show {
        /// The node's data folder.
        #[arg(long, default_value = "candor-data")]
        data: PathBuf,
    },
}

#[derive(Subcommand)]
enum EvidenceCmd {
    /// The evidence your node's checks produced, newest first.
    List {
        /// The node's data folder.
        #[arg(long, default_value = "candor-data")]
        data: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// One piece of kept evidence: what it shows, checked; `--out` writes the file to share.
    Show {
        /// Its id (from `candor evidence list`).
        id: String,
        /// The node's data folder.
        #[arg(long, default_value = "candor-data")]
        data: PathBuf,
        /// Write the evidence file here (anyone can check it: `candor evidence verify FILE`).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Check an evidence file with nothing but the authority's public key.
    Verify {
        /// The evidence file (as written by a buyer or seller).
        file: PathBuf,
        /// The authority's folder (its authority.pub is used).
        #[arg(long, default_value = "authority")]
        authority: PathBuf,
    },
}

fn init_logging(verbose: u8, quiet: bool) {
    let default = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "debug",
        _ => "trace",
    };
    // `-v` is about Candor: the HTTP and transport libraries stay at warnings unless RUST_LOG
    // asks for them.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(format!(
            "{default},libp2p_kad=error,ureq=warn,ureq_proto=warn,hyper=warn,hyper_util=warn,\
             h2=warn,rustls=warn,axum=warn,tower=warn,yamux=warn,multistream_select=warn"
        ))
    });
    use std::io::IsTerminal;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colours only for a person at a terminal, never into a file or a pipe.
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

impl Cmd {
    /// Whether the command prints JSON (`--json`): its errors are JSON then too.
    fn json(&self) -> bool {
        match self {
            Self::Publish(a) => a.json(),
            Self::Withdraw(a) => a.json(),
            Self::Sell(a) => a.json(),
            Self::Retrieve(a) | Self::Monitor(a) => a.json(),
            Self::Offers(c) | Self::Status(c) | Self::Peers(c) | Self::Stop(c) => c.json(),
            Self::Connect(a) => a.json(),
            Self::Evidence(EvidenceCmd::List { json, .. }) => *json,
            _ => false,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose, cli.quiet);
    let json = cli.cmd.json();
    let result = match cli.cmd {
        Cmd::Authority(AuthorityCmd::Init { dir }) => authority_init(dir),
        Cmd::Authority(AuthorityCmd::TrustEk {
            dir,
            pem,
            development,
        }) => authority_trust_ek(dir, pem, development),
        Cmd::Device(DeviceCmd::Init {
            data,
            counters,
            tpm,
        }) => device_init(data, counters, tpm),
        Cmd::Device(DeviceCmd::Enroll {
            data,
            authority,
            scheme,
            counters,
        }) => device_enroll(data, authority, scheme, counters),
        Cmd::Device(DeviceCmd::Show { data }) => device_show(data),
        Cmd::Evidence(EvidenceCmd::Verify { file, authority }) => evidence_verify(file, authority),
        Cmd::Evidence(EvidenceCmd::List { data, json }) => evidence_list(data, json),
        Cmd::Evidence(EvidenceCmd::Show { id, data, out }) => evidence_show(data, id, out),
        #[cfg(feature = "lab")]
        Cmd::Walkthrough(args) => return candor_demo::walkthrough::run(args),
        #[cfg(feature = "lab")]
        Cmd::Demo(args) => return candor_demo::demo::run(args),
        Cmd::Node(args) => daemon::run(args),
        Cmd::Publish(a) => client::publish(a),
        Cmd::Withdraw(a) => client::withdraw(a),
        Cmd::Sell(a) => client::sell(a),
        Cmd::Retrieve(a) => client::retrieve(a),
        Cmd::Monitor(a) => client::monitor(a),
        Cmd::Offers(c) => client::offers(c),
        Cmd::Status(c) => client::status(c),
        Cmd::Peers(c) => client::peers(c),
        Cmd::Connect(a) => client::connect(a),
        Cmd::Stop(c) => client::stop(c),
        #[cfg(feature = "lab")]
        Cmd::Debug(cmd) => candor_demo::debug::run(cmd).map_err(CliError::from),
        #[cfg(feature = "lab")]
        Cmd::Bench(b) => match b {
            BenchCmd::Core(args) => candor_bench::costs::run(args),
            BenchCmd::Net(args) => candor_bench::net::run(args),
            BenchCmd::Lifecycle(args) => candor_bench::lifecycle::run(args),
            BenchCmd::Schemes(args) => candor_bench::schemes::run(args),
            BenchCmd::Tpm(args) => candor_bench::tpm::run(args),
            BenchCmd::Tree(args) => candor_bench::tree::run(args),
            BenchCmd::Reads(args) => candor_bench::reads::run(args),
        }
        .map_err(CliError::from),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if json && !matches!(e, CliError::Reported(_)) {
                let body = serde_json::json!({
                    "error": e.to_string(),
                    "kind": e.kind(),
                    "exit": e.exit_code(),
                });
                println!("{body}");
            } else {
                eprintln!("error: {e}");
            }
            ExitCode::from(e.exit_code())
        }
    }
}

fn authority_init(dir: PathBuf) -> Result<(), CliError> {
    let a = AuthorityDir(dir);
    let key = files::new_key(&a.key())?;
    files::write_atomic(&a.public(), key.public().to_hex().as_bytes(), false)?;
    a.save_registry(&candor_core::Registry::default())?;
    println!("authority created in {}", a.0.display());
    println!(
        "public key (give it to buyers and sellers): {}",
        key.public()
    );
    Ok(())
}

fn authority_trust_ek(dir: PathBuf, pem: PathBuf, development: bool) -> Result<(), CliError> {
    let a = AuthorityDir(dir);
    a.load_public()?;
    // A CA bundle is a few certificates: read at most 1 MiB of it.
    const MAX_PEM: u64 = 1 << 20;
    let mut text = Vec::new();
    std::fs::File::open(&pem)
        .and_then(|f| {
            std::io::Read::read_to_end(&mut std::io::Read::take(f, MAX_PEM + 1), &mut text)
        })
        .map_err(|source| FileError::Io {
            path: pem.clone(),
            source,
        })?;
    if text.len() as u64 > MAX_PEM {
        return Err(CliError::CaBundle {
            path: pem,
            problem: CaBundleError::TooLarge(MAX_PEM),
        });
    }
    let mut check = candor_core::endorsement::EndorsementRoots::new();
    let n = check
        .add_pem(&text, development)
        .map_err(|e| CliError::CaBundle {
            path: pem.clone(),
            problem: e.into(),
        })?;
    if check.is_empty() {
        return Err(CliError::CaBundle {
            path: pem,
            problem: CaBundleError::NoRoot,
        });
    }
    let path = a.ek_roots(development);
    let mut all = std::fs::read(&path).unwrap_or_default();
    if !all.is_empty() && !all.ends_with(b"\n") {
        all.push(b'\n');
    }
    all.extend_from_slice(&text);
    files::write_atomic(&path, &all, false)?;
    let roots = a.load_authority()?;
    println!(
        "trusted {n} certificate(s) from {} as {}; the authority now trusts {} EK root(s)",
        pem.display(),
        if development {
            "DEVELOPMENT-ONLY (no real hardware)"
        } else {
            "a TPM manufacturer's"
        },
        roots.endorsement_roots().len()
    );
    Ok(())
}

fn device_init(data: PathBuf, counters: Option<u32>, tpm: Option<String>) -> Result<(), CliError> {
    const MAX_COUNTERS: u32 = 4096;
    let counters = counters.unwrap_or(if tpm.is_some() { 4 } else { 64 });
    if counters == 0 || counters > MAX_COUNTERS {
        return Err(CliError::Usage(format!(
            "--counters {counters}: a device has 1 to {MAX_COUNTERS} counters"
        )));
    }
    let d = NodeDir(data);
    // Set-up completes or leaves nothing: the node key is written only once the device is
    // made. A TPM set-up run again with the key in place re-derives the same device.
    let key_path = d.node_key();
    let existing = key_path.exists();
    if let Some(endpoint) = tpm {
        let node_key = if existing {
            files::load_key(&key_path, "")?
        } else {
            Keypair::generate(&mut rand_core::OsRng)
        };
        let peer = PeerId::from_ed25519(&node_key.public());
        let device = device::open_tpm(&endpoint, peer.clone(), counters, None)?;
        if !existing {
            files::save_key(&key_path, &node_key)?;
        }
        files::write_atomic(
            &device::tpm_file(&d.0),
            format!("{endpoint} {counters}\n").as_bytes(),
            false,
        )?;
        println!("node PeerId:  {}", libp2p_form(&peer));
        println!("device key:   {}", device.device_key());
        println!("counters:     {}", device.counters().len());
        println!("protection:   {}", device.protection());
        return Ok(());
    }
    if existing {
        return Err(FileError::Exists(key_path).into());
    }
    let node_key = Keypair::generate(&mut rand_core::OsRng);
    let peer = PeerId::from_ed25519(&node_key.public());
    let device = SoftwareDevice::create(&d.device(), peer.clone(), counters)?;
    if let Err(e) = files::save_key(&key_path, &node_key) {
        drop(device);
        let _ = std::fs::remove_file(d.device());
        return Err(e.into());
    }
    println!("node PeerId:  {}", libp2p_form(&peer));
    println!("device key:   {}", device.device_key());
    println!("counters:     {}", device.counters().len());
    println!("WARNING: {}", device.protection());
    Ok(())
}

/// A PeerId as libp2p prints it (`12D3Koo…`), as every other command shows it.
fn libp2p_form(peer: &PeerId) -> String {
    candor_net::to_libp2p_peer(peer)
        .map(|p| p.to_string())
        .unwrap_or_else(|| peer.to_string())
}

fn device_enroll(
    data: PathBuf,
    authority: PathBuf,
    scheme: SchemeArg,
    counters: Option<u32>,
) -> Result<(), CliError> {
    let d = NodeDir(data);
    let a = AuthorityDir(authority);
    if d.cert().exists() {
        return Err(FileError::Exists(d.cert()).into());
    }
    let node_key = files::load_key(&d.node_key(), "run `candor device init` first")?;
    let auth = a.load_authority()?;
    let _registry_lock = a.lock_registry()?;
    let mut registry = a.load_registry()?;
    let mut device = device::open_device(&d.0, PeerId::from_ed25519(&node_key.public()))?;
    let (scheme, n) = match scheme {
        SchemeArg::B => (Scheme::Basic, 1),
        SchemeArg::C => (
            Scheme::Counters,
            counters.unwrap_or(device.counters().len() as u32),
        ),
        SchemeArg::M => (Scheme::Merkle, 1),
    };
    if !matches!(scheme, Scheme::Counters) && counters.is_some_and(|c| c != 1) {
        return Err(CliError::Usage(format!(
            "scheme {scheme} certifies exactly one counter"
        )));
    }
    let have = device.counters().len() as u32;
    if n == 0 || n > have {
        return Err(CliError::Usage(format!(
            "--counters {n}: this device has {have} counter(s); certify 1 to {have}"
        )));
    }
    let cert = enrol(
        &auth,
        &mut registry,
        &node_key,
        &mut device,
        scheme,
        n,
        candor_net::system_clock(),
    )?;
    // The registry is saved before the certificate: a certificate never exists unrecorded.
    a.save_registry(&registry)?;
    files::write_atomic(&d.cert(), &cert.to_bytes(), false)?;
    println!(
        "certified: serial {}, scheme {}, {} counter(s), certificate id {}",
        cert.cert.serial,
        cert.cert.scheme,
        cert.cert.counters.len(),
        cert.id()
    );
    println!("residence: {}", cert.cert.residence);
    Ok(())
}

fn device_show(data: PathBuf) -> Result<(), CliError> {
    // A running node holds the device (a TPM's session, a software device's lock): ask it.
    if let Some(v) = client::device_from_node(&data)? {
        println!("node PeerId: {}", v.peer);
        println!("device key:  {}", v.device_key);
        println!("protection:  {}", v.protection);
        for (c, value) in &v.counters {
            println!("counter {c}: value {value}");
        }
        println!(
            "certificate: {}\nresidence:   {}",
            v.certificate, v.residence
        );
        println!("(from the running node)");
        return Ok(());
    }
    let d = NodeDir(data);
    let node_key = files::load_key(&d.node_key(), "run `candor device init` first")?;
    let device = device::open_device(&d.0, PeerId::from_ed25519(&node_key.public()))?;
    println!("node PeerId: {}", libp2p_form(device.peer()));
    println!("device key:  {}", device.device_key());
    println!("protection:  {}", device.protection());
    for c in device.counters().into_iter().take(8) {
        println!("counter {c}: value {}", device.value(c)?);
    }
    match d.load_cert() {
        Ok(cert) => println!(
            "certificate: valid (signed by the authority it names); serial {} by authority {}, scheme {}, id {}\nresidence:   {}",
            cert.cert.serial,
            cert.cert.authority,
            cert.cert.scheme,
            cert.id(),
            cert.cert.residence
        ),
        Err(e @ FileError::Missing { .. }) => println!("certificate: none ({e})"),
        Err(e) => {
            println!("certificate: UNUSABLE");
            return Err(e.into());
        }
    }
    Ok(())
}

fn evidence_verify(file: PathBuf, authority: PathBuf) -> Result<(), CliError> {
    let key = AuthorityDir(authority).load_public()?;
    let bytes = std::fs::read(&file).map_err(|source| FileError::Io {
        path: file.clone(),
        source,
    })?;
    let evidence = Evidence::from_bytes(&bytes)
        .map_err(|source| EvidenceFileError::NotEvidence { path: file, source })?;
    match evidence.verify(&[key]) {
        Ok(what) => {
            println!("VALID evidence ({}): {what}", evidence.kind());
            Ok(())
        }
        Err(e) => Err(EvidenceFileError::DoesNotHold(e).into()),
    }
}

fn evidence_list(data: PathBuf, json: bool) -> Result<(), CliError> {
    let kept = evidence::EvidenceDir::of(&data).list()?;
    if json {
        println!("{}", serde_json::to_string_pretty(&kept)?);
        return Ok(());
    }
    if kept.is_empty() {
        println!("no evidence kept in {}", data.join("evidence").display());
    }
    for k in &kept {
        println!(
            "{}  {:<22} against {}  (kept at unix {})",
            k.id, k.kind, k.node, k.kept_at
        );
    }
    Ok(())
}

fn evidence_show(data: PathBuf, id: String, out: Option<PathBuf>) -> Result<(), CliError> {
    let (e, path) = evidence::EvidenceDir::of(&data).load(&id)?;
    println!("evidence {id}: {}", e.kind());
    println!(
        "against:  {}",
        candor_net::to_libp2p_peer(e.subject())
            .map(|p| p.to_string())
            .unwrap_or_else(|| e.subject().to_string())
    );
    println!("file:     {}", path.display());
    // Checked against the authority its certificate names: that the authority is one you
    // trust is for whoever you show it to (`evidence verify --authority`).
    match e.verify(&[e.authority()]) {
        Ok(what) => println!("checks:   {what}"),
        Err(err) => println!("checks:   DOES NOT HOLD: {err}"),
    }
    if let Some(out) = out {
        files::write_atomic(&out, &e.to_bytes(), false)?;
        println!(
            "written to {}; anyone can check it: candor evidence verify {} --authority DIR",
            out.display(),
            out.display()
        );
    }
    Ok(())
}

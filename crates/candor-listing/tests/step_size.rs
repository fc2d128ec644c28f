//! The largest step an honest scheme-M node makes fits one answer: a full batch of offers of
//! the largest size, each on an item whose old list the step proof carries (as many records
//! as a step may carry), the most removals a step makes, of offers of the largest size, in
//! a tree of 10^5 items. A receipt or an audit answer of any honest step can thus be served.
#![allow(clippy::unwrap_used)]

use candor_core::{
    Authority, Currency, Ed25519StatementSigner, Encode, EnrolRequest, Item, ItemKey, Keypair,
    LiveList, PeerId, Record, Registry, Scheme, SignedOffer, SortKey, StepState, MAX_BATCH,
    MAX_DESCRIPTION, MAX_REMOVALS, MAX_STEP_RECORDS,
};
use candor_listing::MAX_ANSWER_BYTES;
use rand_core::OsRng;

const NOW: u64 = 1_700_000_000;

fn item(i: usize) -> Item {
    // The longest description an item may have.
    let text = format!("{i:08} {}", "x".repeat(MAX_DESCRIPTION - 9));
    Item::new(&text).unwrap()
}

#[test]
fn the_largest_honest_step_fits_one_answer() {
    let node = Keypair::generate(&mut OsRng);
    let peer = PeerId::from_ed25519(&node.public());
    let signer = Ed25519StatementSigner::new(Keypair::generate(&mut OsRng), peer);
    let auth = Authority::new(Keypair::generate(&mut OsRng));
    let req = EnrolRequest::new(
        &node,
        signer.device_key(),
        Scheme::Merkle,
        vec![signer.sign_read(0, 5, [1; 32])],
        None,
    );
    let cert = auth
        .certify(&mut Registry::default(), &req, [1; 32], 0)
        .unwrap();
    let items: Vec<Item> = (0..MAX_BATCH).map(item).collect();
    let per_item = MAX_STEP_RECORDS / MAX_BATCH;
    let mut lists: Vec<(ItemKey, LiveList)> = Vec::new();
    let mut due = 0;
    for (i, it) in items.iter().enumerate() {
        // Old records of the largest offers; the first ones expire at the step's time.
        let mut records: Vec<Record> = (0..per_item)
            .map(|j| {
                let expiry = if due < MAX_REMOVALS && j == 0 {
                    due += 1;
                    NOW
                } else {
                    NOW + 86_400
                };
                let o = SignedOffer::sign(
                    &Keypair::generate(&mut OsRng),
                    it,
                    u64::MAX - j as u64,
                    Currency::EUR,
                    u32::MAX,
                    expiry,
                    u64::MAX,
                );
                Record::of(&o, &o.to_bytes(), 5 + i as u64)
            })
            .collect();
        records.sort_by_key(|r| r.key);
        lists.push((
            it.key(),
            LiveList {
                last_changed: 6,
                records,
            },
        ));
    }
    // The rest of the tree: 10^5 items of one record (stand-ins: only their leaves count).
    let empty: std::sync::Arc<[u8]> = std::sync::Arc::from(Vec::new());
    for i in 0..100_000u64 {
        let h = candor_core::sha256(&i.to_be_bytes());
        lists.push((
            ItemKey(h),
            LiveList {
                last_changed: 6,
                records: vec![Record {
                    key: SortKey {
                        currency: *b"EUR",
                        price: i,
                        seller: h.0,
                        serial: 1,
                    },
                    hash: h,
                    expiry: NOW + 86_400,
                    added: 6,
                    bytes: empty.clone(),
                }],
            },
        ));
    }
    let mut state = StepState::from_lists(cert.cert.counters[0], lists, 6, 0, None);
    let batch: Vec<(ItemKey, Vec<u8>)> = items
        .iter()
        .map(|it| {
            let o = SignedOffer::sign(
                &Keypair::generate(&mut OsRng),
                it,
                u64::MAX,
                Currency::EUR,
                u32::MAX,
                NOW + 86_400,
                u64::MAX,
            );
            (it.key(), o.to_bytes())
        })
        .collect();
    let p = state.prepare(batch, NOW);
    assert!(p.refused.is_empty(), "{:?}", p.refused.first());
    assert_eq!(p.batch.len(), MAX_BATCH);
    assert_eq!(p.removed.len(), MAX_REMOVALS);
    let carried: usize = p
        .old
        .iter()
        .map(|(_, l)| l.as_ref().map_or(0, |l| l.records.len()))
        .sum();
    assert_eq!(carried, MAX_STEP_RECORDS);
    let inc = signer.sign_inc(0, p.header.value, p.header.payload(signer.peer()));
    let sp = state.apply(p, inc);
    let size = sp.to_bytes().len();
    eprintln!("the largest honest step: {size} bytes (an answer may carry {MAX_ANSWER_BYTES})");
    // The answer also carries its certificate and framing: a kilobyte or two.
    assert!(
        size + 4_096 <= MAX_ANSWER_BYTES,
        "{size} bytes for the largest step"
    );
}

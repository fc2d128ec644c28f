//! The live map (DESIGN.md §9): supersession and tombstones, expiry sweeps, justified
//! removals, and the cheats around them — an unjustified removal (in an empty step no seller
//! checks, or beside other faults), a forged replacement, a junk record the monitor must not
//! take for a replacement, a list pushed past its bound, a step too big to serve.

use super::*;
use crate::misbehaviour::Evidence;

/// An offer of `seller` for `item` with the given serial, quantity and expiry.
fn signed(seller: &Keypair, item: &Item, serial: u64, quantity: u32, expiry: u64) -> SignedOffer {
    SignedOffer::sign(
        seller,
        item,
        100 + serial,
        Currency::EUR,
        quantity,
        expiry,
        serial,
    )
}

/// The seller's placement of `o` from its receipt.
fn placed(node: &Node, o: &SignedOffer, r: &StepReceipt) -> Placement {
    check_step_receipt(&node.trusted, &node.peer(), &node.cert, o, r).unwrap()
}

/// Signs a prepared step as the node's device would and records it.
fn count(node: &mut Node, p: PreparedStep) -> StepProof {
    let inc = node
        .signer
        .sign_inc(0, p.header.value, p.header.payload(&node.peer()));
    let sp = node.state.apply(p, inc);
    for (d, _) in &sp.old {
        let list = node.state.list(d).unwrap();
        node.lists
            .insert(*d, list.records.iter().map(|r| r.bytes.to_vec()).collect());
    }
    node.steps.insert(sp.step.header.value, sp.clone());
    sp
}

#[test]
fn a_higher_serial_replaces_the_record_and_a_stale_republish_is_refused() {
    let mut node = Node::new();
    let d = &items()[0];
    let alice = Keypair::generate(&mut OsRng);
    let first = signed(&alice, d, 1, 3, NOW + 1_000);
    let r1 = node.publish(std::slice::from_ref(&first));
    let p1 = placed(&node, &first, &r1[0]);
    // A sale: the same offer with a lower quantity and a higher serial, living as long.
    let sold = signed(&alice, d, 2, 2, NOW + 1_000);
    let r2 = node.publish(std::slice::from_ref(&sold));
    placed(&node, &sold, &r2[0]);
    assert_eq!(r2[0].step.removed, vec![first.to_bytes()]);
    let out = node.retrieve(d, 100).unwrap();
    assert_eq!(out.offers, vec![sold.clone()]);
    // The first receipt's monitor: replaced by its seller's higher serial, no accusation.
    check_monitor(&r1[0], &first, &p1, &out).unwrap();
    // A stale republish, a replacement that would expire first, and two of one seller in
    // one step are not taken.
    let shorter = signed(&alice, d, 5, 1, NOW + 999);
    let p = node.state.clone().prepare(
        vec![
            (d.key(), first.to_bytes()),
            (d.key(), shorter.to_bytes()),
            (d.key(), signed(&alice, d, 6, 1, NOW + 2_000).to_bytes()),
            (d.key(), signed(&alice, d, 7, 1, NOW + 2_000).to_bytes()),
        ],
        NOW,
    );
    assert_eq!(
        p.refused,
        vec![
            (0, NotAdmitted::Stale { held: 2 }),
            (
                1,
                NotAdmitted::ShorterThanReplaced {
                    expiry: NOW + 1_000
                }
            ),
            (3, NotAdmitted::SameStep),
        ]
    );
    assert_eq!(p.batch.len(), 1);
    // A withdrawal leaves a tombstone: buyers see no offer, and the withdrawn one cannot
    // come back while it would still be live.
    let gone = signed(&alice, d, 8, 0, NOW + 1_000);
    node.publish(std::slice::from_ref(&gone));
    let out = node.retrieve(d, 100).unwrap();
    assert_eq!(out.offers, vec![gone]);
    assert!(out.current(NOW).is_empty());
    let p = node
        .state
        .clone()
        .prepare(vec![(d.key(), sold.to_bytes())], NOW);
    assert_eq!(p.refused, vec![(0, NotAdmitted::Stale { held: 8 })]);
}

#[test]
fn expired_records_leave_in_a_step_that_justifies_them_and_nobody_is_accused() {
    let mut node = Node::new();
    let items = items();
    let alice = Keypair::generate(&mut OsRng);
    let bob = Keypair::generate(&mut OsRng);
    let short = signed(&alice, &items[0], 1, 1, NOW + 100);
    let long = signed(&bob, &items[0], 1, 1, NOW + 10_000);
    let r = node.publish(&[short.clone(), long.clone()]);
    let ps = placed(&node, &short, &r[0]);
    // Before its expiry nothing is due; at it, an empty step removes it.
    assert!(!node.state.due(NOW + 99));
    assert!(node.state.due(NOW + 100));
    let p = node.state.prepare(Vec::new(), NOW + 100);
    let sp = count(&mut node, p);
    assert_eq!(sp.removed, vec![short.to_bytes()]);
    assert_eq!(sp.step.header.removal_count, 1);
    // Every auditor and seller accepts the step; the buyer sees the live offer only; the
    // expired offer's seller finds it gone for a reason.
    verify_step(&node.cert, &node.peer(), &sp).unwrap();
    let out = node.retrieve(&items[0], 100).unwrap();
    assert_eq!(out.offers, vec![long]);
    check_monitor(&r[0], &short, &ps, &out).unwrap();
    assert_eq!(node.state.live(), 1);
}

/// Makes `victim` due at `NOW` in the node's sweep index, though it expires later: the node
/// will remove it as if expired.
fn mark_due(node: &mut Node, d: &ItemKey, victim: &SignedOffer) {
    let key = SortKey::of(&victim.offer);
    node.state.expiries.insert((NOW, *d, key));
}

#[test]
fn an_unjustified_removal_in_an_empty_step_is_transferable_evidence() {
    let mut node = Node::new();
    let d = &items()[0];
    let alice = Keypair::generate(&mut OsRng);
    let oa = signed(&alice, d, 1, 1, NOW + 10_000);
    let ra = node.publish(std::slice::from_ref(&oa));
    let pa = placed(&node, &oa, &ra[0]);
    // The cheat: an empty step (no seller publishes in it, so none checks it at publish)
    // that removes Alice's live offer, and a wrong offer total beside it.
    mark_due(&mut node, &d.key(), &oa);
    let mut p = node.state.prepare(Vec::new(), NOW);
    p.header.total_offers += 1;
    let sp = count(&mut node, p);
    assert_eq!(sp.removed, vec![oa.to_bytes()]);
    // An auditor of that step: transferable evidence, not a local verdict for the total.
    let Misbehaviour::Evidence(e) = verify_step(&node.cert, &node.peer(), &sp).unwrap_err() else {
        panic!("evidence expected")
    };
    assert_eq!(e.kind(), Kind::UnjustifiedRemoval);
    let e = Evidence::from_bytes(&e.to_bytes()).unwrap();
    assert!(e.verify(&node.trusted).unwrap().contains("removed in step"));
    // Alice's monitor, with certainty, from the next head: removal evidence.
    let mut r = node.reader(d, [9; 32]);
    let next = r.on_head_bytes(&node.head(d, [9; 32]).to_bytes()).unwrap();
    node.serve_pages(d, &mut r, next).unwrap();
    r.check_list().unwrap();
    let Misbehaviour::Evidence(e) = r.check_placements(&[(oa, ra[0].clone(), pa)]).unwrap_err()
    else {
        panic!("removal evidence expected")
    };
    assert_eq!(e.kind(), Kind::Removal);
    let e = Evidence::from_bytes(&e.to_bytes()).unwrap();
    e.verify(&node.trusted).unwrap();
}

#[test]
fn a_forged_replacement_justifies_no_removal() {
    let mut node = Node::new();
    let d = &items()[0];
    let alice = Keypair::generate(&mut OsRng);
    let oa = signed(&alice, d, 1, 1, NOW + 10_000);
    node.publish(std::slice::from_ref(&oa));
    // The node makes up Alice's "higher serial" (her old signature over a changed offer).
    let mut forged = signed(&alice, d, 1, 0, NOW + 10_000);
    forged.offer.serial = 2;
    let p = node.state.prepare(vec![(d.key(), forged.to_bytes())], NOW);
    assert!(p.refused.is_empty());
    let sp = count(&mut node, p);
    let err = verify_step(&node.cert, &node.peer(), &sp).unwrap_err();
    assert_eq!(err.kind(), Kind::UnjustifiedRemoval, "{err}");
    // Evidence with a genuine replacement is refused: the material shows no misbehaviour.
    let Misbehaviour::Evidence(e) = err else {
        unreachable!()
    };
    let Evidence::UnjustifiedRemoval {
        cert,
        step,
        removed,
        ..
    } = *e
    else {
        unreachable!()
    };
    let real = signed(&alice, d, 2, 0, NOW + 10_000);
    let honest = Evidence::UnjustifiedRemoval {
        cert,
        step,
        batch: vec![real.to_bytes()],
        removed,
        index: 0,
    };
    assert!(honest.verify(&node.trusted).is_err());
}

#[test]
fn the_monitor_takes_no_junk_record_for_a_replacement() {
    let mut node = Node::new();
    let items = items();
    let alice = Keypair::generate(&mut OsRng);
    let oa = signed(&alice, &items[0], 1, 1, NOW + 10_000);
    let ra = node.publish(std::slice::from_ref(&oa));
    let pa = placed(&node, &oa, &ra[0]);
    let mut out = node.retrieve(&items[0], 0).unwrap();
    check_monitor(&ra[0], &oa, &pa, &out).unwrap();
    // In the list's place: Alice's higher serial for another item, then a forged one.
    let other = signed(&alice, &items[1], 5, 1, NOW + 10_000);
    let mut forged = oa.clone();
    forged.offer.serial = 9;
    for junk in [other, forged] {
        out.offers = vec![junk];
        let err = check_monitor(&ra[0], &oa, &pa, &out).unwrap_err();
        assert_eq!(err.kind(), Kind::Removal, "{err}");
    }
}

#[test]
fn a_list_never_passes_its_bound_within_one_step() {
    let node = Node::new();
    let d = items()[0].key();
    let records: Vec<Record> = (0..MAX_LIVE as u64 - 1)
        .map(|i| Record {
            key: SortKey {
                currency: *b"EUR",
                price: i,
                seller: crate::hash::sha256(&i.to_be_bytes()).0,
                serial: 1,
            },
            hash: crate::hash::sha256(&i.to_be_bytes()),
            expiry: NOW + 10_000,
            added: 1,
            bytes: std::sync::Arc::from(Vec::new()),
        })
        .collect();
    let mut state = StepState::from_lists(
        node.cert.cert.counters[0],
        [(
            d,
            LiveList {
                last_changed: 1,
                records,
            },
        )],
        1,
        0,
        None,
    );
    let item = &items()[0];
    let batch = (0..2)
        .map(|_| {
            let s = Keypair::generate(&mut OsRng);
            (d, signed(&s, item, 1, 1, NOW + 10_000).to_bytes())
        })
        .collect();
    let p = state.prepare(batch, NOW);
    assert_eq!(p.batch.len(), 1);
    assert_eq!(p.refused, vec![(1, NotAdmitted::Full { max: MAX_LIVE })]);
    assert_eq!(state.list(&d).unwrap().records.len(), MAX_LIVE);
}

#[test]
fn a_past_list_is_served_for_its_step_while_kept() {
    let mut node = Node::new();
    let d = &items()[0];
    let a = signed(&Keypair::generate(&mut OsRng), d, 1, 1, NOW + 10_000);
    let b = signed(&Keypair::generate(&mut OsRng), d, 1, 1, NOW + 10_000);
    let base = node.state.value();
    node.publish(std::slice::from_ref(&a));
    node.publish(std::slice::from_ref(&b));
    let t = node.state.value();
    let bytes = |v: u64| -> Option<Vec<Vec<u8>>> {
        node.state
            .list_at(&d.key(), v)
            .unwrap()
            .map(|l| l.records.iter().map(|r| r.bytes.to_vec()).collect())
    };
    assert_eq!(bytes(base), None);
    assert_eq!(bytes(t - 1), Some(vec![a.to_bytes()]));
    assert_eq!(bytes(t).map(|l| l.len()), Some(2));
    assert!(node.state.list_at(&d.key(), t + 1).is_err());
}

#[test]
fn replacements_count_against_a_steps_removals() {
    let mut node = Node::new();
    let d = &items()[0];
    let sellers: Vec<Keypair> = (0..600).map(|_| Keypair::generate(&mut OsRng)).collect();
    let first: Vec<SignedOffer> = sellers
        .iter()
        .map(|s| signed(s, d, 1, 1, NOW + 10_000))
        .collect();
    node.publish(&first);
    let again: Vec<(ItemKey, Vec<u8>)> = sellers
        .iter()
        .map(|s| (d.key(), signed(s, d, 2, 1, NOW + 10_000).to_bytes()))
        .collect();
    let p = node.state.prepare(again, NOW);
    assert_eq!(p.removed.len(), MAX_REMOVALS);
    assert_eq!(p.batch.len(), MAX_REMOVALS);
    assert_eq!(p.refused.len(), 600 - MAX_REMOVALS);
    assert!(p.refused.iter().all(|(_, w)| *w == NotAdmitted::StepFull));
    // The step decodes (its proof is within every bound) and verifies.
    let sp = count(&mut node, p);
    let sp = StepProof::from_bytes(&sp.to_bytes()).unwrap();
    verify_step(&node.cert, &node.peer(), &sp).unwrap();
}

/// A buyer's (or a monitor's) retrieve of `item` at its clock `now`, auditing every step.
fn read_at(node: &Node, item: &Item, now: u64) -> Result<StepOutcome, Misbehaviour> {
    let mut r = StepRetrieval::new(
        node.trusted.clone(),
        node.peer(),
        item.clone(),
        [9; 32],
        crate::retrieve::Budget::default(),
        now,
    )
    .monitoring();
    let next = r.on_head_bytes(&node.head(item, [9; 32]).to_bytes())?;
    node.serve_pages(item, &mut r, next)?;
    r.check_list()?;
    for v in r.plan_audits(u64::MAX, &mut OsRng) {
        let (_, sp) = node.steps.range(v..).next().unwrap();
        r.on_audit_bytes(v, &sp.to_bytes())?;
    }
    r.finish()
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

    /// An honest node under random publishes (new offers, sales, withdrawals, stale and
    /// shorter-lived republishes) and the passing of time: every step verifies, each item's
    /// list is exactly what the rules of DESIGN.md §9 keep (each seller's newest admitted
    /// offer until it expires), and no seller's monitor ever accuses it.
    #[test]
    fn an_honest_live_map_keeps_exactly_the_live_records_and_is_never_accused(
        steps in proptest::collection::vec(
            (
                proptest::collection::vec((0usize..4, 0usize..3, 0u32..3, 1u64..8, 0u8..4), 0..4),
                0u64..400,
            ),
            1..12,
        )
    ) {
        let mut node = Node::new();
        let items: Vec<Item> = items().into_iter().take(3).collect();
        let sellers: Vec<Keypair> = (0..4).map(|_| Keypair::generate(&mut OsRng)).collect();
        // The model: per (item, seller), the record the list must hold.
        let mut model: BTreeMap<(usize, usize), SignedOffer> = BTreeMap::new();
        let mut serials = [[0u64; 3]; 4];
        let mut receipts: Vec<(SignedOffer, StepReceipt, Placement)> = Vec::new();
        let mut now = NOW;
        for (publishes, pause) in steps {
            now += pause;
            let mut batch = Vec::new();
            for (s, i, quantity, life, kind) in publishes {
                // kind 0: a stale serial (refused if a record is held); else a new one.
                let serial = if kind == 0 && serials[s][i] > 0 {
                    serials[s][i]
                } else {
                    serials[s][i] += 1;
                    serials[s][i]
                };
                let o = signed(&sellers[s], &items[i], serial, quantity, now + life * 100);
                batch.push(((s, i), o));
            }
            let p = node.state.prepare(
                batch.iter().map(|(_, o)| (o.offer.key, o.to_bytes())).collect(),
                now,
            );
            let at = p.header.at;
            let refused: Vec<usize> = p.refused.iter().map(|(j, _)| *j).collect();
            // What the rules admit, in batch order, against the model before the step.
            let mut seen = std::collections::BTreeSet::new();
            for (j, ((s, i), o)) in batch.iter().enumerate() {
                // A record expired but not yet swept still holds its serial: the same serial
                // again (another offer) is refused, never taken as the seller's new offer.
                let held = model.get(&(*i, *s));
                // One offer per seller and item in a step: the first the rules take.
                let admitted = o.offer.expiry > at
                    && !seen.contains(&(*i, *s))
                    && held.is_none_or(|h| {
                        o.offer.serial > h.offer.serial && o.offer.expiry >= h.offer.expiry
                    });
                if admitted {
                    seen.insert((*i, *s));
                }
                proptest::prop_assert_eq!(admitted, !refused.contains(&j), "offer {}", j);
            }
            let sp = count(&mut node, p);
            let placements = verify_step(&node.cert, &node.peer(), &sp).unwrap();
            for (pos, p) in placements.iter().enumerate() {
                let o = SignedOffer::from_bytes(&sp.batch[pos]).unwrap();
                let s = sellers.iter().position(|k| k.public() == o.offer.seller).unwrap();
                let i = items.iter().position(|it| it.key() == o.offer.key).unwrap();
                model.insert((i, s), o.clone());
                receipts.push((o, StepReceipt {
                    cert_id: node.cert.id(),
                    step: std::sync::Arc::new(sp.clone()),
                    position: pos as u32,
                }, *p));
            }
            model.retain(|_, o| o.offer.expiry > at);
            for (i, item) in items.iter().enumerate() {
                let mut want: Vec<Vec<u8>> = model
                    .iter()
                    .filter(|((mi, _), _)| *mi == i)
                    .map(|(_, o)| o.to_bytes())
                    .collect();
                want.sort();
                let mut got = node.lists.get(&item.key()).cloned().unwrap_or_default();
                got.sort();
                proptest::prop_assert_eq!(got, want);
                let out = read_at(&node, item, now).unwrap();
                for (o, r, p) in receipts.iter().filter(|(o, _, _)| o.offer.key == item.key()) {
                    check_monitor(r, o, p, &out).unwrap();
                }
            }
        }
    }
}

/// A restart loads the live map without a replay, then rebuilds the lists its last steps
/// replaced from their proofs: a head made just before the restart has its pages served as
/// of its t — adds, sales (replacements) and sweeps included.
#[test]
fn a_restored_state_rewinds_the_lists_its_last_steps_replaced() {
    let mut node = Node::new();
    let d = &items()[0];
    let sellers: Vec<Keypair> = (0..4).map(|_| Keypair::generate(&mut OsRng)).collect();
    node.publish_at(&[signed(&sellers[0], d, 1, 1, NOW + 50)], NOW);
    node.publish_at(
        &[
            signed(&sellers[1], d, 1, 1, NOW + 5_000),
            signed(&sellers[2], d, 1, 1, NOW + 5_000),
        ],
        NOW,
    );
    // A sale (a replacement), then the first offer expires and is swept beside a new one.
    node.publish_at(&[signed(&sellers[1], d, 2, 0, NOW + 5_000)], NOW + 10);
    node.publish_at(&[signed(&sellers[3], d, 1, 1, NOW + 5_000)], NOW + 60);
    let last = node.state.value();
    let lists: Vec<(ItemKey, LiveList)> = node
        .state
        .lists
        .iter()
        .map(|(k, l)| (*k, (**l).clone()))
        .collect();
    let headers: Vec<SignedStep> = node.steps.values().map(|sp| sp.step.clone()).collect();
    let mut restored =
        StepState::restore(node.cert.cert.counters[0], lists.clone(), headers.clone()).unwrap();
    let all: Vec<StepProof> = node.steps.values().cloned().collect();
    assert!(restored.rewind(&all[1..]));
    let hashes = |l: Option<std::sync::Arc<LiveList>>| -> Option<Vec<Digest>> {
        l.map(|l| l.records.iter().map(|r| r.hash).collect())
    };
    for v in 6..=last {
        assert_eq!(
            hashes(restored.list_at(&d.key(), v).unwrap()),
            hashes(node.state.list_at(&d.key(), v).unwrap()),
            "the list after step {v}"
        );
    }
    assert!(
        restored.list_at(&d.key(), 5).is_err(),
        "older than the rewound steps"
    );
    // Steps that are not the state's last ones give nothing; a hole (a step missing or
    // undecodable in the store) ends the rewind there.
    let mut other =
        StepState::restore(node.cert.cert.counters[0], lists.clone(), headers.clone()).unwrap();
    assert!(other.rewind(&all[..2]));
    assert!(other.list_at(&d.key(), last - 1).is_err());
    let mut holed = StepState::restore(node.cert.cert.counters[0], lists, headers).unwrap();
    let n = all.len();
    assert!(holed.rewind(&[all[n - 4].clone(), all[n - 1].clone()]));
    assert_eq!(
        hashes(holed.list_at(&d.key(), last - 1).unwrap()),
        hashes(node.state.list_at(&d.key(), last - 1).unwrap())
    );
    assert!(holed.list_at(&d.key(), last - 2).is_err());
}

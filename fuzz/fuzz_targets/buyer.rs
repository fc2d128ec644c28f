//! The buyer's state machine fed arbitrary head and page bytes: it returns a verdict and
//! never panics, whatever a listing node sends.
#![no_main]

use candor_core::*;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&split, rest)) = data.split_first() else { return };
    let cut = (split as usize * rest.len()) / 256;
    let (head, pages) = rest.split_at(cut);
    let peer = PeerId::from_bytes(&[0, 1, 2]).unwrap();
    let item = Item::new("fuzz item").unwrap();
    let mut r = Retrieval::new(vec![PublicKey([0; 32])], peer, item, [0; 32], Budget::default());
    if r.on_head_bytes(head).is_err() {
        return;
    }
    for page in pages.chunks(512) {
        if r.on_page_bytes(page).is_err() {
            return;
        }
    }
    let _ = r.finish();
});

//! The tenant import document's streaming reader (`tenantry_admin::transfer::parse`): any
//! bytes are a document or an error with a stable code, never a panic, and a user is
//! handed on only after a complete header.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tenantry_admin::transfer::document::{Item, ItemSink, parse};

struct Count {
    header: bool,
    users: u64,
}

impl ItemSink for Count {
    fn send(&mut self, item: Item) -> bool {
        match item {
            Item::Header(_) => self.header = true,
            Item::User(_) => {
                assert!(self.header, "a user before the header");
                self.users += 1;
            }
            Item::End { user_count } => assert_eq!(user_count, self.users),
        }
        true
    }
}

fuzz_target!(|data: &[u8]| {
    let mut sink = Count {
        header: false,
        users: 0,
    };
    if let Err(e) = parse(data, &mut sink) {
        assert!(e.code.status().is_client_error(), "{:?}", e.code);
    }
});

//! The schema a router composes, checked in as `schema.graphql`: a change to the code's schema
//! shows in review as a change to that file, and this test fails until the file says the same.

use std::path::PathBuf;

use graphql::{federation_sdl, schema};

fn checked_in() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("schema.graphql")
}

#[test]
fn the_checked_in_sdl_is_the_schema_the_code_serves() {
    let served = federation_sdl(&schema());
    let path = checked_in();
    if std::env::var_os("UPDATE_SDL").is_some() {
        std::fs::write(&path, &served).expect("schema.graphql is writable");
        return;
    }
    let recorded = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        recorded == served,
        "functions/graphql/schema.graphql differs from the schema the code serves; if the \
         change is meant, regenerate it with `UPDATE_SDL=1 cargo test -p graphql --test sdl` \
         and review the diff"
    );
}

#[test]
fn the_sdl_is_a_federation_2_subgraph_with_wallets_and_payments_as_entities() {
    let sdl = federation_sdl(&schema());
    assert!(sdl.contains("@link(") && sdl.contains("https://specs.apollo.dev/federation/v2"));
    assert!(sdl.contains("type Wallet @key(fields: \"id\")"), "{sdl}");
    assert!(sdl.contains("type Payment @key(fields: \"id\")"), "{sdl}");
    assert!(sdl.contains("scalar MinorUnits"));
    assert!(!sdl.contains("Float"), "money is never a float");
}

//! `sqlx::migrate!` embeds `migrations/` when the crate compiles; cargo
//! does not know it read them, so a migration added later would be left
//! out of an incremental build. This tells cargo to rebuild when they
//! change.

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}

// Intentionally empty: cargo resolves `[build-dependencies]` (here, syn's
// host feature set) only for a package that has a build script.
fn main() {}

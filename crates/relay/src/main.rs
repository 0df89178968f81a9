//! The `relay` binary: see `relay --help` and the README.
#![forbid(unsafe_code)]

/// Every heap block is overwritten with zeros when it is freed.
///
/// The relay's own secrets live in zeroizing types, but testimony also
/// passes through buffers it does not own: rustls's plaintext, hyper's
/// request head and body chunks, multer's parts, axum's form parsing, and
/// every `String` a template or a library grows by reallocating. Freed
/// without this, those blocks keep the text until the allocator reuses
/// them; root on a seized, running host read codenames, file names,
/// follow-up text and refused forms from `/proc/PID/mem` minutes later.
/// With it, what remains is only what is still in use (see SECURITY.md).
/// The cost is one `memset` per free and no in-place `realloc`; measured
/// in docs/decisions.md ("No plaintext left in relay memory").
#[global_allocator]
static ALLOCATOR: secmem_alloc::zeroizing_alloc::ZeroizeAlloc<std::alloc::System> =
    secmem_alloc::zeroizing_alloc::ZeroizeAlloc::new(std::alloc::System);

fn main() -> std::process::ExitCode {
    relay::cli::main()
}
